"""Training the Audio-Expression prior (``ggtalker a2e train``).

A window of ``P`` clean context frames and ``W`` frames of FLAME motion, normalised by the
training set's statistics, is corrupted to a random diffusion step ``t`` of the cosine
schedule (:func:`ggtalker_jax.diffusion.q_sample`), and the denoiser predicts the clean
window from it, the window's audio, the context and the speaker's identity. The loss is the
paper's: ``mean((x̂0 - x0)²) + velocity_weight · Huber(Δx̂0 - Δx0)``, where ``Δ`` are
frame-to-frame differences, including the step from the last context frame into the window
when there is context (what keeps consecutive windows joined). For classifier-free guidance
the audio and the identity are each dropped with probability ``cond_drop`` (the audio
becomes the learned null vector, the identity the "unknown" row).

``objective=regression`` trains the same network as a deterministic regressor (no noise, no
condition drop, step 0, zero input motion): the baseline the evaluation compares against.

Randomness is drawn for the whole global batch before the network runs, so a step on one
device and the same step on eight give the same numbers.

Sections: data -> model/optimizer -> step -> the run -> restore.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config import Config
from ggtalker_jax.config.a2e import A2EConfig
from ggtalker_jax.data.a2e import (
    SpeechClip,
    WindowSource,
    feature_statistics,
    load_split,
    motion_statistics,
)
from ggtalker_jax.diffusion import cosine_alphas_cumprod, q_sample
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.models.a2e import AudioExpressionPrior, MotionLayout
from ggtalker_jax.models.audio_encoder import FeatureExtractor, make_feature_extractor
from ggtalker_jax.train.checkpoint import IDENTITIES_NAME as IDENTITIES_FILE
from ggtalker_jax.train.checkpoint import read_run_config, restore_newest_model
from ggtalker_jax.train.loop import TrainResult, train_module
from ggtalker_jax.train.optim import section_optimizer
from ggtalker_jax.train.parallel import (
    check_batch,
    make_data_mesh,
    mean_loss,
    sharded_example_terms,
)

# -- data ----------------------------------------------------------------------------------


def motion_layout(config: A2EConfig, model: FlameModel) -> MotionLayout:
    """The motion layout of ``config`` on ``model`` (``n_expression=0``: all of them)."""
    n = config.n_expression or model.n_exp
    if n > model.n_exp:
        raise InputError(
            f"config: a2e.n_expression={n} is more than the FLAME model's {model.n_exp} "
            f"expression coefficients; set it to at most {model.n_exp} (0: all)"
        )
    return MotionLayout(n, config.head_pose)


def clip_features(
    extractor: FeatureExtractor, clips: Sequence[SpeechClip], chunk: int = 64
) -> list[np.ndarray]:
    """Each clip's features ``[T_c, F]``: clips of one length run as one batch (chunks of
    ``chunk`` clips, so a large world compiles one shape and stays within memory)."""
    out: list[np.ndarray | None] = [None] * len(clips)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(clips):
        by_shape.setdefault((c.audio.shape[0], c.n_frames), []).append(i)
    for (_, frames), indices in by_shape.items():
        for s in range(0, len(indices), chunk):
            part = indices[s : s + chunk]
            # Pad the chunk to `chunk` clips so every chunk of a length shares a compile.
            rows = part + [part[-1]] * (chunk - len(part)) if len(indices) > chunk else part
            feats = extractor.batch(np.stack([clips[i].audio for i in rows]), frames)
            for k, i in enumerate(part):
                out[i] = feats[k]
    return out  # type: ignore[return-value]


@dataclasses.dataclass
class A2EData:
    """The training split, ready to draw windows from.

    Attributes:
      clips: training clips.  features: their ``[T_c, F]`` features.
      extractor: the audio feature extractor.  layout: the motion layout.
      identities: training-identity names in table order.
      silence: ``[F]`` features of silence.
    """

    clips: list[SpeechClip]
    features: list[np.ndarray]
    extractor: FeatureExtractor
    layout: MotionLayout
    identities: list[str]
    silence: np.ndarray

    def source(self, config: A2EConfig, seed: int) -> WindowSource:
        return WindowSource(
            self.clips,
            self.features,
            self.layout,
            {n: i for i, n in enumerate(self.identities)},
            config.batch_size,
            config.window,
            config.context,
            self.silence,
            seed=seed,
        )


def prepare_data(model: FlameModel, config: A2EConfig) -> A2EData:
    """The training clips (made or read), their features and the identity table.

    Raises:
      InputError: no training clips, an unknown voice, clips shorter than the window.
    """
    clips = load_split(model, config.data, "train")
    if not clips:
        raise InputError(
            f"a2e: no training clips in {config.data.source} for languages "
            f"{', '.join(config.data.languages)}; check a2e.data.source and a2e.data.languages"
        )
    extractor = make_feature_extractor(config)
    features = clip_features(extractor, clips)
    identities = sorted({c.identity for c in clips})
    return A2EData(
        clips, features, extractor, motion_layout(config, model), identities, extractor.silence()
    )


# -- model/optimizer -------------------------------------------------------------------------


def build_prior(
    config: A2EConfig, feature_dim: int, layout: MotionLayout, n_identities: int, seed: int = 0
) -> AudioExpressionPrior:
    """A freshly initialised A2E network (statistics at mean 0, std 1)."""
    return AudioExpressionPrior(config, feature_dim, layout, n_identities, nnx.Rngs(seed))


def set_statistics(prior: AudioExpressionPrior, data: A2EData) -> None:
    """Store the training set's motion and feature statistics in the network."""
    m_mean, m_std = motion_statistics(data.clips, data.layout)
    f_mean, f_std = feature_statistics(data.features)
    prior.motion_mean.set_value(jnp.asarray(m_mean))
    prior.motion_std.set_value(jnp.asarray(m_std))
    prior.feature_mean.set_value(jnp.asarray(f_mean))
    prior.feature_std.set_value(jnp.asarray(f_std))


