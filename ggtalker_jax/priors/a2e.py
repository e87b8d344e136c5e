"""The A2E prior as a shipped file: export a trained Audio-Expression network, load one.

``load_a2e_prior()`` with no folder loads the prior the package ships (``priors/shipped/a2e``,
made by the command in BENCHMARKS.md); ``load_a2e_prior(shipped_prior("a2e_tiny"))`` the tiny
CPU one the tests use. A prior folder holds the network's parameters and dataset statistics
(float32), its config section and the names of its training identities (for ``--identity``).
"""

from __future__ import annotations

import dataclasses
import os

from flax import nnx

from ggtalker_jax.config.a2e import A2EConfig, a2e_config_from_dict
from ggtalker_jax.models.a2e import DataStats
from ggtalker_jax.priors import load_prior_params, read_prior_of_kind, save_prior

KIND = "a2e"
DEFAULT = "a2e"
"""The shipped prior commands load when none is named."""
STATS = ("motion_mean", "motion_std", "feature_mean", "feature_std")


def export_a2e_prior(
    prior,
    config: A2EConfig,
    identities: list[str],
    folder: str | os.PathLike,
    provenance: dict,
    dtype: str = "bfloat16",
    force: bool = False,
):
    """Write ``prior``'s parameters, statistics, ``config`` and identity names as a folder.

    Args:
      prior: the trained :class:`~ggtalker_jax.models.a2e.AudioExpressionPrior`.
      config: the A2E section it was built with.
      identities: training-identity names in table order.
      folder: output folder.
      provenance: JSON-able record (command, steps, data, metrics, flame model).
      dtype: parameter storage (statistics stay float32).
      force: replace an existing prior.
    """
    info = {
        "kind": KIND,
        "config": dataclasses.asdict(config),
        "identities": list(identities),
        "n_expression": prior.motion.n_expression,
        **provenance,
    }
    state = nnx.state(prior, (nnx.Param, DataStats))
    return save_prior(folder, state, info, dtype=dtype, force=force, keep_float32=STATS)


def load_a2e_prior(folder: str | os.PathLike | None = None, model=None):
    """A :class:`~ggtalker_jax.motion.Speaker` from a prior folder.

    Args:
      folder: a prior folder (default: the shipped ``a2e`` prior).
      model: the FLAME model the motion is for (default: the one the prior records, or the
        shipped head); only its expression count is used.

    Returns:
      ``(Speaker, A2EConfig, info)``.

    Raises:
      InputError: not an A2E prior, or parameters that do not fit its own config.
    """
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.models.audio_encoder import make_feature_extractor
    from ggtalker_jax.motion import Speaker
    from ggtalker_jax.train.a2e import build_prior, motion_layout

    folder, info = read_prior_of_kind(folder, KIND, DEFAULT)
    config = a2e_config_from_dict(info["config"])
    if model is None:
        model = load_flame(info.get("flame_model") or None)
    identities = list(info.get("identities", []))
    extractor = make_feature_extractor(config)
    prior = build_prior(config, extractor.dim, motion_layout(config, model), len(identities))
    nnx.update(prior, load_prior_params(folder, nnx.state(prior, (nnx.Param, DataStats))))
    return Speaker(prior, extractor, identities, model.n_exp), config, info
