"""Inference benchmark: audio -> frames of an adapted identity, end to end and per stage.

Times, on one speech of ``--seconds`` (the identity's clip audio, looped): the A2E sampler
(``TalkingHead.motion``), the host side (``drive``), and the jitted frame step in chunks of
``--batch`` frames, fused (what ``speak`` runs) and split into its stages (FLAME + rigging +
color MLP, splatting, inpainting) with each stage jitted alone. Video encoding is excluded.

    python tools/bench_inference.py --identity DIR [--seconds 30] [--batch 8] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

REPEATS = 3


def _best(fn, repeats: int = REPEATS) -> float:
    import jax

    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--identity", required=True)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--json")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    from flax import nnx

    from ggtalker_jax.infer import TalkingHead, _take, blend_head
    from ggtalker_jax.render.head import render_gaussians
    from ggtalker_jax.types import SAMPLE_RATE, Camera

    head = TalkingHead.load(args.identity, batch=args.batch)
    clip_audio = head.clip.audio
    n = int(args.seconds * SAMPLE_RATE)
    audio = np.resize(clip_audio, n).astype(np.float32)
    key = jax.random.key(0)

    motion_s = _best(lambda: head.motion(audio, key)["expression"], repeats=2)
    motion = head.motion(audio, key)
    t0 = time.perf_counter()
    params, viewmat, K, idx = head.drive(motion)
    drive_s = time.perf_counter() - t0
    frames_total = len(idx)
    frames_s = _best(lambda: head.render(params, viewmat, K, idx), repeats=2)

    # One chunk, stage by stage (each jitted alone).
    b = head.batch
    rows = np.arange(b) % frames_total
    chunk_params = _take(params, rows)
    h, w = head.size
    camera = Camera(jnp.asarray(viewmat[rows]), jnp.asarray(K[rows]), w, h)
    frames = jnp.asarray(head.clip.frames[idx[rows]])
    masks = jnp.asarray(head.clip.head_mask[idx[rows]])
    hg, hs = nnx.split(head.head)
    ig, is_ = nnx.split(head.inpainter)

    gaussians_fn = jax.jit(lambda s, p, v: nnx.merge(hg, s).gaussians(p, v)[0])
    gaussians = gaussians_fn(hs, chunk_params, camera.viewmat)
    splat_fn = jax.jit(
        lambda g, c: render_gaussians(g, c, None, head.head.backend, head.capacity)[0]
    )
    render = splat_fn(gaussians, camera)
    radius = float(head.identity.hole_radius)
    inpaint_fn = jax.jit(
        lambda s, rgb, a, f, m: blend_head(
            nnx.merge(ig, s), rgb, a, f.astype(jnp.float32) / 255, m, radius
        )
    )
    stages = {
        "gaussians (FLAME, rigging, color MLP)": _best(
            lambda: gaussians_fn(hs, chunk_params, camera.viewmat)
        ),
        "splatting": _best(lambda: splat_fn(gaussians, camera)),
        "inpainting": _best(lambda: inpaint_fn(is_, render.rgb, render.alpha, frames, masks)),
        "fused frame step": _best(
            lambda: head.frame_step(chunk_params, viewmat[rows], K[rows], frames, masks)
        ),
    }
    total = motion_s + drive_s + frames_s
    print(
        f"device: {jax.devices()[0].device_kind}; {frames_total} frames at {w}x{h}, "
        f"{head.head.template.n} Gaussians, chunks of {b}"
    )
    print(f"{'stage':<40} {'ms':>9} {'ms/frame':>9}")
    rows_out = [
        ("A2E sampling (whole speech)", motion_s),
        ("drive (host)", drive_s),
        ("frames (all chunks, fused step)", frames_s),
    ]
    for name, s in rows_out:
        print(f"{name:<40} {1e3 * s:9.1f} {1e3 * s / frames_total:9.3f}")
    for name, s in stages.items():
        print(f"  one chunk: {name:<28} {1e3 * s:9.2f} {1e3 * s / b:9.3f}")
    print(f"end to end (audio -> frames, no encoding): {frames_total / total:.0f} frames/s")
    if args.json:
        result = {
            "device": jax.devices()[0].device_kind,
            "frames": frames_total,
            "size": [h, w],
            "gaussians": head.head.template.n,
            "batch": b,
            "a2e_s": motion_s,
            "drive_s": drive_s,
            "frames_s": frames_s,
            "chunk_stages_s": stages,
            "fps_end_to_end": frames_total / total,
        }
        open(args.json, "w").write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
