"""E2V batches from clips on disk (the clip format, :mod:`ggtalker_jax.data.clip`).

A batch element is two distinct frames of one clip: the source (reference) frame ``i`` from
the clip's main camera and the target frame ``j != i`` from any of its cameras that has head
masks (the main one, and ``views/<k>`` with a ``masks.npz``: exact novel views for synthetic
clips). Pixels outside the head mask are set to the background colour, **black**, in both
images, so a clip's torso and room never reach the loss; the source is then resized to
``crop_size`` (PIL bilinear, which averages when shrinking) with ``K`` scaled to match.

Every clip is decoded once, when the source is built, and held in memory as uint8 (about
``4 · T · H · W`` bytes per camera): fine for the few hundred clips of a fine-tuning set, not
for a large corpus (that is what :class:`~ggtalker_jax.data.e2v.ProceduralE2V` is for).
Batches are host numpy, deterministic in ``position`` (``np.random.default_rng([seed,
position])``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jax
import numpy as np

from ggtalker_jax.config.e2v import E2VDataConfig
from ggtalker_jax.data.clip import read_clip
from ggtalker_jax.data.e2v import E2VBatch
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.types import FLAME_PARAM_FIELDS, FlameParams

BACKGROUND = (0.0, 0.0, 0.0)
"""Colour of everything outside the head mask in clip batches (black)."""


def find_clip_folders(root: str | os.PathLike) -> list[Path]:
    """Clip folders under ``root`` (``root`` itself included), sorted: folders holding a
    ``meta.json`` and a ``flame.npz``; unfinished ``*.partial`` folders and the insides of a
    clip (its ``views/``) are skipped."""
    root = Path(root)
    found = []
    for here, dirs, files in os.walk(root):
        if "meta.json" in files and "flame.npz" in files:
            found.append(Path(here))
            dirs.clear()  # a clip's views are part of it
            continue
        dirs[:] = sorted(d for d in dirs if not d.endswith(".partial"))
    return sorted(found)


@dataclasses.dataclass(frozen=True)
class _Camera:
    frames: np.ndarray  # [T, H, W, 3] uint8, zero outside the head
    mask: np.ndarray  # [T, H, W] uint8
    viewmat: np.ndarray  # [T, 4, 4]
    K: np.ndarray  # [T, 3, 3]


@dataclasses.dataclass(frozen=True)
class _ClipData:
    folder: Path
    identity: int
    flame: FlameParams  # host numpy, [T] per-frame fields, shape [S]
    cameras: tuple[_Camera, ...]  # main camera first

    @property
    def n_frames(self) -> int:
        return int(self.flame.expression.shape[0])


def _masked(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return frames * mask[..., None].astype(np.uint8)


def _load_clip(folder: Path, identity: int, model: FlameModel, config: E2VDataConfig):
    clip = read_clip(folder)
    if clip.frames is None:
        raise InputError(f"{folder}: has no frames.mp4 (an audio-only clip); E2V needs video")
    if clip.n_frames < 2:
        raise InputError(
            f"{folder}: holds {clip.n_frames} frame; E2V pairs two distinct frames of a clip, "
            "so give it at least 2 (or remove it)"
        )
    h, w = clip.frames.shape[1:3]
    if (h, w) != (config.image_size, config.image_size):
        raise InputError(
            f"{folder / 'frames.mp4'}: frames are {w}x{h}, but e2v.data.image_size is "
            f"{config.image_size}; regenerate the clips at {config.image_size}x"
            f"{config.image_size} or set --set e2v.data.image_size={h}"
            + ("" if h == w else " (square frames only)")
        )
    n_shape, n_exp = clip.flame.shape.shape[-1], clip.flame.expression.shape[-1]
    if (n_shape, n_exp) != (model.n_shape, model.n_exp):
        raise InputError(
            f"{folder / 'flame.npz'}: {n_shape} shape and {n_exp} expression components, but "
            f"the FLAME model {model.source} has {model.n_shape} and {model.n_exp}; fit the "
            "clip with this model or load the model the clip was made with"
        )
    if clip.head_mask is None:
        raise InputError(f"{folder}: has no masks.npz; E2V needs the head mask of every frame")
    cameras = [_Camera(_masked(clip.frames, clip.head_mask), clip.head_mask, clip.viewmat, clip.K)]
    for view in clip.views:
        if view.head_mask is not None:
            frames = _masked(view.frames, view.head_mask)
            cameras.append(_Camera(frames, view.head_mask, view.viewmat, view.K))
    flame = FlameParams(**{k: np.asarray(getattr(clip.flame, k)) for k in FLAME_PARAM_FIELDS})
    return _ClipData(folder, identity, flame, tuple(cameras))


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[size, size, 3]`` float32 0..1."""
    if image.shape[0] != size or image.shape[1] != size:
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return image.astype(np.float32) / 255.0


