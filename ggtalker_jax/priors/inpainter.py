"""The Body Inpainter's prior as a shipped file: export a trained inpainter, load one.

``load_inpainter_prior()`` with no folder loads the prior the package ships
(``priors/shipped/inpainter``, made by the command in BENCHMARKS.md);
``load_inpainter_prior(shipped_prior("inpainter_tiny"))`` the tiny CPU one the tests use.
Adaptation fine-tunes a copy per identity (``train.inpainter.example_terms``).
"""

from __future__ import annotations

import dataclasses
import os

from flax import nnx

from ggtalker_jax.config.inpainter import InpainterConfig, inpainter_config_from_dict
from ggtalker_jax.priors import load_prior_params, read_prior_of_kind, save_prior

KIND = "inpainter"
DEFAULT = "inpainter"
"""The shipped prior commands load when none is named."""


def export_inpainter_prior(
    inpainter,
    config: InpainterConfig,
    folder: str | os.PathLike,
    provenance: dict,
    dtype: str = "bfloat16",
    force: bool = False,
):
    """Write ``inpainter``'s parameters and ``config`` as a prior folder.

    Args:
      inpainter: the trained :class:`~ggtalker_jax.models.inpainter.BodyInpainter`.
      config: the inpainter section it was built with.
      folder: output folder.
      provenance: JSON-able record (command, steps, data, metrics).
      dtype: parameter storage (``bfloat16`` halves the size).
      force: replace an existing prior.

    Returns:
      The folder.
    """
    info = {"kind": KIND, "config": dataclasses.asdict(config), **provenance}
    return save_prior(folder, nnx.state(inpainter, nnx.Param), info, dtype=dtype, force=force)


def load_inpainter_prior(folder: str | os.PathLike | None = None):
    """A Body Inpainter from a prior folder.

    Args:
      folder: a prior folder (default: the shipped ``inpainter`` prior).

    Returns:
      ``(inpainter, InpainterConfig, info)``.

    Raises:
      InputError: not an inpainter prior, or parameters that do not fit its own config.
    """
    from ggtalker_jax.train.inpainter import build_inpainter

    folder, info = read_prior_of_kind(folder, KIND, DEFAULT)
    config = inpainter_config_from_dict(info["config"])
    inpainter = build_inpainter(config)
    nnx.update(inpainter, load_prior_params(folder, nnx.state(inpainter, nnx.Param)))
    return inpainter, config, info
