"""One person's clips as adaptation reads them: every frame of every clip in one table, the
held-out frames chosen, the audio kept per clip.

Frames of all clips are concatenated in clip order (``T`` frames in all); each keeps its own
FLAME parameters and camera. The identity shape is the first clip's (a tracker fits one
shape per person; the synthetic world gives every clip of a person the same one). Every
``heldout_every``-th frame (counted over the whole table, starting at ``heldout_every // 2``)
is held out: the head and inpainter phases validate on them and never train on them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ggtalker_jax.data.clip import Clip, read_clip
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.types import FLAME_PARAM_FIELDS, FlameParams


@dataclasses.dataclass(frozen=True)
class AdaptClips:
    """The frames of one person (host arrays).

    Attributes:
      folders: the clip folders, in order.
      clips: the clips as read (frames included).
      frames: ``[T, H, W, 3]`` uint8.
      head_mask: ``[T, H, W]`` uint8 (0/1).
      params: :class:`FlameParams` ``[T]`` (``shape [S]``, the first clip's).
      viewmat: ``[T, 4, 4]``.  K: ``[T, 3, 3]``.
      clip_index: ``[T]`` int32, the clip each frame comes from.
      train: int32 indices of the training frames.  heldout: of the held-out frames.
    """

    folders: tuple[Path, ...]
    clips: tuple[Clip, ...]
    frames: np.ndarray
    head_mask: np.ndarray
    params: FlameParams
    viewmat: np.ndarray
    K: np.ndarray
    clip_index: np.ndarray
    train: np.ndarray
    heldout: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def _check_clip(folder: Path, clip: Clip, model: FlameModel, first: tuple | None) -> None:
    if clip.frames is None:
        raise InputError(
            f"{folder}: has no frames.mp4 (an audio-only clip); adaptation needs video of the "
            "person"
        )
    if clip.head_mask is None:
        raise InputError(
            f"{folder}: has no masks.npz; adaptation needs the head mask of every frame"
        )
    if clip.audio is None or clip.audio.size == 0:
        raise InputError(f"{folder}: has no audio; adaptation needs the clip's speech")
    n_shape, n_exp = clip.flame.shape.shape[-1], clip.flame.expression.shape[-1]
    if (n_shape, n_exp) != (model.n_shape, model.n_exp):
        raise InputError(
            f"{folder / 'flame.npz'}: {n_shape} shape and {n_exp} expression components, but "
            f"the FLAME model {model.source} has {model.n_shape} and {model.n_exp}; fit the "
            "clip with this model or load the model the clip was made with"
        )
    h, w = clip.frames.shape[1:3]
    if first is not None and (h, w) != first[1]:
        raise InputError(
            f"{folder / 'frames.mp4'}: frames are {w}x{h}, but {first[0] / 'frames.mp4'} has "
            f"{first[1][1]}x{first[1][0]}; give clips of one resolution (resize them first)"
        )


def clip_label(clip: Clip, k: int) -> Path:
    """What names an in-memory clip in messages and records: its ``meta["name"]``."""
    return Path(str(clip.meta.get("name", f"<clip {k}>")))


def load_adapt_clips(
    folders: Sequence[str | os.PathLike | Clip], model: FlameModel, heldout_every: int
) -> AdaptClips:
    """Read one person's clips for adaptation.

    Args:
      folders: clip folders (the clip format of :mod:`ggtalker_jax.data.clip`), or clips
        already in memory (:class:`~ggtalker_jax.data.clip.Clip`, named by
        ``meta["name"]``: a GPU job that makes its world in memory).
      model: the FLAME model their parameters belong to.
      heldout_every: hold out every ``k``-th frame.

    Raises:
      InputError: no folder, a missing or broken clip (any error of
        :func:`~ggtalker_jax.data.clip.read_clip`), a clip without video, masks or audio,
        FLAME sizes that do not fit the model, clips of different resolutions, or too few
        frames to hold any out.
    """
    if not folders:
        raise InputError("adapt: no clips given; pass --clips DIR [DIR ...]")
    paths = tuple(
        clip_label(f, k) if isinstance(f, Clip) else Path(f) for k, f in enumerate(folders)
    )
    clips, first = [], None
    for source, path in zip(folders, paths, strict=True):
        if isinstance(source, Clip):
            clip = source
        elif not path.is_dir():
            raise InputError(f"{path}: no such clip folder; pass folders in the clip format")
        else:
            clip = read_clip(path)
        _check_clip(path, clip, model, first)
        first = first or (path, clip.frames.shape[1:3])
        clips.append(clip)
    total = sum(c.n_frames for c in clips)
    if total < 2 * heldout_every:
        raise InputError(
            f"adapt: {total} frames in {len(paths)} clip(s); holding out every "
            f"{heldout_every}th frame needs at least {2 * heldout_every} (give a longer clip or "
            f"set --set adapt.heldout_every=N with a smaller N)"
        )
    cat = lambda get: np.concatenate([get(c) for c in clips], axis=0)
    params = FlameParams(
        shape=np.asarray(clips[0].flame.shape, np.float32),
        **{
            k: cat(lambda c, k=k: np.asarray(getattr(c.flame, k), np.float32))
            for k in FLAME_PARAM_FIELDS
            if k != "shape"
        },
    )
    index = np.arange(total)
    held = (index % heldout_every) == heldout_every // 2
    return AdaptClips(
        folders=paths,
        clips=tuple(clips),
        frames=cat(lambda c: c.frames),
        head_mask=cat(lambda c: c.head_mask),
        params=params,
        viewmat=cat(lambda c: c.viewmat).astype(np.float32),
        K=cat(lambda c: c.K).astype(np.float32),
        clip_index=np.concatenate([np.full(c.n_frames, i, np.int32) for i, c in enumerate(clips)]),
        train=index[~held].astype(np.int32),
        heldout=index[held].astype(np.int32),
    )
