"""Benchmark the Pallas splatting kernels against gsplat on the head workload (GPU).

Gaussians on the procedural head's surface seen by portrait cameras:
  * 512 x 512, ~100k Gaussians, batch 1 and batch 8 (8 head poses, one camera each);
  * 1024 x 1024, ~300k Gaussians, batch 1.
For each: forward and forward+backward median milliseconds of ours and of gsplat 1.5.3 in
the same process on identical inputs, steady-state throughput (back-to-back calls, one
sync at the end: JAX dispatches asynchronously, gsplat synchronises inside each call) and
per-call latency (sync after each call), their ratio, peak memory, and the image and
gradient differences. Prints a table and writes JSON.

    python tools/bench_splat.py --out bench.json [--iters 50] [--no-gsplat]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from datetime import date

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.flame import load_flame
from ggtalker_jax.geometry.rigging import transform_gaussians
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix_reference
from ggtalker_jax.kernels.splat import rasterization
from ggtalker_jax.render.head_scene import head_gaussians, portrait_cameras

FIELDS = ("means", "quats", "scales", "opacities", "colors")


def make_workload(model, n, size, batch, seed=0):
    """Head Gaussians posed per frame (yaw/pitch), one portrait camera per frame."""
    rng = np.random.default_rng(seed)
    g = head_gaussians(model, n, rng)
    view, k = portrait_cameras(model, size, [0.0])
    if batch == 1:
        return {**{f: getattr(g, f) for f in FIELDS}, "viewmats": view, "Ks": k}
    rots = axis_angle_to_matrix_reference(
        np.stack(
            [np.linspace(-0.1, 0.2, batch), np.linspace(-0.5, 0.5, batch), np.zeros(batch)], -1
        )
    )
    center = g.means.mean(0)
    centred = dataclasses.replace(g, means=g.means - center)
    posed = transform_gaussians(
        jax.tree_util.tree_map(jnp.asarray, centred), rots, np.broadcast_to(center, (batch, 3))
    )
    tile = lambda x: np.broadcast_to(x, (batch, *x.shape)).copy()
    return {
        **{k: np.asarray(getattr(posed, k), np.float32) for k in FIELDS},
        "viewmats": tile(view),
        "Ks": tile(k),
    }


def time_calls(fn, sync, iters):
    """(throughput ms/call over back-to-back calls, median latency ms with a sync each)."""
    for _ in range(3):
        sync(fn())
    start = time.perf_counter()
    out = None
    for _ in range(iters):
        out = fn()
    sync(out)
    throughput = (time.perf_counter() - start) / iters * 1e3
    lat = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sync(fn())
        lat.append((time.perf_counter() - t0) * 1e3)
    return throughput, statistics.median(lat)


def bench_ours(w, size, iters, capacity):
    args = [jnp.asarray(w[k]) for k in FIELDS]
    view, k = jnp.asarray(w["viewmats"]), jnp.asarray(w["Ks"])
    weights = jnp.asarray(
        np.random.default_rng(1)
        .normal(size=(*w["viewmats"].shape[:-2], size, size, 3))
        .astype(np.float32)
    )

    def render(*a):
        return rasterization(*a, view, k, size, size, backend="pallas", capacity=capacity)

    fwd = jax.jit(lambda *a: render(*a)[0])
    loss = lambda *a: jnp.sum(render(*a)[0] * weights)
    fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(5))))
    sync = jax.block_until_ready
    img = fwd(*args)
    _, _, meta = render(*args)
    res = {"intersections": int(meta["n_intersections"]), "overflow": bool(meta["overflow"])}
    res["fwd_tp"], res["fwd_lat"] = time_calls(lambda: fwd(*args), sync, iters)
    res["fb_tp"], res["fb_lat"] = time_calls(lambda: fwd_bwd(*args), sync, iters)
    mem = fwd_bwd.lower(*args).compile().memory_analysis()
    res["mem_mb"] = (
        mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    ) / 2**20
    _, grads = fwd_bwd(*args)
    return res, np.asarray(img), [np.asarray(g) for g in grads], np.asarray(weights)


def bench_gsplat(w, size, iters, weights):
    import torch
    from gsplat import rasterization as gs_raster

    dev = "cuda"
    t = {
        k: torch.tensor(np.ascontiguousarray(w[k]), device=dev) for k in (*FIELDS, "viewmats", "Ks")
    }
    tw = torch.tensor(weights, device=dev)

    def fwd():
        with torch.no_grad():
            return gs_raster(
                t["means"],
                t["quats"],
                t["scales"],
                t["opacities"],
                t["colors"],
                t["viewmats"],
                t["Ks"],
                size,
                size,
            )[0]

    params = {k: t[k].clone().requires_grad_(True) for k in FIELDS}

    def fwd_bwd():
        img = gs_raster(
            params["means"],
            params["quats"],
            params["scales"],
            params["opacities"],
            params["colors"],
            t["viewmats"],
            t["Ks"],
            size,
            size,
        )[0]
        loss = (img * tw).sum()
        loss.backward()
        return loss

    sync = lambda _: torch.cuda.synchronize()
    res = {}
    res["fwd_tp"], res["fwd_lat"] = time_calls(fwd, sync, iters)
    torch.cuda.reset_peak_memory_stats()
    res["fb_tp"], res["fb_lat"] = time_calls(fwd_bwd, sync, iters)
    res["mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    img = fwd().cpu().numpy()
    for p in params.values():
        p.grad = None
    fwd_bwd()
    grads = [params[k].grad.cpu().numpy() for k in FIELDS]
    return res, img, grads


def parse_case(text: str) -> tuple[int, int, int]:
    """``"SIZExNxBATCH"`` -> ``(size, n, batch)``; one clear line for argparse otherwise."""
    parts = text.strip().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"case {text!r}: expected SIZExNxBATCH with positive integers, e.g. 512x100000x8"
        )
    size, n, batch = (int(p) for p in parts)
    return size, n, batch


def parse_cases(text: str) -> list[tuple[int, int, int]]:
    """Comma-separated :func:`parse_case` list."""
    return [parse_case(case) for case in text.split(",")]


def case_name(size: int, n: int, batch: int) -> str:
    return f"{size}x{n}x{batch}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write results as JSON here")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--no-gsplat", action="store_true", help="time ours only")
    p.add_argument(
        "--cases",
        type=parse_cases,
        default="512x100000x1,512x100000x8,1024x300000x1",
        help="comma-separated SIZExNxBATCH",
    )
    args = p.parse_args(argv)
    if jax.default_backend() != "gpu":
        sys.exit(f"bench_splat.py: needs a GPU (JAX backend is {jax.default_backend()})")
    model = load_flame()
    rows = []
    device = jax.devices()[0].device_kind
    for size, n, batch in args.cases:
        w = make_workload(model, n, size, batch)
        ours, img, grads, weights = bench_ours(w, size, args.iters, capacity=None)
        row = {
            "case": case_name(size, n, batch),
            "size": size,
            "n": n,
            "batch": batch,
            "ours": ours,
        }
        if not args.no_gsplat:
            theirs, gimg, ggrads = bench_gsplat(w, size, args.iters, weights)
            row["gsplat"] = theirs
            row["image_mae"] = float(np.abs(img.reshape(gimg.shape) - gimg).mean())
            row["grad_rel_l2"] = {
                k: float(np.linalg.norm(a.reshape(b.shape) - b) / (np.linalg.norm(b) + 1e-30))
                for k, a, b in zip(FIELDS, grads, ggrads, strict=True)
            }
            row["ratio_fwd"] = theirs["fwd_tp"] / ours["fwd_tp"]
            row["ratio_fb"] = theirs["fb_tp"] / ours["fb_tp"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{device}, jax {jax.__version__}, {date.today()}")
    head = (
        f"{'case':>16} {'isect':>8} | {'fwd ours':>9} {'gsplat':>7} {'ratio':>6} | "
        f"{'f+b ours':>9} {'gsplat':>7} {'ratio':>6} | {'mem MB':>13} | {'img MAE':>8}"
    )
    print(head)
    for r in rows:
        o, g = r["ours"], r.get("gsplat", {})
        print(
            f"{r['case']:>16} {o['intersections']:>8} | {o['fwd_tp']:>9.3f} "
            f"{g.get('fwd_tp', float('nan')):>7.3f} {r.get('ratio_fwd', float('nan')):>6.2f}"
            f" | {o['fb_tp']:>9.3f} {g.get('fb_tp', float('nan')):>7.3f} "
            f"{r.get('ratio_fb', float('nan')):>6.2f} | {o['mem_mb']:>6.0f}/"
            f"{g.get('mem_mb', float('nan')):>6.0f} | {r.get('image_mae', float('nan')):>8.1e}"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {"device": device, "jax": jax.__version__, "date": str(date.today()), "rows": rows},
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
