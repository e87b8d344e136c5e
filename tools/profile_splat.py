"""Time each stage of the Pallas splatting pipeline on the head workload (GPU).

Stages: projection, binning (sort + ranges), slot gather + forward kernel, backward kernel,
segment sums. Prints median milliseconds per stage (sync after each call).

    python tools/profile_splat.py [--cases 512x100000x1,512x100000x8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from bench_splat import case_name, make_workload, parse_cases  # tools/ is on sys.path

from ggtalker_jax.flame import load_flame
from ggtalker_jax.kernels.splat.backward import SCALAR_SUMS, backward_tiles
from ggtalker_jax.kernels.splat.binning import bin_gaussians, default_capacity
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.forward import forward_tiles
from ggtalker_jax.kernels.splat.projection import project_batch
from ggtalker_jax.kernels.splat.vjp import _gather


def median_ms(fn, iters=30):
    for _ in range(3):
        jax.block_until_ready(fn())
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def profile(size: int, n: int, batch: int, config: KernelConfig) -> dict[str, float]:
    w = make_workload(load_flame(), n, size, batch)
    n_img = batch
    r = lambda x, *d: jnp.asarray(x.reshape(n_img, n, *d))
    args = (
        r(w["means"], 3),
        r(w["quats"], 4),
        r(w["scales"], 3),
        r(w["opacities"]),
        jnp.asarray(w["viewmats"].reshape(n_img, 4, 4)),
        jnp.asarray(w["Ks"].reshape(n_img, 3, 3)),
    )
    colors = r(w["colors"], 3).reshape(-1, 3)
    capacity = default_capacity(n_img, n, size, size)
    proj_fn = jax.jit(lambda *a: project_batch(*a, size, size, 0.01, 1e10, 0.3))
    proj = proj_fn(*args)
    bin_fn = jax.jit(
        lambda p: bin_gaussians(
            p["means2d"],
            p["radii"],
            p["depths"],
            size,
            size,
            16,
            capacity,
            conics=p["conics"],
            opacities=p["opacities"],
        )
    )
    binned = bin_fn(proj)
    flat = lambda p: (
        p["means2d"].reshape(-1, 2),
        p["conics"].reshape(-1, 3),
        p["opacities"].reshape(-1),
    )
    gather_fn = jax.jit(lambda p, b: _gather(*flat(p), colors, b["gaussian"]))
    gathered = gather_fn(proj, binned)
    fwd_fn = jax.jit(lambda b, g: forward_tiles(b["ranges"], g, n_img, size, size, config))
    _, trans, last, *checkpoints = fwd_fn(binned, gathered)
    v_color = jnp.ones((trans.shape[0], 4, trans.shape[1]), jnp.float32)
    bwd_fn = jax.jit(
        lambda b, g, t, last_: backward_tiles(
            b["ranges"],
            g,
            t,
            last_,
            tuple(checkpoints),
            v_color,
            jnp.zeros_like(t),
            n_img,
            size,
            size,
            config,
        )
    )
    slot = bwd_fn(binned, gathered, trans, last)
    seg_fn = jax.jit(
        lambda s, b: jax.ops.segment_sum(
            jnp.concatenate([s[0][:, : len(SCALAR_SUMS)], s[1]], -1),
            b["gaussian"],
            num_segments=n_img * n,
        )
    )
    return {
        "intersections": int(binned["count"]),
        "active": int(binned["active"]),
        "project": median_ms(lambda: proj_fn(*args)),
        "bin": median_ms(lambda: bin_fn(proj)),
        "gather": median_ms(lambda: gather_fn(proj, binned)),
        "forward": median_ms(lambda: fwd_fn(binned, gathered)),
        "backward": median_ms(lambda: bwd_fn(binned, gathered, trans, last)),
        "segment_sum": median_ms(lambda: seg_fn(slot, binned)),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--cases",
        type=parse_cases,
        default="512x100000x1,512x100000x8",
        help="comma-separated SIZExNxBATCH",
    )
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--warps", type=int, default=0, help="forward warps (0 = auto)")
    p.add_argument("--bwd-warps", type=int, default=2)
    p.add_argument("--no-heavy-first", action="store_true")
    p.add_argument("--prefetch", action="store_true", help="load the next chunk early")
    p.add_argument("--segments", type=int, default=0, help="backward segments (0 = auto)")
    args = p.parse_args(argv)
    config = KernelConfig(
        chunk=args.chunk,
        num_warps=args.warps,
        backward_num_warps=args.bwd_warps,
        heavy_first=not args.no_heavy_first,
        backward_segments=args.segments,
        prefetch=args.prefetch,
    )
    print(
        f"{jax.devices()[0].device_kind}, chunk {args.chunk}, warps {args.warps}, "
        f"backward warps {args.bwd_warps}, heavy first {not args.no_heavy_first}, "
        f"segments {args.segments or 'auto'}, prefetch {args.prefetch}"
    )
    for case in args.cases:
        res = profile(*case, config)
        print(
            case_name(*case),
            " ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
