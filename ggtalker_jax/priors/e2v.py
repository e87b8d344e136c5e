"""The E2V prior as a shipped file: export a trained Identity-Gaussian Generator, load one.

``load_e2v_prior()`` with no folder loads the prior the package ships (``priors/shipped/e2v``, made
by the command in BENCHMARKS.md); ``load_e2v_prior(shipped_prior("e2v_tiny"))`` the tiny CPU
one the tests use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
from flax import nnx

from ggtalker_jax.config.e2v import E2VConfig, e2v_config_from_dict
from ggtalker_jax.errors import InputError
from ggtalker_jax.priors import (
    load_prior_params,
    read_prior_of_kind,
    save_prior,
)

KIND = "e2v"
DEFAULT = "e2v"
"""The shipped prior commands load when none is named."""


def template_digest(template) -> str:
    """SHA-256 of what a head template's base map is made from: the FLAME model's rest
    vertices and faces and the texel layout (faces, rows, columns; host arrays, the same bits on
    every machine). The generator predicts ``base_map + delta``, so a prior only fits the
    template (head model, UV layout) it was trained on. The base map itself is not hashed:
    it is computed through ``jnp`` and its last bits differ between CPU and GPU."""
    h = hashlib.sha256(b"ggtalker-head-template-1")
    layout, model = template.layout, template.model
    for array, dtype in (
        (model.v_template, np.float32),
        (template.faces, np.int32),
        (layout.face, np.int32),
        (layout.rows, np.int32),
        (layout.cols, np.int32),
    ):
        h.update(np.ascontiguousarray(np.asarray(array, dtype)).tobytes())
    return h.hexdigest()


def export_e2v_prior(
    generator,
    config: E2VConfig,
    folder: str | os.PathLike,
    provenance: dict,
    dtype: str = "bfloat16",
    force: bool = False,
):
    """Write ``generator``'s parameters and ``config`` as a prior folder.

    Args:
      generator: the trained :class:`~ggtalker_jax.models.identity_generator.IdentityGenerator`.
      config: the E2V section it was built with.
      folder: output folder.
      provenance: JSON-able record (command, steps, data, metrics, flame model).
      dtype: parameter storage (``bfloat16`` halves the size).
      force: replace an existing prior.
    """
    info = {
        "kind": KIND,
        "config": dataclasses.asdict(config),
        "template_sha256": template_digest(generator.template),
        **provenance,
    }
    return save_prior(folder, nnx.state(generator, nnx.Param), info, dtype=dtype, force=force)


def load_e2v_prior(folder: str | os.PathLike | None = None, model=None):
    """An Identity-Gaussian Generator from a prior folder.

    Args:
      folder: a prior folder (default: the shipped ``e2v`` prior).
      model: the FLAME model to build the head on (default: the one the prior records, or the
        shipped head).

    Returns:
      ``(generator, E2VConfig, info)``.

    Raises:
      InputError: not an E2V prior, or parameters that do not fit its own config.
    """
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.train.e2v import build_generator

    folder, info = read_prior_of_kind(folder, KIND, DEFAULT)
    config = e2v_config_from_dict(info["config"])
    if model is None:
        model = load_flame(info.get("flame_model") or None)
    _, generator = build_generator(model, config)
    want = info.get("template_sha256")
    if want is not None and want != template_digest(generator.template):
        raise InputError(
            f"{folder}: this prior was trained on another head template (another FLAME model or "
            f"UV layout); load it with the model it "
            f"records ({info.get('flame_model') or 'the shipped head'}) or retrain"
        )
    nnx.update(generator, load_prior_params(folder, nnx.state(generator, nnx.Param)))
    return generator, config, info