# -- step ------------------------------------------------------------------------------------


def _huber(x: jax.Array, delta: float) -> jax.Array:
    a = jnp.abs(x)
    return jnp.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))


def example_terms(prior, batch, draws, config: A2EConfig) -> dict:
    """Per-example loss terms ``[B]`` of a batch, given the step's random draws."""
    acp = jnp.asarray(cosine_alphas_cumprod(config.diffusion_steps))
    p = config.context
    motion = prior.normalize_motion(batch.motion)  # [B, L, M]
    context, x0 = motion[:, :p], motion[:, p:]
    b = x0.shape[0]
    if config.objective == "diffusion":
        t = draws["t"]
        x_t = q_sample(x0, t, draws["noise"], acp)
        drop_audio, drop_id = draws["drop_audio"], draws["drop_id"]
    else:
        t = jnp.zeros((b,), jnp.int32)
        x_t = jnp.zeros_like(x0)
        drop_audio = drop_id = jnp.zeros((b,), bool)
    identity = jnp.where(drop_id, prior.unknown_identity(), batch.identity)
    keys = draws["keys"]
    audio = prior.encode_audio(batch.features, drop_audio, keys=_fold_keys(keys, 0))
    pred = prior(x_t, t, context, batch.has_context, audio, identity, keys=_fold_keys(keys, 1))
    mse = jnp.mean((pred - x0) ** 2, axis=(1, 2))
    # Frame differences, with the step in from the last context frame where there is one.
    last = context[:, -1:]
    d_pred = jnp.diff(jnp.concatenate([last, pred], axis=1), axis=1)
    d_true = jnp.diff(jnp.concatenate([last, x0], axis=1), axis=1)
    weight = jnp.concatenate(
        [
            batch.has_context.astype(jnp.float32)[:, None],
            jnp.ones((b, x0.shape[1] - 1), jnp.float32),
        ],
        axis=1,
    )[..., None]
    huber = _huber(d_pred - d_true, config.huber_delta) * weight
    velocity = jnp.sum(huber, axis=(1, 2)) / (jnp.sum(weight, axis=(1, 2)) * x0.shape[-1])
    return {"loss": mse + config.velocity_weight * velocity, "mse": mse, "velocity": velocity}


def _fold_keys(keys: jax.Array, i: int) -> jax.Array:
    return jax.vmap(jax.random.fold_in, (0, None))(keys, i)


def draw_randomness(key: jax.Array, batch, config: A2EConfig) -> dict:
    """The step's random draws for the whole global batch (step, noise, condition drops,
    one dropout key per example)."""
    k_t, k_noise, k_audio, k_id, k_drop = jax.random.split(key, 5)
    b = batch.motion.shape[0]
    shape = (b, config.window, batch.motion.shape[-1])
    return {
        "t": jax.random.randint(k_t, (b,), 0, config.diffusion_steps),
        "noise": jax.random.normal(k_noise, shape),
        "drop_audio": jax.random.bernoulli(k_audio, config.cond_drop, (b,)),
        "drop_id": jax.random.bernoulli(k_id, config.cond_drop, (b,)),
        "keys": jax.random.split(k_drop, b),
    }


def make_loss_fn(config: A2EConfig, mesh):
    """``loss_fn(prior, batch, key) -> (loss, metrics)`` over an
    :class:`~ggtalker_jax.data.a2e.A2EBatch` (module docstring). The network runs under
    ``jax.shard_map`` on each device's slice; the draws are made for the global batch first
    and split with it."""

    def loss_fn(prior, batch, key):
        draws = draw_randomness(key, batch, config)
        terms = sharded_example_terms(
            functools.partial(example_terms, config=config), mesh, prior, batch, draws
        )
        return mean_loss(terms)

    return loss_fn


# -- the run ---------------------------------------------------------------------------------


