"""A2E data: speech clips with their exact FLAME motion, and training windows drawn from them.

Three sets of people (:class:`~ggtalker_jax.config.a2e.A2EDataConfig`): ``train`` (the
training identities, speaking the training languages), ``voices`` (held-out people of the
same languages: new voices, pitches, rates and speaking styles) and ``languages`` (people
speaking languages training never hears). The procedural source makes them with the world
library in memory (audio only; the same clips ``ggtalker world --no-video`` writes for the
same seed); a folder source reads worlds from disk.

A training window is ``L = P + W`` consecutive frames of one clip: ``P`` context frames, then
the ``W`` frames the network denoises. Each clip is stored behind ``P`` frames of silence
(features of silence, motion held at the first frame), so a window may start at the clip's
first frame; a window that starts less than ``P`` frames in has no context
(``has_context`` false), as the first window of a sampled sequence has none.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.config.a2e import A2EDataConfig
from ggtalker_jax.data.world_workers import run_world_workers, worker_inputs
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.models.a2e import MotionLayout

SPLITS = ("train", "voices", "languages")


@dataclasses.dataclass(frozen=True)
class SpeechClip:
    """One clip of speech and the FLAME motion that says it (host numpy).

    Attributes:
      name: ``id003/clip001`` or the clip folder's path.
      identity: the speaker's name (``id003``; with the world seed for procedural clips).
      language: espeak voice.
      audio: ``[A]`` float32, 16 kHz mono.
      shape: ``[S]`` FLAME shape.
      expression: ``[T, E]``.  jaw_pose: ``[T, 3]``.  global_pose: ``[T, 3]``.
    """

    name: str
    identity: str
    language: str
    audio: np.ndarray
    shape: np.ndarray
    expression: np.ndarray
    jaw_pose: np.ndarray
    global_pose: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])


def world_for_split(config: A2EDataConfig, split: str) -> WorldConfig:
    """The audio-only world a procedural split is made from."""
    if split == "train":
        ids, clips, seed, langs = (
            config.identities,
            config.clips_per_identity,
            config.seed,
            config.languages,
        )
    elif split == "voices":
        ids, clips, seed, langs = (
            config.heldout_identities,
            config.heldout_clips,
            config.seed + 1,
            config.languages,
        )
    elif split == "languages":
        langs = config.heldout_languages
        ids, clips = max(config.heldout_identities, len(langs)), config.heldout_clips
        seed = config.seed + 2
    else:
        raise InputError(f"A2E split {split!r}: choose one of {', '.join(SPLITS)}")
    return WorldConfig(
        identities=max(ids, 1),
        clips_per_identity=clips,
        seconds=config.seconds,
        seed=seed,
        languages=tuple(langs),
        video=False,
        resolution=32,
    )


def _clips_of(model: FlameModel, world: WorldConfig, indices: Sequence[int]) -> list[SpeechClip]:
    from ggtalker_jax.world.generate import clip_name, generate_clip, make_identity

    out = []
    for i in indices:
        person = make_identity(model, None, world, int(i))
        for j in range(world.clips_per_identity):
            clip = generate_clip(model, person, world, int(i), j)
            out.append(
                SpeechClip(
                    name=clip_name(int(i), j),
                    identity=f"s{world.seed}/{person.name}",
                    language=person.language,
                    audio=np.asarray(clip.audio, np.float32),
                    shape=np.asarray(person.shape, np.float32),
                    expression=np.asarray(clip.flame.expression, np.float32),
                    jaw_pose=np.asarray(clip.flame.jaw_pose, np.float32),
                    global_pose=np.asarray(clip.flame.global_pose, np.float32),
                )
            )
    return out


# Below this many clip-seconds, worker processes (each imports JAX: about 3 s) cost more
# than they save; one 8 s audio-only clip takes about 55 ms in one process.
_PARALLEL_SECONDS = 2000.0


def procedural_clips(
    model: FlameModel, config: A2EDataConfig, split: str, workers: int | None = None
) -> list[SpeechClip]:
    """The clips of one split, made in memory (deterministic from the config's seed).

    Args:
      model: the FLAME model (its shape and expression sizes).
      config: the data section.
      split: ``train``, ``voices`` or ``languages``.
      workers: processes; ``None`` uses one per CPU core for large splits.

    Raises:
      InputError: an unknown espeak voice or split.
    """
    from ggtalker_jax.world.generate import check_world_inputs

    world = world_for_split(config, split)
    if split == "voices" and config.heldout_identities == 0:
        return []
    check_world_inputs(world)
    indices = list(range(world.identities))
    seconds = world.identities * world.clips_per_identity * world.seconds
    if workers is None:
        workers = min(os.cpu_count() or 1, len(indices)) if seconds > _PARALLEL_SECONDS else 1
    workers = min(workers, len(indices))
    if workers <= 1:
        return _clips_of(model, world, indices)
    chunks = [indices[w::workers] for w in range(workers)]
    parts = _run_workers(model, world, chunks)
    by_name = {c.name: c for part in parts for c in part}
    return [by_name[n] for n in sorted(by_name)]


def _run_workers(model: FlameModel, world: WorldConfig, chunks: list[list[int]]):
    """Each chunk of identities in its own worker process
    (:func:`~ggtalker_jax.data.world_workers.run_world_workers`), as the E2V identity pool
    does."""
    import pickle

    def read(out: Path, chunk: list[int]) -> list[SpeechClip]:
        del chunk
        # Our own worker's file in our own temporary folder, never user data.
        with open(out, "rb") as f:
            return pickle.load(f)

    return run_world_workers(
        "ggtalker_jax.data.a2e", model, world, chunks, read, what="A2E clip", suffix=".pkl"
    )


def _worker_main(argv: list[str]) -> None:
    """``python -m ggtalker_jax.data.a2e MODEL SOURCE WORLD_JSON INDICES OUT``."""
    import pickle

    model, world, indices, out = worker_inputs(argv)
    # Through the package module, not this ``__main__`` copy of it: the parent unpickles
    # ``ggtalker_jax.data.a2e.SpeechClip``.
    from ggtalker_jax.data import a2e as package_module

    clips = package_module._clips_of(model, world, indices)
    with open(out, "wb") as f:
        pickle.dump(clips, f)


def folder_clips(folder: str | os.PathLike, config: A2EDataConfig) -> dict[str, list]:
    """Clips of a folder of worlds, split by language and speaker.

    Clips in ``languages`` train, except those of the last ``heldout_identities`` speakers
    (sorted by name), which are the held-out voices; clips in ``heldout_languages`` are the
    held-out languages; other languages are not used.

    Raises:
      InputError: no clips there, or a clip that does not read (the reader's line).
    """
    from ggtalker_jax.data.clip import read_clip

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; pass a folder of `ggtalker world` clips")
    dirs = sorted(p.parent for p in root.rglob("flame.npz"))
    if not dirs:
        raise InputError(
            f"{root}: holds no clips (no flame.npz below it); write some with "
            "`ggtalker world --no-video --out DIR`"
        )
    clips = []
    for d in dirs:
        clip = read_clip(d, load_video=False)
        # Named as the procedural source names the same person (world seed and identity).
        speaker = f"s{clip.meta.get('seed', 0)}/{clip.meta.get('identity', d.parent.name)}"
        clips.append(
            SpeechClip(
                name=str(d.relative_to(root)),
                identity=speaker,
                language=str(clip.meta.get("language", "")),
                audio=np.asarray(clip.audio, np.float32),
                shape=np.asarray(clip.flame.shape, np.float32).reshape(-1),
                expression=np.asarray(clip.flame.expression, np.float32),
                jaw_pose=np.asarray(clip.flame.jaw_pose, np.float32),
                global_pose=np.asarray(clip.flame.global_pose, np.float32),
            )
        )
    trained = [c for c in clips if c.language in config.languages]
    speakers = sorted({c.identity for c in trained})
    held = set(speakers[len(speakers) - config.heldout_identities :]) if speakers else set()
    held = held if len(held) < len(speakers) else set()
    return {
        "train": [c for c in trained if c.identity not in held],
        "voices": [c for c in trained if c.identity in held],
        "languages": [c for c in clips if c.language in config.heldout_languages],
    }


def load_split(model: FlameModel, config: A2EDataConfig, split: str) -> list[SpeechClip]:
    """One split from the configured source (procedural or a folder)."""
    if config.source == "procedural":
        return procedural_clips(model, config, split)
    return folder_clips(config.source, config)[split]


# -- training windows ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class A2EBatch:
    """Training windows (``L = P + W`` frames each).

    Attributes:
      features: ``[B, L, F]`` audio features.
      motion: ``[B, L, M]`` motion (not normalised; the network's statistics do that).
      has_context: ``[B]`` bool: the first ``P`` frames are real frames of the clip.
      identity: ``[B]`` int32 training-identity index.
    """

    features: jax.Array
    motion: jax.Array
    has_context: jax.Array
    identity: jax.Array


jax.tree_util.register_dataclass(
    A2EBatch, data_fields=["features", "motion", "has_context", "identity"], meta_fields=[]
)


@functools.partial(jax.jit, static_argnames=("frames",))
def _gather(features, motion, starts, frames):
    idx = starts[:, None] + jnp.arange(frames)[None, :]
    return features[idx], motion[idx]


class WindowSource:
    """Training windows by position (a :class:`~ggtalker_jax.train.loop.DataSource`).

    All clips' features and motion live on the device, concatenated, each behind ``P``
    frames of padding; ``batch(position)`` draws clip and offset on the host from
    ``(seed, position)`` and gathers on the device, so a step moves a few hundred bytes.

    Args:
      clips: the training clips.
      features: ``[T_c, F]`` per clip (same order).
      layout: the motion layout.
      identities: identity name -> table index.
      batch_size: windows per batch.
      window, context: ``W`` and ``P``.
      silence: ``[F]`` features of silence (the padding).
      seed: draw seed.
    """

    def __init__(
        self,
        clips: Sequence[SpeechClip],
        features: Sequence[np.ndarray],
        layout: MotionLayout,
        identities: dict[str, int],
        batch_size: int,
        window: int,
        context: int,
        silence: np.ndarray,
        seed: int = 0,
    ):
        short = [c.name for c in clips if c.n_frames < window]
        if short:
            raise InputError(
                f"A2E clip {short[0]} has fewer frames than the window ({window}); use clips of "
                f"at least {window / 25:.1f} s or lower a2e.window"
            )
        self.batch_size, self.window, self.context, self.seed = batch_size, window, context, seed
        feats, motions, starts, lengths = [], [], [], []
        offset = 0
        for clip, f in zip(clips, features, strict=True):
            m = layout.pack(clip.expression, clip.jaw_pose, clip.global_pose)
            feats += [np.repeat(silence[None], context, 0), f]
            motions += [np.repeat(m[:1], context, 0), m]
            starts.append(offset)
            lengths.append(clip.n_frames)
            offset += context + clip.n_frames
        self.features = jnp.asarray(np.concatenate(feats), jnp.float32)
        self.motion = jnp.asarray(np.concatenate(motions), jnp.float32)
        self.starts = np.asarray(starts, np.int64)
        self.lengths = np.asarray(lengths, np.int64)
        self.identity = np.asarray([identities[c.identity] for c in clips], np.int32)

    def batch(self, position: int) -> A2EBatch:
        rng = np.random.default_rng([self.seed, position])
        clip = rng.integers(len(self.starts), size=self.batch_size)
        offset = rng.integers(0, self.lengths[clip] - self.window + 1)
        starts = self.starts[clip] + offset  # window starts `context` frames after this
        features, motion = _gather(
            self.features,
            self.motion,
            jnp.asarray(starts, jnp.int32),
            frames=self.context + self.window,
        )
        return A2EBatch(
            features=features,
            motion=motion,
            has_context=jnp.asarray(offset >= self.context),
            identity=jnp.asarray(self.identity[clip]),
        )


def motion_statistics(clips: Sequence[SpeechClip], layout: MotionLayout):
    """``(mean [M], std [M])`` of the clips' motion frames (std floored, see ``STD_FLOOR``)."""
    from ggtalker_jax.models.a2e import STD_FLOOR

    m = np.concatenate([layout.pack(c.expression, c.jaw_pose, c.global_pose) for c in clips])
    return m.mean(0).astype(np.float32), np.maximum(m.std(0), STD_FLOOR).astype(np.float32)


def feature_statistics(features: Sequence[np.ndarray]):
    """``(mean [F], std [F])`` of the audio features (std floored at 1e-3)."""
    f = np.concatenate(features)
    return f.mean(0).astype(np.float32), np.maximum(f.std(0), 1e-3).astype(np.float32)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
