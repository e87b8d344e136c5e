"""A2E speed: the training step (windows/s, where its time goes) and sampling (frames/s).

    python tools/bench_a2e.py [--config gpu] [--set a2e.batch_size=64] [--repeats 20]
                              [--json out.json]

Training: the input stage (a window batch gathered on the device), the forward loss, and the
full donated train step (forward + backward + AdamW), each jitted, warmed up, then the median
of ``--repeats`` synchronised calls. Sampling: :func:`ggtalker_jax.motion.sample_motion` on
30 s of speech-like audio features for 1 and for 16 clips at once, DDIM with the config's
``sample_steps`` and guidance (three denoiser passes per step), with an untrained network (its
speed does not depend on its weights). The floor is the denoiser's matmul FLOPs at the card's
bf16 peak (printed with the table). Prints a table; ``--json`` writes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

from ggtalker_jax.config import load_config
from ggtalker_jax.data.a2e import SpeechClip, WindowSource
from ggtalker_jax.flame import load_flame
from ggtalker_jax.motion import sample_motion
from ggtalker_jax.train import TrainState, make_data_mesh, make_train_step, shard_batch
from ggtalker_jax.train.a2e import build_prior, make_loss_fn, motion_layout
from ggtalker_jax.train.optim import section_optimizer


def _median_ms(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _fake_clips(n: int, frames: int, n_exp: int, feature_dim: int, rng):
    clips, feats = [], []
    for i in range(n):
        clips.append(
            SpeechClip(
                name=f"c{i}",
                identity=f"id{i % 8}",
                language="en",
                audio=np.zeros(frames * 640, np.float32),
                shape=np.zeros(20, np.float32),
                expression=rng.standard_normal((frames, n_exp)).astype(np.float32),
                jaw_pose=rng.standard_normal((frames, 3)).astype(np.float32) * 0.1,
                global_pose=np.zeros((frames, 3), np.float32),
            )
        )
        feats.append(rng.standard_normal((frames, feature_dim)).astype(np.float32))
    return clips, feats


def denoiser_flops(config, motion_dim: int) -> float:
    """Matmul FLOPs of one denoiser forward over one window (2 per multiply-add)."""
    d, a, length = config.d_model, config.audio_dim, config.frames
    block = (4 + 4 + 2 * config.ffn_ratio) * d * d + 2 * 2 * d * d  # attn, cross, ffn, FiLM
    attention = 2 * 2 * length * d  # scores and weighted sum, per token
    audio = config.audio_layers * (8 * a * a + 2 * 2 * length * a) + 2 * 3 * a * (320 + a)
    per_token = config.layers * (block + attention) + audio + 2 * d * motion_dim
    return 2.0 * per_token * length


def bench(config_name: str, overrides: list[str], repeats: int) -> dict:
    config = load_config(config_name, overrides)
    a2e = config.a2e
    model = load_flame(config.flame_model or None)
    layout = motion_layout(a2e, model)
    mesh = make_data_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    feature_dim = 320
    clips, feats = _fake_clips(32, 200, model.n_exp, feature_dim, rng)
    names = sorted({c.identity for c in clips})
    source = WindowSource(
        clips,
        feats,
        layout,
        {n: i for i, n in enumerate(names)},
        a2e.batch_size,
        a2e.window,
        a2e.context,
        np.zeros(feature_dim, np.float32),
    )
    prior = build_prior(a2e, feature_dim, layout, len(names))
    optimizer = section_optimizer(a2e)
    state = TrainState.from_model(prior, optimizer)
    loss_fn = make_loss_fn(a2e, mesh)
    batch = shard_batch(source.batch(0), mesh)
    key = jax.random.key(0)

    input_ms = _median_ms(lambda: source.batch(1).features, repeats)
    forward = jax.jit(lambda s, b, k: loss_fn(s.model(), b, k)[0])
    forward_ms = _median_ms(lambda: forward(state, batch, key), repeats)
    step = make_train_step(loss_fn, optimizer, mesh)
    holder = {"state": state}

    def run_step():
        holder["state"], metrics = step(holder["state"], batch, key)
        return metrics["loss"]

    step_ms = _median_ms(run_step, repeats)
    trained = holder["state"].model()
    silence = np.zeros(feature_dim, np.float32)
    sampling = {}
    for clips_at_once in (1, 16):
        features = rng.standard_normal((clips_at_once, 750, feature_dim)).astype(np.float32)
        start = time.perf_counter()
        sample_motion(trained, features, key, silence)
        first = time.perf_counter() - start
        times = []
        for r in range(3):
            start = time.perf_counter()
            sample_motion(trained, features, jax.random.key(r + 1), silence)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        sampling[clips_at_once] = {
            "seconds_for_30s": seconds,
            "frames_per_second": clips_at_once * 750 / seconds,
            "first_call_s": first,
        }
    evals = 1 if a2e.objective == "regression" else 3 * a2e.sample_steps
    flops_window = denoiser_flops(a2e, layout.dim)
    return {
        "device": jax.devices()[0].device_kind,
        "config": config_name,
        "batch_size": a2e.batch_size,
        "window": a2e.window,
        "context": a2e.context,
        "input_ms": input_ms,
        "forward_ms": forward_ms,
        "step_ms": step_ms,
        "windows_per_second": a2e.batch_size / (step_ms / 1e3),
        "step_tflop": 3 * flops_window * a2e.batch_size / 1e12,
        "sampling": sampling,
        "sampling_tflop_per_window": evals * flops_window / 1e12,
        "parameters": int(sum(x.size for x in jax.tree.leaves(state.params))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    r = bench(args.config, args.set, args.repeats)
    print(f"A2E on {r['device']} ({r['config']}, {r['parameters'] / 1e6:.1f}M parameters)")
    print(f"{'stage':<28}{'ms':>10}")
    print(f"{'input (window gather)':<28}{r['input_ms']:>10.2f}")
    print(f"{'forward loss':<28}{r['forward_ms']:>10.2f}")
    print(f"{'train step (fwd+bwd+AdamW)':<28}{r['step_ms']:>10.2f}")
    print(
        f"{r['windows_per_second']:.0f} windows/s of {r['context']}+{r['window']} frames; "
        f"{r['step_tflop']:.3f} TFLOP a step"
    )
    for n, s in r["sampling"].items():
        print(
            f"sampling {n:>2} x 30 s: {s['seconds_for_30s'] * 1e3:8.1f} ms "
            f"({s['frames_per_second']:.0f} frames/s; first call {s['first_call_s']:.1f} s)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
