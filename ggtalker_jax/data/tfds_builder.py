"""A TensorFlow Datasets builder over clip folders, usable without TensorFlow.

TFDS needs TensorFlow only for ``Image``/``Video`` features and ``as_dataset``. This builder
stores every field as a ``Tensor`` (frames as uint8) in ``array_record`` files and is read with
``builder.as_data_source()``: random access, numpy out, no TensorFlow. ``tensorflow-datasets``
and ``array-record`` are imported lazily (``pip install 'ggtalker-jax[data]'``).

>>> source = build_clip_dataset("worlds/w0", "data/tfds")["train"]   # doctest: +SKIP
>>> example = source[0]; example["frames"].shape                      # doctest: +SKIP
(100, 256, 256, 3)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from ggtalker_jax.data.clip import FLAME_KEYS, read_clip
from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FLAME_PARAM_SIZES

DATASET_NAME = "ggtalker_clips"


def find_clips(root: str | os.PathLike) -> list[Path]:
    """Finished clip folders under ``root`` (those with a ``meta.json``), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder of clips")
    clips = sorted(
        p.parent
        for p in root.rglob("meta.json")
        if not p.parent.name.endswith(".partial") and p.parent.parent.name != "views"
    )
    if not clips:
        raise InputError(
            f"{root}: holds no clips (no */meta.json); make some with " "`ggtalker world --out DIR`"
        )
    return clips


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise InputError(
            "the TFDS builder needs tensorflow-datasets and array-record; "
            "install them with `pip install 'ggtalker-jax[data]'`"
        ) from None
    return tfds


@functools.cache
def _builder_class(tfds):
    # Built once per process and not put in TFDS's global registry (a library should not
    # claim a dataset name for every process that imports it).
    class GGTalkerClips(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Talking-head clips: frames, audio, FLAME parameters, cameras and masks."""

        name = DATASET_NAME
        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES: ClassVar[dict] = {"1.0.0": "Clip format of ggtalker-jax 0.1."}

        def __init__(self, *, clips_root: str | None = None, **kwargs):
            self._clips_root = clips_root
            super().__init__(**kwargs)

        def _info(self):
            t = tfds.features.Tensor
            # Tensors with several unknown dimensions must be stored encoded; zlib also
            # shrinks the masks and the mostly-zero expression tracks.
            z = functools.partial(t, encoding="zlib")
            features = {
                "frames": z(shape=(None, None, None, 3), dtype=np.uint8),
                "head_mask": z(shape=(None, None, None), dtype=np.uint8),
                "torso_mask": z(shape=(None, None, None), dtype=np.uint8),
                "audio": t(shape=(None,), dtype=np.float32),
                "shape": t(shape=(None,), dtype=np.float32),
                "expression": z(shape=(None, None), dtype=np.float32),
                "viewmat": t(shape=(None, 4, 4), dtype=np.float32),
                "K": t(shape=(None, 3, 3), dtype=np.float32),
                "clip": tfds.features.Text(),
                "identity": tfds.features.Text(),
                "language": tfds.features.Text(),
            }
            for key, size in FLAME_PARAM_SIZES.items():  # per-frame pose fields
                features[key] = t(shape=(None, size), dtype=np.float32)
            return tfds.core.DatasetInfo(
                builder=self, description=__doc__, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            if self._clips_root is None:
                raise InputError("building the dataset needs clips_root=<folder of clips>")
            return {"train": self._generate_examples(find_clips(self._clips_root))}

        def _generate_examples(self, clips):
            for folder in clips:
                clip = read_clip(folder)
                example = {k: np.asarray(getattr(clip.flame, k), np.float32) for k in FLAME_KEYS}
                t, h, w = clip.frames.shape[:3]
                empty = np.zeros((t, h, w), np.uint8)
                example.update(
                    frames=clip.frames,
                    head_mask=empty if clip.head_mask is None else clip.head_mask,
                    torso_mask=empty if clip.torso_mask is None else clip.torso_mask,
                    audio=clip.audio.astype(np.float32),
                    viewmat=clip.viewmat,
                    K=clip.K,
                    clip=str(folder.name),
                    identity=str(clip.meta.get("identity", "")),
                    language=str(clip.meta.get("language", "")),
                )
                yield str(folder), example

    return GGTalkerClips


def build_clip_dataset(clips_root: str | os.PathLike, data_dir: str | os.PathLike):
    """Build (once) and open the TFDS dataset of every clip under ``clips_root``.

    Returns:
      ``{"train": data source}``; each example is a dict of numpy arrays (text as bytes).
    """
    tfds = _tfds()
    builder = _builder_class(tfds)(
        clips_root=str(clips_root), data_dir=str(data_dir), file_format="array_record"
    )
    builder.download_and_prepare()
    return builder.as_data_source()
