"""The identity folder: what ``ggtalker adapt`` writes and ``ggtalker infer``/``eval`` load.

::

    IDENTITY/
      identity.json    kind, format version, the resolved config, the E2V section the head
                       was built with, the A2E prior's identity table, the hole radius,
                       the phases' record; written last: its presence marks a finished
                       adaptation
      config.json      the resolved config (also each phase's checkpoints compare with it)
      params/          orbax checkpoint of the final parameters: ``head`` (the UV map and
                       the color MLP), ``inpainter``, ``a2e`` (decoder and statistics)
      clip/            the first adaptation clip in the clip format, with the refined FLAME
                       parameters: the background, torso and head pose inference loops
      metrics.json     per phase: steps, time, stop reason, held-out scores over time
      psnr_curve.png   the held-out head PSNR over adaptation time
      phases/<name>/   the phases' checkpoints (what a killed adaptation resumes from)

Loading rebuilds every module from the recorded configs and restores the parameters into
them, so a folder from another config (UV size, network widths) fails with one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.outputs import (
    atomic_file,
    is_partial,
    output_dir,
    refuse_foreign,
    remove_owned,
    write_text_atomic,
)

KIND = "ggtalker-identity"
FORMAT = 1
INFO_NAME = "identity.json"
OWNED = (
    INFO_NAME,
    "config.json",
    "params",
    "clip",
    "metrics.json",
    "psnr_curve.png",
    "phases",
)
_WHAT = "identity.json, config.json, params/, clip/, metrics.json, psnr_curve.png, phases/"


def _owned(path: Path) -> bool:
    return path.name in OWNED or is_partial(path) or path.name.startswith("params.orbax")


def claim_identity_dir(out: str | os.PathLike, force: bool) -> Path:
    """Check the identity folder before any work.

    A finished identity (``identity.json`` there) is redone only with ``force``, which removes
    only what adaptation writes; an unfinished one is resumed; a folder holding anything else
    is refused, ``force`` or not.

    Raises:
      InputError: as above, or an unusable path.
    """
    out = output_dir(out)
    if not out.is_dir():
        return out
    refuse_foreign(out, _owned, _WHAT)
    if (out / INFO_NAME).is_file():
        if not force:
            raise InputError(
                f"{out}: already holds an adapted identity; pass --force to adapt again "
                "(or choose another --out)"
            )
        remove_owned(out, _owned, _WHAT)
    return out


def _state_tree(adapted) -> dict:
    from flax import nnx

    from ggtalker_jax.models.a2e import DataStats

    return {
        "head": nnx.state(adapted.head, nnx.Param),
        "inpainter": nnx.state(adapted.inpainter, nnx.Param),
        "a2e": nnx.state(adapted.speaker.prior, (nnx.Param, DataStats)),
    }


def _save_params(folder: Path, tree: dict) -> None:
    import orbax.checkpoint as ocp

    from ggtalker_jax.outputs import remove_path

    target = folder / "params"
    if target.exists():
        remove_path(target)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(target.absolute(), tree)  # written under a temporary name, then renamed
        ckptr.wait_until_finished()


def _write_clip(folder: Path, adapted) -> None:
    from ggtalker_jax.data.clip import write_clip
    from ggtalker_jax.types import FlameParams

    clips = adapted.clips
    clip = clips.clips[0]
    n = clip.n_frames  # the first clip's frames come first in the table
    flame = {k: getattr(clip.flame, k) for k in ("shape",)}
    for k, v in adapted.corrections.items():
        flame[k] = np.asarray(getattr(clip.flame, k), np.float32) + v[:n]
    refined = dataclasses.replace(clip, flame=FlameParams(**flame), views=())
    write_clip(folder / "clip", refined, force=True)


def curve_plot(phases: dict, width: int = 720, height: int = 260):
    """The held-out PSNR over adaptation time as a PIL image: the head-mask PSNR of the head
    and joint phases, then the full-frame PSNR of the inpainter phase, one colour each."""
    from PIL import Image, ImageDraw

    points = [
        (c["t"], c["psnr"], name)
        for name in ("head", "joint", "inpainter")
        for c in phases.get(name, {}).get("curve", [])
        if "psnr" in c
    ]
    image = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    if not points:
        draw.text((10, 10), "no held-out evaluation ran", fill=(0, 0, 0))
        return image
    t = np.asarray([p[0] for p in points])
    y = np.asarray([p[1] for p in points])
    lo, hi = float(np.floor(y.min() - 1)), float(np.ceil(y.max() + 1))
    left, right, top, bottom = 50, width - 10, 20, height - 30
    sx = lambda v: left + (right - left) * v / max(float(t.max()), 1e-6)
    sy = lambda v: bottom - (bottom - top) * (v - lo) / max(hi - lo, 1e-6)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0))
    for level in np.linspace(lo, hi, 5):
        draw.text((4, sy(level) - 6), f"{level:.0f}", fill=(60, 60, 60))
    colors = {"head": (31, 119, 180), "joint": (214, 39, 40), "inpainter": (44, 160, 44)}
    for name in colors:
        seg = [(sx(a), sy(b)) for a, b, n in points if n == name]
        if len(seg) > 1:
            draw.line(seg, fill=colors[name], width=2)
        if seg:
            label = "inpainter (full frame)" if name == "inpainter" else f"{name} (head)"
            draw.text((seg[0][0] + 3, top - 14), label, fill=colors[name])
    draw.text(
        (left, height - 18), f"seconds (0 to {t.max():.0f}); held-out PSNR, dB", fill=(0, 0, 0)
    )
    return image


def write_identity(folder: Path, adapted, config) -> None:
    """Write the finished identity (module docstring); ``identity.json`` last."""
    folder = Path(folder)
    _save_params(folder, _state_tree(adapted))
    _write_clip(folder, adapted)
    phases = {k: v.to_json() for k, v in adapted.phases.items()}
    metrics = {"phases": phases, **{k: adapted.info[k] for k in ("seconds", "minutes")}}
    write_text_atomic(folder / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    with atomic_file(folder / "psnr_curve.png") as tmp:
        curve_plot(phases).save(tmp, format="PNG")
    write_text_atomic(folder / "config.json", config.to_json() + "\n")
    info = {
        "kind": KIND,
        "format": FORMAT,
        "config": json.loads(config.to_json()),
        "a2e_identities": list(adapted.speaker.identities),
        "clips": [str(p) for p in adapted.clips.folders],
        "frames": adapted.clips.n_frames,
        "size": list(adapted.clips.size),
        **adapted.info,
    }
    write_text_atomic(folder / INFO_NAME, json.dumps(info, indent=2) + "\n")


@dataclasses.dataclass
class Identity:
    """A loaded identity folder.

    Attributes:
      folder: the folder.  info: ``identity.json``.  config: the resolved :class:`Config`.
      head: :class:`~ggtalker_jax.models.gaussian_head.GaussianHead`.
      inpainter: :class:`~ggtalker_jax.models.inpainter.BodyInpainter`.
      speaker: :class:`~ggtalker_jax.motion.Speaker`.
      clip: the identity's clip (background, torso, head pose, refined FLAME).
      hole_radius: the inpainter's dilation at this resolution, pixels.
    """

    folder: Path
    info: dict
    config: object
    head: object
    inpainter: object
    speaker: object
    clip: object
    hole_radius: float


def read_identity_info(folder: str | os.PathLike) -> tuple[Path, dict]:
    """``(folder, identity.json)``.

    Raises:
      InputError: no folder, an unfinished adaptation, or not an identity folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"--identity {folder}: no such folder; make one with `ggtalker adapt --clips DIR "
            f"--out {folder}`"
        )
    path = folder / INFO_NAME
    if not path.is_file():
        hint = (
            "its adaptation has not finished; rerun the same `ggtalker adapt` to resume it"
            if (folder / "phases").is_dir()
            else "it is not an identity folder written by `ggtalker adapt`"
        )
        raise InputError(f"{folder}: has no {INFO_NAME}; {hint}")
    try:
        info = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable ({e}); adapt again with --force") from None
    if not isinstance(info, dict) or info.get("kind") != KIND:
        raise InputError(f"{path}: not a ggtalker identity file; adapt again with --force")
    if info.get("format") != FORMAT:
        raise InputError(
            f"{path}: identity format {info.get('format')!r}, this ggtalker reads {FORMAT}; "
            "adapt again with this version"
        )
    return folder, info


