"""Adaptation benchmark: one held-out synthetic person, adapted from the priors, timed.

Makes the person's clips in memory (a ``--seconds`` adaptation clip in English, a held-out
English sentence with two extra cameras and a German one; in memory, so the ground truth is
exact and no video codec is needed), runs adaptation on the first with ``--minutes``, and
prints the held-out head-PSNR curve over wall time with the times at which it first reached
30 and 32 dB; ``--eval`` then scores the identity on the held-out clips (``ggtalker eval``).

    python tools/bench_adapt.py --config gpu --out /tmp/bench_adapt --minutes 3 [--eval]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SEED = 11  # a world seed no prior trained on
MARKS = (28.0, 30.0, 32.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="gpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="work folder (identity, eval)")
    p.add_argument("--seconds", type=float, default=30.0, help="adaptation clip length")
    p.add_argument("--heldout-seconds", type=float, default=8.0)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--priors", help="folder with e2v/, a2e/, inpainter/ (default: shipped)")
    p.add_argument("--eval", action="store_true", help="score on the held-out clips")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    import jax

    from ggtalker_jax.config import load_config
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.train.adapt import adapt_identity
    from ggtalker_jax.world.person import ClipSpec, person_clips

    config = load_config(args.config, args.set)
    out = Path(args.out)
    model = load_flame(config.flame_model or None)
    specs = [
        ClipSpec("adapt", args.seconds, "en", 0, 0),
        ClipSpec("heldout_en", args.heldout_seconds, "en", 1, 2),
        ClipSpec("heldout_de", args.heldout_seconds, "de", 2, 0),
    ]
    t0 = time.perf_counter()
    made = person_clips(model, specs, args.resolution, SEED)
    clips = dict(zip([s.name for s in specs], made, strict=True))
    world_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    adapted = adapt_identity(
        [clips["adapt"]], out / "identity", config, args.priors, args.minutes, force=True
    )
    adapt_s = time.perf_counter() - t0
    curve = [
        (c["t"], c["psnr"], name) for name in ("head", "joint") for c in adapted.phases[name].curve
    ]
    print(f"device: {jax.devices()[0].device_kind}; world {world_s:.1f} s; adapt {adapt_s:.1f} s")
    print(f"{'t (s)':>8} {'phase':<6} {'held-out head PSNR':>20}")
    for t, psnr, name in curve:
        print(f"{t:8.1f} {name:<6} {psnr:20.2f}")
    reached = {f"{m:g}": next((t for t, psnr, _ in curve if psnr >= m), None) for m in MARKS}
    print("first reached: " + ", ".join(f"{m} dB at {t} s" for m, t in reached.items()))
    result = {
        "device": jax.devices()[0].device_kind,
        "config": args.config,
        "sets": args.set,
        "resolution": args.resolution,
        "seconds": args.seconds,
        "minutes": args.minutes,
        "world_s": round(world_s, 1),
        "adapt_s": round(adapt_s, 1),
        "reached_s": reached,
        "phases": {k: v.to_json() for k, v in adapted.phases.items()},
        "gaussians": adapted.head.template.n,
    }
    if args.eval:
        from ggtalker_jax.eval.identity import evaluate_identity
        from ggtalker_jax.eval.talking import summary_table

        report = evaluate_identity(
            out / "identity",
            [clips["heldout_en"], clips["heldout_de"]],
            out / "eval",
            force=True,
            progress=False,
        )
        print("\n".join(summary_table(report)))
        result["eval"] = json.loads((out / "eval" / "metrics.json").read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