class ClipE2V:
    """E2V batches from a folder of clips (searched recursively), on the host.

    Args:
      folder: a clip folder or any folder above clip folders (e.g. a world).
      model: the FLAME model the clips' parameters belong to.
      config: the data config (``image_size``, ``crop_size``, ``seed``).
      batch_size: elements per batch.

    Raises:
      InputError: one line naming the folder or file, the value and the fix: no clip
        folders, a clip with fewer than 2 frames or no video or head masks, frames whose size
        is not ``image_size``, FLAME sizes that do not match the model, or any error of
        :func:`~ggtalker_jax.data.clip.read_clip`.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        model: FlameModel,
        config: E2VDataConfig,
        batch_size: int,
    ):
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(
                f"e2v.data.source={str(folder)!r}: no such folder; pass a folder of clips or "
                "'procedural'"
            )
        if batch_size < 1:
            raise InputError(f"ClipE2V: batch_size is {batch_size}; pass 1 or more")
        paths = find_clip_folders(folder)
        if not paths:
            raise InputError(
                f"{folder}: holds no clip folders (folders with meta.json and flame.npz); "
                f"write some with `ggtalker world --out {folder}` or set "
                "e2v.data.source=procedural"
            )
        self.config = config
        self.batch_size = int(batch_size)
        self.folder = folder
        names = [_identity_name(p) for p in paths]
        self.identity_names = tuple(sorted(set(names)))
        number = {n: k for k, n in enumerate(self.identity_names)}
        self.clips = tuple(
            _load_clip(p, number[n], model, config) for p, n in zip(paths, names, strict=True)
        )

    def batch(self, position: int) -> E2VBatch:
        """Batch number ``position`` (the same position gives the same batch)."""
        rng = np.random.default_rng([self.config.seed, int(position)])
        parts = [self._element(rng) for _ in range(self.batch_size)]
        return E2VBatch(*jax.tree.map(lambda *xs: np.stack(xs), *parts))

    def _element(self, rng: np.random.Generator) -> tuple:
        """One element's fields, in :class:`E2VBatch` order."""
        clip = self.clips[int(rng.integers(len(self.clips)))]
        t = clip.n_frames
        i = int(rng.integers(t))
        j = (i + 1 + int(rng.integers(t - 1))) % t  # any other frame
        source, target = clip.cameras[0], clip.cameras[int(rng.integers(len(clip.cameras)))]
        crop = self.config.crop_size
        source_K = source.K[i].copy()
        source_K[:2] *= crop / source.frames.shape[2]  # pixel centres at +0.5 scale exactly
        params = lambda k: FlameParams(
            shape=clip.flame.shape,
            **{n: getattr(clip.flame, n)[k] for n in FLAME_PARAM_FIELDS if n != "shape"},
        )
        return (
            _resize(source.frames[i], crop),
            params(i),
            source.viewmat[i],
            source_K,
            target.frames[j].astype(np.float32) / 255.0,
            params(j),
            target.viewmat[j],
            target.K[j],
            target.mask[j].astype(np.float32),
            np.asarray(BACKGROUND, np.float32),
            np.int32(clip.identity),
            np.int32(0),  # dropped: frames read from disk are complete
        )


def _identity_name(folder: Path) -> str:
    """A clip's identity: ``meta.json``'s ``identity``, else its parent folder's name."""
    import json

    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
    except (OSError, ValueError):
        meta = {}  # read_clip reports a broken meta.json with the right message
    name = meta.get("identity") if isinstance(meta, dict) else None
    return str(name) if name is not None else folder.parent.name
