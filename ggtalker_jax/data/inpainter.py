"""Training data of the Body Inpainter: frames and head masks, and the examples made from them.

Sources follow the trainer's ``DataSource`` protocol (``batch_size``, ``batch(position)``
deterministic in ``position``) and yield :class:`FrameBatch` es, host uint8 frames with
their head masks:

* :class:`ProceduralInpainter`: one clip per person of a synthetic world made once, in
  memory, by the world library (``split="train"``: seed ``seed``; ``"heldout"``: other
  people, seed ``seed + 1``); kept as uint8 on the host (5 bytes a pixel).
* :class:`ClipInpainter`: the frames and ``masks.npz`` head masks of clip folders.

A batch element is a uniformly drawn frame of a uniformly drawn clip
(``np.random.default_rng([seed, position])``). The training example is made on the device,
from the step's key (:func:`make_examples`; so a resumed run draws what the uninterrupted
one drew), per element:

==================  =================================================================
hole radius ``r``   ``U(min_dilation, max_dilation) · H`` pixels
jitter              ``dx, dy ~ U(-max_jitter, max_jitter) · H`` pixels (bilinear)
edge softness       ``u ~ U(0, 1)``: alpha ``= m · (1 - u + u · box3(m))`` (only lowers
                    alpha, inside the edge: a splatted head's fringe is soft)
colour              per channel, gain ``1 + U(±color_jitter)``, offset
                    ``U(±color_jitter) · alpha``
==================  =================================================================

where ``m`` is the jittered head mask. The drawn head is the jittered ``frame · head_mask``
(premultiplied, as the renderer draws it over black) times the edge factor, with the colour
jitter; ``hole = hole_mask(alpha, head_mask, r)``; the target is the frame itself.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.config.inpainter import InpainterDataConfig
from ggtalker_jax.data.world_workers import run_world_workers, worker_inputs
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.render.compose import hole_mask, shift_image

SPLITS = ("train", "heldout")


@dataclasses.dataclass(frozen=True)
class FrameBatch:
    """What a source yields (a pytree).

    Attributes:
      frames: ``[B, H, W, 3]`` uint8.
      head_mask: ``[B, H, W]`` uint8 0/1.
    """

    frames: jax.Array
    head_mask: jax.Array

    @property
    def batch_size(self) -> int:
        return int(self.frames.shape[0])


@dataclasses.dataclass(frozen=True)
class InpainterBatch:
    """One batch of inpainter examples (a pytree; float32).

    Attributes:
      head_rgb: ``[B, H, W, 3]`` the drawn head, premultiplied (over black).
      head_alpha: ``[B, H, W]`` its opacity.
      frame: ``[B, H, W, 3]`` the original frame, 0..1 (the network sees it outside the
        hole only).
      hole: ``[B, H, W]`` 0/1, the region to repaint.
      target: ``[B, H, W, 3]`` what the final frame should be.
    """

    head_rgb: jax.Array
    head_alpha: jax.Array
    frame: jax.Array
    hole: jax.Array
    target: jax.Array

    @property
    def batch_size(self) -> int:
        return int(self.frame.shape[0])


for _cls in (FrameBatch, InpainterBatch):
    jax.tree_util.register_dataclass(
        _cls, data_fields=[f.name for f in dataclasses.fields(_cls)], meta_fields=[]
    )


# --------------------------------------------------------------------------- examples


def max_radius(config: InpainterDataConfig, height: int) -> int:
    """The static dilation window, pixels: the largest radius a draw can give."""
    return max(1, math.ceil(config.max_dilation * height))


def draw_example_randomness(
    key: jax.Array, batch_size: int, height: int, config: InpainterDataConfig
) -> dict:
    """The random draws of :func:`make_examples` for the whole batch (module docstring's
    table): ``radius, dx, dy, softness [B]``, ``gain, offset [B, 3]``."""
    k_r, k_x, k_y, k_s, k_g, k_o = jax.random.split(key, 6)
    b, c, j = batch_size, config.color_jitter, config.max_jitter * height
    uniform = lambda k, shape, lo, hi: jax.random.uniform(k, shape, jnp.float32, lo, hi)
    return {
        "radius": uniform(k_r, (b,), config.min_dilation * height, config.max_dilation * height),
        "dx": uniform(k_x, (b,), -j, j),
        "dy": uniform(k_y, (b,), -j, j),
        "softness": uniform(k_s, (b,), 0.0, 1.0),
        "gain": 1.0 + uniform(k_g, (b, 3), -c, c),
        "offset": uniform(k_o, (b, 3), -c, c),
    }


def _box3(x: jax.Array) -> jax.Array:
    """3x3 mean of ``[B, H, W]`` with zeros outside."""
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))
    h, w = x.shape[1:]
    total = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3))
    return total / 9.0


@functools.partial(jax.jit, static_argnames=("config",))
def examples_from_draws(frames, head_mask, draws: dict, config: InpainterDataConfig):
    """:func:`make_examples` given its draws (:func:`draw_example_randomness`).

    Args:
      frames: ``[B, H, W, 3]`` uint8.  head_mask: ``[B, H, W]`` 0/1.
      draws: the batch's draws.
      config: the data section.

    Returns:
      :class:`InpainterBatch`.
    """
    frame = jnp.asarray(frames, jnp.float32) / 255.0  # [B, H, W, 3]
    mask = jnp.asarray(head_mask, jnp.float32)  # [B, H, W]
    dx, dy = draws["dx"], draws["dy"]
    # The head alone, premultiplied, and its mask, moved together by the jitter.
    moved = shift_image(jnp.concatenate([frame * mask[..., None], mask[..., None]], -1), dx, dy)
    color, m = moved[..., :3], moved[..., 3]  # [B, H, W, 3], [B, H, W]
    u = draws["softness"][:, None, None]
    edge = 1.0 - u + u * _box3(m)  # [B, H, W] 1 inside, below 1 near the edge
    alpha = m * edge
    gain, offset = draws["gain"][:, None, None, :], draws["offset"][:, None, None, :]
    head = jnp.clip(
        color * edge[..., None] * gain + offset * alpha[..., None], 0.0, alpha[..., None]
    )
    hole = hole_mask(alpha, mask, draws["radius"], max_radius(config, frame.shape[1]))
    return InpainterBatch(head_rgb=head, head_alpha=alpha, frame=frame, hole=hole, target=frame)


@functools.partial(jax.jit, static_argnames=("config",))
def make_examples(frames, head_mask, key: jax.Array, config: InpainterDataConfig):
    """Inpainter examples of a batch of frames (module docstring: the draws).

    Args:
      frames: ``[B, H, W, 3]`` uint8.
      head_mask: ``[B, H, W]`` 0/1 (any numeric dtype).
      key: the draws' key (the step's key in training).
      config: the data section (static).

    Returns:
      :class:`InpainterBatch` ``[B]``.
    """
    b, h = frames.shape[:2]
    return examples_from_draws(
        frames, head_mask, draw_example_randomness(key, b, h, config), config
    )


# --------------------------------------------------------------------------- sources


def _draw_frames(rng: np.random.Generator, frames, masks, batch_size: int) -> FrameBatch:
    """``batch_size`` frames: a uniform clip of ``frames`` (list of ``[T_c, H, W, 3]``), then
    a uniform frame of it."""
    out_f, out_m = [], []
    for _ in range(batch_size):
        c = int(rng.integers(len(frames)))
        t = int(rng.integers(frames[c].shape[0]))
        out_f.append(frames[c][t])
        out_m.append(masks[c][t])
    return FrameBatch(np.stack(out_f), np.stack(out_m))


def _spread_frames(frames, masks, per_clip: int) -> FrameBatch:
    """``per_clip`` evenly spaced frames of every clip, clip-major (an evaluation set)."""
    out_f, out_m = [], []
    for f, m in zip(frames, masks, strict=True):
        picks = np.unique(np.linspace(0, f.shape[0] - 1, per_clip).round().astype(int))
        out_f += [f[t] for t in picks]
        out_m += [m[t] for t in picks]
    return FrameBatch(np.stack(out_f), np.stack(out_m))


def _check_batch_size(batch_size: int, where: str) -> None:
    if batch_size < 1:
        raise InputError(f"{where}: batch_size is {batch_size}; pass 1 or more")


def world_for_split(config: InpainterDataConfig, split: str) -> WorldConfig:
    """The world a procedural split is made from (one clip per person).

    Raises:
      InputError: an unknown split, or ``heldout`` with ``heldout=0``.
    """
    if split not in SPLITS:
        raise InputError(f"inpainter data split {split!r} is unknown; use 'train' or 'heldout'")
    if split == "heldout" and config.heldout == 0:
        raise InputError(
            "inpainter.data.heldout is 0: there are no held-out people; set "
            "--set inpainter.data.heldout=2 (or more)"
        )
    return WorldConfig(
        identities=config.identities if split == "train" else config.heldout,
        clips_per_identity=1,
        seconds=config.seconds,
        resolution=config.image_size,
        seed=config.seed if split == "train" else config.seed + 1,
    )


def _clips_of(model: FlameModel, world: WorldConfig, indices) -> list[tuple]:
    """``[(frames [T, H, W, 3] uint8, head [T, H, W] uint8)]`` of the people ``indices``."""
    from ggtalker_jax.world.generate import generate_clip, make_identity
    from ggtalker_jax.world.texture import make_uv_maps

    maps = make_uv_maps(model, world.texture_side)
    out = []
    for i in indices:
        clip = generate_clip(model, make_identity(model, maps, world, int(i)), world, int(i), 0)
        out.append((clip.frames, clip.head_mask))
    return out


# Above this many frame-pixels a world is made by worker processes (each imports JAX and
# compiles the renderer, 5-15 s). One 2 s clip (50 frames) took 0.37 s at 128² and 4.9 s at
# 512² in one process on a 2-core CPU (2026 measurement): 52 people at 512², about 4 min
# there, is 6.8e8 frame-pixels.
_PARALLEL_PIXELS = 2e8


def procedural_frames(
    model: FlameModel, config: InpainterDataConfig, split: str, workers: int | None = None
) -> list[tuple]:
    """The frames and head masks of one split's world, one clip per person, in person order.

    Args:
      model: the FLAME model (with UVs and masks).
      config: the data section.
      split: ``train`` or ``heldout``.
      workers: processes; ``None``: one per CPU core for a large world (above
        :data:`_PARALLEL_PIXELS` frame-pixels), else this process.

    Returns:
      ``[(frames [T, H, W, 3] uint8, head_mask [T, H, W] uint8)]``.

    Raises:
      InputError: as :func:`world_for_split`; an unknown espeak voice or too little memory.
    """
    from ggtalker_jax.world.generate import check_world_inputs

    world = world_for_split(config, split)
    check_world_inputs(world)
    model.require("uv")
    indices = list(range(world.identities))
    if workers is None:
        pixels = world.identities * world.n_frames * world.resolution**2
        workers = min(os.cpu_count() or 1, len(indices)) if pixels > _PARALLEL_PIXELS else 1
    workers = max(1, min(workers, len(indices)))
    if workers == 1:
        return _clips_of(model, world, indices)
    chunks = [indices[w::workers] for w in range(workers)]
    by_index = {}
    for chunk, part in zip(chunks, _run_workers(model, world, chunks), strict=True):
        by_index.update(zip(chunk, part, strict=True))
    return [by_index[i] for i in indices]


def _run_workers(model: FlameModel, world: WorldConfig, chunks: list[list[int]]):
    """Each chunk of people in its own worker process
    (:func:`~ggtalker_jax.data.world_workers.run_world_workers`), which writes plain ``.npz``
    arrays (no pickles)."""

    def read(out: Path, chunk: list[int]) -> list[tuple]:
        with np.load(out, allow_pickle=False) as z:
            return [(z[f"frames{k}"], z[f"head{k}"]) for k in range(len(chunk))]

    return run_world_workers(
        "ggtalker_jax.data.inpainter",
        model,
        world,
        chunks,
        read,
        what="inpainter world",
        suffix=".npz",
    )


def _worker_main(argv: list[str]) -> None:
    """``python -m ggtalker_jax.data.inpainter MODEL SOURCE WORLD_JSON INDICES OUT``."""
    model, world, indices, out = worker_inputs(argv)
    arrays = {}
    for k, (frames, head) in enumerate(_clips_of(model, world, indices)):
        arrays[f"frames{k}"], arrays[f"head{k}"] = frames, head
    np.savez(out, **arrays)


class ProceduralInpainter:
    """Inpainter frames of a synthetic world made once, in memory (module docstring).

    Args:
      model: the FLAME model (with UVs and masks).
      config: the data section (people, seconds, image size, seed).
      batch_size: elements per batch.
      split: ``"train"`` or ``"heldout"`` (other people: world seed ``seed + 1``).
      workers: processes for making the world (:func:`procedural_frames`).
    """

    def __init__(
        self,
        model: FlameModel,
        config: InpainterDataConfig,
        batch_size: int,
        split: str = "train",
        workers: int | None = None,
    ):
        _check_batch_size(batch_size, "ProceduralInpainter")
        self.config = config
        self.batch_size = int(batch_size)
        self.split = split
        self.seed = config.seed if split == "train" else config.seed + 1
        clips = procedural_frames(model, config, split, workers)
        self.frames = [c[0] for c in clips]  # [T, H, W, 3] uint8 per person
        self.masks = [c[1] for c in clips]  # [T, H, W] uint8

    def batch(self, position: int) -> FrameBatch:
        """Batch number ``position`` (the same position gives the same batch)."""
        rng = np.random.default_rng([self.seed, int(position)])
        return _draw_frames(rng, self.frames, self.masks, self.batch_size)

    def evaluation_frames(self, per_clip: int = 4) -> FrameBatch:
        """``per_clip`` evenly spaced frames of every person, person-major."""
        return _spread_frames(self.frames, self.masks, per_clip)


class ClipInpainter:
    """Inpainter frames of clip folders (searched recursively), held in memory as uint8.

    Args:
      folder: a clip folder or any folder above clip folders (e.g. a world).
      config: the data section (``image_size``, ``seed``).
      batch_size: elements per batch.

    Raises:
      InputError: one line naming the folder or file: no such folder, no clip folders, a
        clip without video or ``masks.npz``, frames whose size is not ``image_size``, or any
        error of :func:`~ggtalker_jax.data.clip.read_clip`.
    """

    def __init__(self, folder: str | os.PathLike, config: InpainterDataConfig, batch_size: int):
        from ggtalker_jax.data.clip import read_clip
        from ggtalker_jax.data.e2v_clips import find_clip_folders

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(
                f"inpainter.data.source={str(folder)!r}: no such folder; pass a folder of "
                "clips or 'procedural'"
            )
        _check_batch_size(batch_size, "ClipInpainter")
        paths = find_clip_folders(folder)
        if not paths:
            raise InputError(
                f"{folder}: holds no clip folders (folders with meta.json and flame.npz); "
                f"write some with `ggtalker world --out {folder}` or set "
                "inpainter.data.source=procedural"
            )
        self.config = config
        self.batch_size = int(batch_size)
        self.seed = config.seed
        self.frames, self.masks = [], []
        size = config.image_size
        for path in paths:
            clip = read_clip(path)
            if clip.frames is None:
                raise InputError(f"{path}: has no frames.mp4 (an audio-only clip); remove it")
            if clip.head_mask is None:
                raise InputError(
                    f"{path}: has no masks.npz; the inpainter needs each frame's head mask"
                )
            h, w = clip.frames.shape[1:3]
            if (h, w) != (size, size):
                raise InputError(
                    f"{path / 'frames.mp4'}: frames are {w}x{h}, but inpainter.data.image_size "
                    f"is {size}; regenerate the clips at {size}x{size} or set --set "
                    f"inpainter.data.image_size={h}" + ("" if h == w else " (square frames only)")
                )
            self.frames.append(clip.frames)
            self.masks.append(clip.head_mask)

    def batch(self, position: int) -> FrameBatch:
        """Batch number ``position`` (the same position gives the same batch)."""
        rng = np.random.default_rng([self.seed, int(position)])
        return _draw_frames(rng, self.frames, self.masks, self.batch_size)

    def evaluation_frames(self, per_clip: int = 4) -> FrameBatch:
        """``per_clip`` evenly spaced frames of every clip, clip-major."""
        return _spread_frames(self.frames, self.masks, per_clip)


def make_inpainter_source(
    model: FlameModel, config: InpainterDataConfig, batch_size: int, split: str = "train"
):
    """The source ``config.source`` names: :class:`ProceduralInpainter` of ``split``, or
    :class:`ClipInpainter` of a folder (which has no held-out split).

    Raises:
      InputError: an unknown split, or a held-out split of a folder source.
    """
    if config.source == "procedural":
        return ProceduralInpainter(model, config, batch_size, split)
    if split not in SPLITS:
        world_for_split(config, split)  # names the unknown split
    if split != "train":
        raise InputError(
            f"inpainter.data.source={config.source!r} is a folder of clips, which has no "
            "held-out split; evaluate with inpainter.data.source=procedural"
        )
    return ClipInpainter(config.source, config, batch_size)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
