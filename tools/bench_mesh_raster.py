"""Frames per second of the textured-mesh renderer on a head-like scene (CPU or GPU).

    python tools/bench_mesh_raster.py [--sizes 256 512] [--windows 4 8] [--batch 16] \
        [--modes vmap map]

Scene: a ~12k-face ellipsoid "head" (UV sphere) and a ~1.5k-face cylinder "torso" with 512²
textures, framed as a talking-head shot (head ≈ 55% of the image height), the head turning
from frame to frame; one jitted ``vmap`` (or ``lax.map``) over ``--batch`` frames, median over
repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.geometry.camera import intrinsics, look_at
from ggtalker_jax.render.mesh.shading import render_textured_meshes
from ggtalker_jax.types import Mesh


def uv_sphere(n_lat: int, n_lon: int, radii) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ellipsoid with per-vertex UVs (vt shares the vertex indexing): verts, faces, vt."""
    theta = np.linspace(0, np.pi, n_lat + 1)
    phi = np.linspace(0, 2 * np.pi, n_lon + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    verts = np.stack([np.sin(t) * np.cos(p), -np.cos(t), np.sin(t) * np.sin(p)], -1)
    verts = verts.reshape(-1, 3) * np.asarray(radii)
    vt = np.stack([p / (2 * np.pi), t / np.pi], -1).reshape(-1, 2)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, c, d], -1), np.stack([a, d, b], -1)]).reshape(-1, 3)
    return verts.astype(np.float32), faces.astype(np.int32), vt.astype(np.float32)


def make_scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    head_v, head_f, head_vt = uv_sphere(78, 78, (0.08, 0.11, 0.095))
    torso_v, torso_f, torso_vt = uv_sphere(12, 64, (0.2, 0.15, 0.12))
    torso_v = torso_v + np.float32([0, 0.27, 0.02])
    tex = lambda: rng.random((512, 512, 3)).astype(np.float32)
    return Mesh(head_v, head_f, head_vt, head_f, tex()), Mesh(
        torso_v, torso_f, torso_vt, torso_f, tex()
    )


def bench(size: int, window: int, batch: int, mode: str, repeats: int = 5) -> dict:
    head, torso = make_scene()
    view = look_at([0, 0, -0.6], [0, 0.02, 0], [0, -1, 0])
    K = intrinsics(1.5 * size, size, size)
    bg = jnp.full((size, size, 3), 0.5, jnp.float32)
    angles = np.linspace(-0.4, 0.4, batch, dtype=np.float32)
    c, s = np.cos(angles), np.sin(angles)
    rot = np.zeros((batch, 3, 3), np.float32)
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    head_frames = jnp.asarray(np.einsum("bij,vj->bvi", rot, head.vertices))

    @jax.jit
    def render(head_v):
        def one(v):
            return render_textured_meshes(
                [dataclasses.replace(head, vertices=v), torso],
                view,
                K,
                size,
                size,
                bg,
                window=window,
            )

        # vmap: one batched program (its while loop runs until the busiest frame is done);
        # map: a sequential loop of single-frame programs inside one jit.
        return jax.vmap(one)(head_v) if mode == "vmap" else jax.lax.map(one, head_v)

    t0 = time.perf_counter()
    rgb, masks = jax.block_until_ready(render(head_frames))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(render(head_frames))
        times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    return dict(
        size=size,
        window=window,
        mode=mode,
        batch=batch,
        faces=len(head.faces) + len(torso.faces),
        coverage=float(masks.any(1).mean()),
        compile_s=compile_s,
        ms_per_frame=1e3 * step / batch,
        fps=batch / step,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--windows", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--modes", nargs="+", default=["vmap", "map"], choices=["vmap", "map"])
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}")
    print(
        f"{'size':>5} {'win':>4} {'mode':>5} {'batch':>5} {'faces':>6} {'cover':>6} "
        f"{'compile s':>9} {'ms/frame':>9} {'fps':>7}"
    )
    for size in args.sizes:
        for window in args.windows:
            for mode in args.modes:
                r = bench(size, window, args.batch, mode)
                print(
                    f"{r['size']:>5} {r['window']:>4} {r['mode']:>5} {r['batch']:>5} "
                    f"{r['faces']:>6} {r['coverage']:>6.2f} {r['compile_s']:>9.1f} "
                    f"{r['ms_per_frame']:>9.1f} {r['fps']:>7.1f}"
                )


if __name__ == "__main__":
    main()
