"""The identity pool of the procedural E2V source: people of the synthetic world's library.

Identity ``i`` of the pool is :func:`ggtalker_jax.world.generate.make_identity` number ``i`` of
a world whose seed, texture size and resolution come from :class:`E2VDataConfig`, so the pool
holds the same people a world written with that seed holds, and the training split
(``0..identities-1``) and the held-out split (``identities..identities+heldout-1``) are distinct
people drawn from one seed.

Cost: making one identity is almost all :func:`~ggtalker_jax.world.texture.make_texture`
(scipy filters on the host): 0.025 s at 128², 0.07 s at 256², 0.26-0.32 s at 512² on one CPU
core (2-core CPU). Threads do not help (the texture maker holds the GIL: 2 threads made 512²
identities at 0.34 s each, no faster than one), so large pools are made by worker processes,
fresh interpreters with a CPU-only JAX: 256 identities at 512² took 12.1 s on the H200
machine's 16 cores (47 ms an identity, worker start-up included), instead of about 80 s in
one process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.config.e2v import E2VDataConfig
from ggtalker_jax.flame.model import FlameModel

# Below this many identities x texels, spawning workers costs more than it saves (a spawned
# worker imports JAX and compiles the rest pose, about 2-3 s).
_PARALLEL_TEXELS = 32 * 256**2


@dataclasses.dataclass(frozen=True)
class IdentityPool:
    """What E2V needs of each identity, stacked (host numpy).

    Attributes:
      index: ``[I]`` int32 identity number in the world (``make_identity``'s ``index``).
      shape: ``[I, S]`` float32 FLAME shape coefficients.
      texture: ``[I, Ht, Wt, 3]`` uint8 UV textures (row 0 is v = 1).
      camera_target: ``[I, 3]`` float32 point the cameras look at (rest head).
    """

    index: np.ndarray
    shape: np.ndarray
    texture: np.ndarray
    camera_target: np.ndarray

    @property
    def size(self) -> int:
        return int(self.index.shape[0])


def world_config_for(config: E2VDataConfig) -> WorldConfig:
    """The world whose identities the procedural E2V source draws: the same seed and texture
    size (the world's minimum is 64; smaller E2V textures are made at their own size).

    The resolution is the world's smallest: a person does not depend on it (only the room
    backdrop ``make_identity`` also makes does, and E2V draws a solid background instead).
    """
    return WorldConfig(
        identities=config.identities + config.heldout,
        clips_per_identity=1,
        seed=config.seed,
        resolution=32,
        texture_size=max(config.texture_size, 64),
    )


def _make_identities(
    model: FlameModel, world: WorldConfig, texture_size: int, indices: Sequence[int]
):
    """``[(shape, texture, camera_target)]`` of the given identities, in order."""
    from ggtalker_jax.world.generate import make_identity
    from ggtalker_jax.world.texture import make_uv_maps

    maps = make_uv_maps(model, texture_size)
    out = []
    for i in indices:
        person = make_identity(model, maps, world, int(i))
        out.append((person.shape, person.texture, person.camera_target))
    return out


def _run_workers(model: FlameModel, config: E2VDataConfig, chunks: list[list[int]]):
    """Make each chunk of identities in its own ``python -m`` process (CPU-only JAX).

    Fresh interpreters, not ``multiprocessing``: a spawned worker re-imports the caller's
    ``__main__``, which hangs or recurses in any script without a ``__main__`` guard, and a
    forked one inherits JAX's threads.
    """
    with tempfile.TemporaryDirectory(prefix="e2v_pool_") as tmp:
        model_path = Path(tmp) / "model.npz"
        np.savez(model_path, **model.to_arrays())
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # never take the accelerator
        procs = []
        for w, chunk in enumerate(chunks):
            out = Path(tmp) / f"part{w}.npz"
            args = [
                str(model_path),
                model.source,
                json.dumps(dataclasses.asdict(config)),
                ",".join(map(str, chunk)),
                str(out),
            ]
            cmd = [sys.executable, "-m", "ggtalker_jax.data.e2v_pool", *args]
            procs.append((subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE), out))
        made = []
        for proc, out in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"identity pool worker failed ({proc.returncode}): {tail[0]}")
            with np.load(out) as part:
                made += list(
                    zip(part["shape"], part["texture"], part["camera_target"], strict=True)
                )
        return made


def _worker_main(argv: list[str]) -> None:
    """``python -m ggtalker_jax.data.e2v_pool MODEL SOURCE CONFIG_JSON INDICES OUT``."""
    model_path, source, config_json, indices, out = argv
    with np.load(model_path) as z:
        model = FlameModel.from_arrays(dict(z), source=source)
    config = E2VDataConfig(**json.loads(config_json))
    made = _make_identities(
        model, world_config_for(config), config.texture_size, [int(i) for i in indices.split(",")]
    )
    np.savez(
        out,
        **{
            k: np.stack([m[n] for m in made])
            for n, k in enumerate(("shape", "texture", "camera_target"))
        },
    )


def build_identity_pool(
    model: FlameModel,
    config: E2VDataConfig,
    indices: Sequence[int],
    workers: int | None = None,
) -> IdentityPool:
    """Make the identities ``indices`` of the E2V world (:func:`world_config_for`).

    Args:
      model: the FLAME model (with UVs and masks: the texture maker reads both).
      config: the data config (seed, texture size, image size).
      indices: identity numbers, e.g. ``range(config.identities)``.
      workers: processes to spread the work over; ``None`` picks one per CPU core when the
        pool is large (more than about 32 identities at 256²), else works in this process.

    Returns:
      The :class:`IdentityPool`, in the order of ``indices``.
    """
    model.require("uv")
    indices = [int(i) for i in indices]
    world = world_config_for(config)
    if workers is None:
        large = len(indices) * config.texture_size**2 > _PARALLEL_TEXELS
        workers = min(os.cpu_count() or 1, len(indices)) if large else 1
    if workers <= 1:
        made = _make_identities(model, world, config.texture_size, indices)
    else:
        chunks = [indices[w::workers] for w in range(workers)]
        by_index = dict(
            zip([i for c in chunks for i in c], _run_workers(model, config, chunks), strict=True)
        )
        made = [by_index[i] for i in indices]
    return IdentityPool(
        index=np.asarray(indices, np.int32),
        shape=np.stack([m[0] for m in made]).astype(np.float32),
        texture=np.stack([m[1] for m in made]),
        camera_target=np.stack([m[2] for m in made]).astype(np.float32),
    )


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
