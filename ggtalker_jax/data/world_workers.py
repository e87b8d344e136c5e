"""A procedural world made by worker processes: each a fresh ``python -m`` interpreter.

The parent writes the FLAME model to a temporary ``.npz`` and passes the world config as JSON;
each worker makes the clips of its chunk of people and writes them to a file of the stage's
format, which the parent reads back before the temporary folder goes. Fresh interpreters with
CPU-only JAX, for the reasons :mod:`ggtalker_jax.data.e2v_pool` gives (not
``multiprocessing``).

A stage's data module is the worker: its ``_worker_main(argv)`` calls :func:`worker_inputs`
and writes the file its parent's ``read`` expects.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.flame.model import FlameModel


def run_world_workers(
    module: str,
    model: FlameModel,
    world: WorldConfig,
    chunks: list[list[int]],
    read: Callable[[Path, list[int]], list],
    *,
    what: str,
    suffix: str,
) -> list[list]:
    """Each chunk of people of ``world`` made by its own ``python -m module`` process.

    Args:
      module: the worker module, run as ``python -m module MODEL SOURCE WORLD_JSON INDICES OUT``.
      model: the FLAME model.
      world: the world config.
      chunks: person indices, one list per worker.
      read: ``(out file, chunk) -> clips``: a worker's output read back.
      what: the workers' name in messages and in the temporary folder's prefix.
      suffix: the output files' suffix (``".npz"``).

    Returns:
      ``read``'s clips of each chunk, in chunk order.

    Raises:
      RuntimeError: a worker that failed (its last line of stderr).
    """
    with tempfile.TemporaryDirectory(prefix=f"{what.lower().replace(' ', '_')}_") as tmp:
        model_path = Path(tmp) / "model.npz"
        np.savez(model_path, **model.to_arrays())
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # never take the accelerator
        world_json = json.dumps(dataclasses.asdict(world))
        procs = []
        for w, chunk in enumerate(chunks):
            out = Path(tmp) / f"part{w}{suffix}"
            args = [str(model_path), model.source, world_json, ",".join(map(str, chunk)), str(out)]
            cmd = [sys.executable, "-m", module, *args]
            procs.append((subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE), out, chunk))
        parts = []
        for proc, out, chunk in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"{what} worker failed ({proc.returncode}): {tail[0]}")
            parts.append(read(out, chunk))
        return parts


def worker_inputs(argv: list[str]) -> tuple[FlameModel, WorldConfig, list[int], str]:
    """A worker's ``MODEL SOURCE WORLD_JSON INDICES OUT`` arguments, read.

    Returns:
      ``(FLAME model, world config, person indices, output path)``.
    """
    model_path, source, world_json, indices, out = argv
    with np.load(model_path) as z:
        model = FlameModel.from_arrays(dict(z), source=source)
    raw = json.loads(world_json)
    world = WorldConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    return model, world, [int(i) for i in indices.split(",")], out
