"""Benchmark the CPU splatting backends (``reference``, ``xla``) on the head workload.

Gaussians on the default head's surface (render/head_scene.head_gaussians), one portrait
camera, RGB. For each case and backend: the median milliseconds of the jitted forward and
of forward+backward (value and gradients of a weighted image sum w.r.t. means, quats,
scales, opacities and colours) over ``--iters`` calls after a warm-up, one sync per call.

    python tools/bench_splat_cpu.py [--iters 10] [--cases 128x5000,128x15000,256x58000]
        [--tile-size 8,16] [--repeats 3]

The machine may be shared: ``--repeats`` times the whole table and each cell keeps the
minimum of its medians; the load average is printed with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.flame import load_flame
from ggtalker_jax.kernels.splat import rasterization
from ggtalker_jax.render.head_scene import head_gaussians, portrait_cameras

FIELDS = ("means", "quats", "scales", "opacities", "colors")
# Dense reference cases whose gradient does not fit in memory here (pixels x Gaussians).
REFERENCE_MAX_PAIRS = {"forward": 256 * 256 * 60_000, "backward": 128 * 128 * 6_000}


def parse_case(text: str) -> tuple[int, int]:
    """``"SIZExN"`` -> ``(size, n)``; one clear line for argparse otherwise."""
    parts = text.strip().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"case {text!r}: expected SIZExN with positive integers, e.g. 128x15000"
        )
    return int(parts[0]), int(parts[1])


def parse_cases(text: str) -> list[tuple[int, int]]:
    """Comma-separated :func:`parse_case` list."""
    return [parse_case(case) for case in text.split(",")]


def median_ms(fn, iters: int) -> float:
    """Median wall time of ``fn()`` (synced) over ``iters`` calls after two warm-ups."""
    for _ in range(2):
        jax.block_until_ready(fn())
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def parse_tiles(text: str) -> list[int]:
    """Comma-separated tile sides (powers of two)."""
    tiles = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1 or int(part) & (int(part) - 1):
            raise argparse.ArgumentTypeError(
                f"tile size {part!r}: expected a power of two, e.g. 8 or 16"
            )
        tiles.append(int(part))
    return tiles


def bench_case(model, size: int, n: int, backend: str, iters: int, tile_size: int = 16) -> dict:
    """Forward and forward+backward milliseconds of one backend on one head frame."""
    g = head_gaussians(model, n, np.random.default_rng(0))
    view, k = (jnp.asarray(x) for x in portrait_cameras(model, size, [0.0]))
    args = [jnp.asarray(getattr(g, f)) for f in FIELDS]
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(1, size, size, 3)), jnp.float32)
    render = lambda *a: rasterization(*a, view, k, size, size, backend=backend, tile_size=tile_size)
    fwd = jax.jit(lambda *a: render(*a)[0])
    loss = lambda *a: jnp.sum(render(*a)[0] * weights)
    fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(FIELDS)))))
    row = {"backend": backend, "size": size, "n": n, "tile": tile_size}
    if backend == "reference" and size * size * n > REFERENCE_MAX_PAIRS["forward"]:
        return row | {"note": "skipped: dense forward too large"}
    row["forward_ms"] = median_ms(lambda: fwd(*args), iters)
    if backend == "reference" and size * size * n > REFERENCE_MAX_PAIRS["backward"]:
        return row | {"note": "f+b skipped: the dense gradient runs out of memory"}
    row["fwd_bwd_ms"] = median_ms(lambda: fwd_bwd(*args), iters)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument(
        "--cases",
        type=parse_cases,
        default="128x5000,128x15000,256x58000",
        help="comma-separated SIZExN",
    )
    p.add_argument("--backends", default="reference,xla", help="comma-separated backends")
    p.add_argument(
        "--tile-size", type=parse_tiles, default="16", help="comma-separated tile sides, e.g. 8,16"
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="time the table this many times; keep the minima"
    )
    args = p.parse_args(argv)
    model = load_flame()
    print(f"JAX {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind})")
    best = {}
    for _ in range(args.repeats):
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for size, n in args.cases:
            for backend in args.backends.split(","):
                if backend == "reference" and size > 128:
                    continue
                # The reference backend has no tiles: one row.
                tiles = args.tile_size[:1] if backend == "reference" else args.tile_size
                for tile in tiles:
                    r = bench_case(model, size, n, backend, args.iters, tile)
                    key = (size, n, backend, tile)
                    old = best.get(key, {})
                    for f in ("forward_ms", "fwd_bwd_ms"):
                        if f in old and f in r:
                            r[f] = min(r[f], old[f])
                    best[key] = r
    print(
        f"{'backend':10s} {'tile':>5s} {'image':>8s} {'Gaussians':>10s} "
        f"{'fwd ms':>9s} {'f+b ms':>9s}"
    )
    for (size, n, backend, tile), r in best.items():
        fwd = f"{r['forward_ms']:9.1f}" if "forward_ms" in r else f"{'-':>9s}"
        fb = f"{r['fwd_bwd_ms']:9.1f}" if "fwd_bwd_ms" in r else f"{'-':>9s}"
        note = f"  ({r['note']})" if "note" in r else ""
        tile_text = "-" if backend == "reference" else str(tile)
        print(f"{backend:10s} {tile_text:>5s} {f'{size}²':>8s} {n:10d} {fwd} {fb}{note}")


if __name__ == "__main__":
    main()
