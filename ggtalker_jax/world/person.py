"""One synthetic person speaking several clips of chosen lengths and languages: the
adaptation clip and the held-out clips (another sentence, another language) of the demo,
the benchmarks and the end-to-end test.

A person of the world is fixed by the world seed, the identity index and the resolution (shape,
texture, torso, background, voice pitch, rate and speaking style draw from streams of their
own); the language a clip is spoken in and its length change only what is said. Clip ``j``
of a :class:`ClipSpec` draws its sentences, head motion and cameras from stream ``j``, so two
specs with different ``index`` never say the same thing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.data.clip import Clip, write_clip
from ggtalker_jax.flame.model import FlameModel


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """One clip of the person.

    Attributes:
      name: the clip folder's name.
      seconds: length.  language: espeak voice.  index: the clip's random stream.
      views: extra cameras (novel-view ground truth).
    """

    name: str
    seconds: float
    language: str = "en"
    index: int = 0
    views: int = 0


def person_clips(
    model: FlameModel,
    specs: Sequence[ClipSpec],
    resolution: int,
    seed: int = 0,
    identity: int = 0,
) -> list[Clip]:
    """The clips ``specs`` of identity ``identity`` of world ``seed`` (module docstring), in
    memory; each ``meta["name"]`` is its spec's name.

    Raises:
      InputError: an unknown voice, or sizes the world refuses.
    """
    from ggtalker_jax.world.generate import check_world_inputs, generate_clip, make_identity
    from ggtalker_jax.world.texture import make_uv_maps

    clips, person = [], None
    for spec in specs:
        config = WorldConfig(
            identities=identity + 1,
            clips_per_identity=spec.index + 1,
            seconds=spec.seconds,
            resolution=resolution,
            seed=seed,
            languages=(spec.language,),
            views=spec.views,
        )
        check_world_inputs(config)
        if person is None:
            maps = make_uv_maps(model, config.texture_side)
            person = make_identity(model, maps, config, identity)
        # The same person in this clip's language (make_identity's other fields do not
        # depend on it).
        look = dataclasses.replace(person, language=spec.language, voice=spec.language)
        clip = generate_clip(model, look, config, identity, spec.index)
        clips.append(dataclasses.replace(clip, meta={**clip.meta, "name": spec.name}))
    return clips


def write_person(
    folder: str | os.PathLike,
    model: FlameModel,
    specs: Sequence[ClipSpec],
    resolution: int,
    seed: int = 0,
    identity: int = 0,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Write :func:`person_clips` as clip folders ``folder/<spec.name>`` (each atomic; a
    clip already there is kept, so a rerun continues).

    Returns:
      ``{spec.name: clip folder}``.
    """
    folder = Path(folder)
    out = {}
    todo = [s for s in specs if force or not (folder / s.name / "meta.json").is_file()]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="world", unit="clip", dynamic_ncols=True)
    for spec in specs:
        path = folder / spec.name
        if spec in todo:
            (clip,) = person_clips(model, [spec], resolution, seed, identity)
            write_clip(path, clip, force=True)
            if bar is not None:
                bar.update(1)
        out[spec.name] = path
    if bar is not None:
        bar.close()
    return out
