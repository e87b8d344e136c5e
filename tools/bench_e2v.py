"""E2V training speed: samples/s of the whole step and where a step's time goes.

    python tools/bench_e2v.py [--config gpu] [--set e2v.batch_size=32] [--repeats 20]

Each stage is timed as a jitted prefix of the step (warm-up first, then the median of
``--repeats`` synchronised calls), and a stage's share is the difference between consecutive
prefixes: input (the procedural batch: FLAME + two mesh renders per element), generator
(encoder, lift with its z-buffer, UV U-Net), rigging (target FLAME + map decode + rig),
splatting (projection, binning, compositing), loss (L1, D-SSIM, regularisers), backward
(the full donated train step minus the forward loss). Prints a table; ``--json`` writes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from ggtalker_jax.config import load_config
from ggtalker_jax.data.e2v import make_e2v_source
from ggtalker_jax.flame import load_flame
from ggtalker_jax.render.head import map_to_gaussians, pose_mesh, render_gaussians
from ggtalker_jax.train import (
    TrainState,
    make_data_mesh,
    make_optimizer,
    make_train_step,
    shard_batch,
)
from ggtalker_jax.train.e2v import build_generator, capacity_for, example_terms, make_loss_fn
from ggtalker_jax.types import Camera


def _median_ms(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench(config_name: str, overrides: list[str], repeats: int) -> dict:
    config = load_config(config_name, overrides)
    e2v = config.e2v
    model = load_flame(config.flame_model or None)
    mesh = make_data_mesh(jax.devices()[:1])
    start = time.perf_counter()
    data = make_e2v_source(model, e2v.data, e2v.batch_size)
    pool_s = time.perf_counter() - start
    template, generator = build_generator(model, e2v)
    graphdef, params = nnx.split(generator)
    capacity = capacity_for(template, e2v.batch_size, e2v.backend)
    batch = data.batch(0)

    @jax.jit
    def gen(params, b):
        return nnx.merge(graphdef, params)(
            b.source_image, b.source_params, b.source_viewmat, b.source_K
        )

    @jax.jit
    def rig(params, b):
        uv_map = gen(params, b)
        vertices = pose_mesh(template.model, b.target_params)
        return map_to_gaussians(template, uv_map, vertices, e2v.offset_radius, e2v.max_log_scale)

    @jax.jit
    def splat(params, b):
        gaussians, _ = rig(params, b)
        h, w = b.target_image.shape[1:3]
        camera = Camera(b.target_viewmat, b.target_K, int(w), int(h))
        return render_gaussians(gaussians, camera, b.background, e2v.backend, capacity)[0]

    @jax.jit
    def loss(params, b):
        return jnp.mean(example_terms(nnx.merge(graphdef, params), b, e2v, capacity)["loss"])

    optimizer = make_optimizer(
        e2v.learning_rate, max(e2v.steps, 2), 0, e2v.weight_decay, e2v.grad_clip
    )
    step = make_train_step(make_loss_fn(e2v, mesh, capacity), optimizer, mesh)
    state = [TrainState.from_model(generator, optimizer)]
    key = jax.random.key(0)

    sharded = shard_batch(batch, mesh)

    def run_step():
        state[0], metrics = step(state[0], sharded, key)
        return metrics["loss"]

    prefixes = {
        "input": _median_ms(lambda: data.batch(1), repeats),
        "generator": _median_ms(lambda: gen(params, batch), repeats),
        "rigging": _median_ms(lambda: rig(params, batch), repeats),
        "splatting": _median_ms(lambda: splat(params, batch), repeats),
        "loss": _median_ms(lambda: loss(params, batch), repeats),
        "step": _median_ms(run_step, repeats),
    }
    split = {"input": prefixes["input"]}
    order = ["generator", "rigging", "splatting", "loss"]
    previous = 0.0
    for name in order:
        split[name] = prefixes[name] - previous
        previous = prefixes[name]
    split["backward"] = prefixes["step"] - prefixes["loss"]
    total = prefixes["input"] + prefixes["step"]
    return {
        "device": jax.devices()[0].device_kind,
        "config": config_name,
        "batch_size": e2v.batch_size,
        "image_size": e2v.data.image_size,
        "uv_size": e2v.uv_size,
        "gaussians": template.n,
        "pool_seconds": pool_s,
        "identities": e2v.data.identities,
        "split_ms": split,
        "step_ms": prefixes["step"],
        "samples_per_second": e2v.batch_size / (total / 1e3),
        "jax": jax.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the result here too")
    args = parser.parse_args()
    result = bench(args.config, args.set, args.repeats)
    print(
        f"E2V step on {result['device']} (jax {result['jax']}): config {result['config']}, "
        f"batch {result['batch_size']}, {result['image_size']}² frames, "
        f"{result['gaussians']} Gaussians ({result['uv_size']}² UV)"
    )
    print(f"{'stage':<12}{'ms/batch':>10}{'share':>8}")
    total = sum(result["split_ms"].values())
    for name, ms in result["split_ms"].items():
        print(f"{name:<12}{ms:>10.2f}{ms / total:>8.0%}")
    print(f"{'total':<12}{total:>10.2f}")
    print(f"samples/s: {result['samples_per_second']:.1f} (input stage + train step, one device)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