@dataclasses.dataclass
class A2ERun:
    """What :func:`train_a2e` returns: the trained network and the run's record."""

    prior: AudioExpressionPrior
    data: A2EData
    result: TrainResult
    seconds: float
    samples_per_second: float


def _write_identities(workdir: Path, names: list[str]) -> None:
    from ggtalker_jax.outputs import write_text_atomic

    path = workdir / IDENTITIES_FILE
    text = json.dumps(names, indent=1) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise InputError(
            f"{path}: the run was trained on other identities than this data makes; use "
            "another --workdir or pass --force to start over"
        )
    write_text_atomic(path, text)


def train_a2e(
    config: Config,
    workdir: str | Path,
    model: FlameModel,
    *,
    force: bool = False,
    progress: bool = True,
    eval_fn=None,
    time_limit: float | None = None,
    data: A2EData | None = None,
) -> A2ERun:
    """Train (or resume) the A2E prior of ``config.a2e`` in ``workdir``.

    Args:
      config: the whole resolved config (written beside the checkpoints).
      workdir: the run's folder: ``config.json``, ``identities.json``, ``checkpoints/``,
        ``tensorboard/``.
      model: the FLAME model (its expression count and, for evaluation, its mesh).
      force: start over (removes only the run's own files).
      progress: show the progress bar.
      eval_fn: ``(prior, step) -> {name: value}`` every ``a2e.eval_every`` steps.
      time_limit: stop after this many seconds with a checkpoint (a rerun continues).
      data: the training data, if already prepared (:func:`prepare_data`).

    Raises:
      InputError: a workdir of another config, a batch the devices do not divide, bad data.
      TrainingDiverged: a non-finite loss.
    """
    a2e = config.a2e
    # mesh
    mesh = make_data_mesh()
    check_batch({"x": jnp.zeros((a2e.batch_size,))}, mesh)
    # data
    data = prepare_data(model, a2e) if data is None else data
    source = data.source(a2e, seed=config.seed)
    # model/optimizer
    prior = build_prior(
        a2e, data.extractor.dim, data.layout, len(data.identities), seed=config.seed
    )
    set_statistics(prior, data)
    # restore + step + loop
    run = train_module(
        prior,
        make_loss_fn(a2e, mesh),
        source,
        workdir,
        config,
        a2e,
        mesh=mesh,
        force=force,
        progress=progress,
        time_limit=time_limit,
        eval_fn=eval_fn,
        on_open=lambda ckpt: _write_identities(Path(workdir), data.identities),
    )
    return A2ERun(
        prior=run.result.state.model(),
        data=data,
        result=run.result,
        seconds=run.seconds,
        samples_per_second=run.samples_per_second,
    )


# -- restore ---------------------------------------------------------------------------------


def restore_a2e_run(workdir: str | Path, model: FlameModel | None = None):
    """The network of a run's newest checkpoint.

    Returns:
      ``(prior, A2EConfig, identities, run config dict, step)``.

    Raises:
      InputError: no run there, or no checkpoint yet.
    """
    prior, a2e, identities, run_config, step, _, _ = _restore(workdir, model)
    return prior, a2e, identities, run_config, step


def restore_a2e_speaker(workdir: str | Path, model: FlameModel | None = None):
    """A :class:`~ggtalker_jax.motion.Speaker` of a run's newest checkpoint.

    Returns:
      ``(Speaker, A2EConfig, step)``.

    Raises:
      InputError: no run there, or no checkpoint yet.
    """
    from ggtalker_jax.motion import Speaker

    prior, a2e, identities, _, step, extractor, model = _restore(workdir, model)
    return Speaker(prior, extractor, identities, model.n_exp), a2e, step


def _restore(workdir, model):
    """Everything a restore makes: the run's network, config, identity names, run config,
    step, feature extractor and FLAME model."""
    from ggtalker_jax.config.a2e import a2e_config_from_dict
    from ggtalker_jax.flame import load_flame

    text, run_config, a2e = read_run_config(
        workdir, "a2e", a2e_config_from_dict, "an A2E", "ggtalker a2e train"
    )
    names = Path(workdir) / IDENTITIES_FILE
    if not names.is_file():
        raise InputError(
            f"{workdir}: no A2E training run here (no {IDENTITIES_FILE}); pass the --workdir of "
            "`ggtalker a2e train`"
        )
    try:
        identities = json.loads(names.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{names}: not an A2E run's identities ({e}); train again") from None
    if model is None:
        model = load_flame(run_config.get("flame_model") or None)
    extractor = make_feature_extractor(a2e)
    prior = build_prior(
        a2e, extractor.dim, motion_layout(a2e, model), len(identities), int(run_config["seed"])
    )
    prior, step = restore_newest_model(
        workdir, text, prior, section_optimizer(a2e), a2e.checkpoint_every
    )
    return prior, a2e, identities, run_config, step, extractor, model