def load_identity(folder: str | os.PathLike, model=None) -> Identity:
    """Load an identity folder (module docstring).

    Args:
      folder: the folder ``ggtalker adapt`` wrote.
      model: the FLAME model (default: the one its config names).

    Raises:
      InputError: as :func:`read_identity_info`; parameters that do not fit the recorded
        configs (a folder from an incompatible version).
    """
    import orbax.checkpoint as ocp
    from flax import nnx

    from ggtalker_jax.config.a2e import a2e_config_from_dict
    from ggtalker_jax.config.e2v import e2v_config_from_dict
    from ggtalker_jax.config.inpainter import inpainter_config_from_dict
    from ggtalker_jax.config.root import config_from_dict
    from ggtalker_jax.data.clip import read_clip
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.models.a2e import DataStats
    from ggtalker_jax.models.audio_encoder import make_feature_extractor
    from ggtalker_jax.models.gaussian_head import GaussianHead
    from ggtalker_jax.models.inpainter import BodyInpainter
    from ggtalker_jax.motion import Speaker
    from ggtalker_jax.render.head import make_head_template
    from ggtalker_jax.train.a2e import build_prior, motion_layout

    folder, info = read_identity_info(folder)
    try:
        config = config_from_dict(info["config"])
        e2v = e2v_config_from_dict(info["e2v"])
    except (KeyError, TypeError) as e:
        raise InputError(
            f"{folder / INFO_NAME}: incomplete ({e}); adapt again with --force"
        ) from None
    if model is None:
        model = load_flame(config.flame_model or None)
    uv = config.adapt.uv_size or e2v.uv_size
    template = make_head_template(model, uv)
    head = GaussianHead(template, template.base_map, e2v, nnx.Rngs(0))
    try:
        inpainter = BodyInpainter(inpainter_config_from_dict(info["inpainter"]), nnx.Rngs(0))
        a2e = a2e_config_from_dict(info["a2e"])
    except (KeyError, TypeError) as e:
        raise InputError(
            f"{folder / INFO_NAME}: incomplete ({e}); adapt again with --force"
        ) from None
    extractor = make_feature_extractor(a2e)
    identities = list(info.get("a2e_identities", []))
    prior = build_prior(a2e, extractor.dim, motion_layout(a2e, model), len(identities))
    tree = {
        "head": nnx.state(head, nnx.Param),
        "inpainter": nnx.state(inpainter, nnx.Param),
        "a2e": nnx.state(prior, (nnx.Param, DataStats)),
    }
    abstract = jax_abstract(tree)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            restored = ckptr.restore((folder / "params").absolute(), abstract)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise InputError(
            f"{folder / 'params'}: does not fit the identity's recorded config "
            f"({str(e).splitlines()[0][:160]}); adapt again with --force"
        ) from None
    nnx.update(head, restored["head"])
    nnx.update(inpainter, restored["inpainter"])
    nnx.update(prior, restored["a2e"])
    speaker = Speaker(prior, extractor, identities, model.n_exp)
    clip = read_clip(folder / "clip")
    return Identity(
        folder=folder,
        info=info,
        config=config,
        head=head,
        inpainter=inpainter,
        speaker=speaker,
        clip=clip,
        hole_radius=float(info["hole_radius"]),
    )


def jax_abstract(tree):
    """Shape/dtype structs of a pytree of arrays (an orbax restore target)."""
    import jax
    import orbax.checkpoint as ocp

    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
