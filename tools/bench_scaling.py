"""Scaling of the priors' training: steps/s and samples/s per device on 1..n devices, the
share of a real training step spent outside compute (input, host transfers, logging), and
whether the loss curves on n devices match the one on one.

    python tools/bench_scaling.py                   # CPU: tiny config, 8 simulated devices
    python tools/bench_scaling.py --config tiny --devices 1,2 --steps 5       # quick check
    python tools/bench_scaling.py --config gpu --repeats 3 --json scaling.json  # GPU machine
    python tools/bench_scaling.py --config prior_multi --devices 1,2,4,8 --priors e2v,a2e
    python tools/bench_scaling.py --config gpu --strong --curves 50 --priors e2v,a2e  # n GPUs

For each prior (``e2v``, ``a2e``, ``inpainter``) and device count ``n``: the prior's training
step on the first ``n`` devices, in weak scaling: the batch per device is the config's
``batch_size`` over the largest ``n`` measured (at least 1), the global batch that times ``n``.
With ``--strong`` the global batch is the config's ``batch_size`` for every ``n`` (split over
the devices; each ``n`` must divide it), so the efficiency is the speed-up over the smallest
``n``, divided by the ratio of the counts (speed-up / ``n`` when the smallest is 1).
Compiles are never timed. For each ``n``:

1. compute: the data mesh, a fresh state, the jitted step (``make_train_step`` with the
   section's optimizer and schedule) and one batch sharded over the mesh; two untimed steps
   (the first compiles), then ``--steps`` back-to-back steps on that batch, blocked on.
2. loop: as many steps of ``run_training`` with a real ``Checkpointer`` in a temporary folder
   (its interval beyond the run), the prior's data source (``batch(position)`` every step)
   and a ``TrainLogger`` every ``log_every`` steps of the section; no progress bar. A first
   call of 2 steps compiles what the loop adds and saves steps 0 and 2; a second one resumes
   and runs ``--steps`` more, timed from its first ``batch(position)`` to the write of its last
   step's log, which follows the host's read of every step's metrics (the loop's sync). The
   restore before and the checkpoint ``run_training`` always writes at its last step after
   are left out; the last step is always logged (the JSON counts the logs timed).

With ``--curves K`` (needs ``--strong``: the same batches for every ``n``) each ``n`` also
trains ``K`` steps from the same initial state with a log every step, and the row holds the
loss curve and its largest relative difference from the smallest ``n``'s.

With ``--repeats R`` each timing (compute, input below, loop) is taken R times, in turn,
and the row holds their medians (the JSON also each trial's outside share): a GPU's speed
drifts by several percent between calls, which one trial of each mixes into the shares.

Rows give the loop's steps/s, samples/s and samples/s per device, the efficiency (samples/s
per device over the smallest ``n``'s), compute steps/s and ``outside compute = 1 - t_compute /
t_loop``, clamped at 0 (and marked) when the loop beat the compute timing. It splits into
``input`` (the data source alone, ``batch(position)`` and its sharding, blocked on: for a
procedural source that is the renderer on the device) and ``host`` = ``1 - (t_compute +
t_input) / t_loop`` (what neither the step nor the input explains: dispatch, transfers,
logging, the device waiting for the host).

Without a GPU it runs on simulated CPU devices (8 unless ``XLA_FLAGS`` sets a count), which
share the host's cores: the numbers show overhead, not scaling. ``--config tiny`` reduces the
data (printed; ``--set`` wins) so the pools and worlds take seconds on 2 cores; what remains
is compiling one step per prior and device count (10-50 s each there): the quick check above
took 3.5 minutes on 2 cores; the default run (1, 2, 4, 8 devices, 20 steps) compiles
twice as many steps.

BENCHMARKS.md records its numbers, with the card, date and versions this prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ggtalker_jax.errors import InputError  # imports no JAX: safe before the CPU setup

PRIORS = ("e2v", "a2e", "inpainter")
SIMULATED_DEVICES = 8
COMPUTE_WARMUP = 2  # untimed steps before the compute timing (the first compiles)
LOOP_WARMUP = 2  # steps of the untimed first run_training call
TINY_DATA = (
    # Data only (no model or batch size changes): a step's cost does not depend on how many
    # people the world holds; the time to make them before the first step does.
    "e2v.data.identities=4",
    "a2e.data.identities=3",
    "a2e.data.clips_per_identity=1",
    "a2e.data.seconds=2.4",
    "a2e.data.heldout_identities=1",
    "a2e.data.heldout_clips=1",
    "inpainter.data.identities=2",
    "inpainter.data.seconds=0.8",
)


def gpu_present() -> bool:
    """Whether an NVIDIA GPU answers ``nvidia-smi -L`` (asked before JAX is imported)."""
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def force_cpu_devices() -> None:
    """CPU only, with :data:`SIMULATED_DEVICES` devices unless ``XLA_FLAGS`` names a count
    already (must run before JAX is imported)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_force_host_platform_device_count" not in flags:
        count = f"--xla_force_host_platform_device_count={SIMULATED_DEVICES}"
        os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()


# -- arguments -------------------------------------------------------------------------------


def parse_list(text: str, what: str, convert=str) -> list:
    """``"a,b"`` -> ``[a, b]`` (converted), refusing an empty list or a bad item."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [convert(t) for t in items]
    except ValueError:
        kind = convert.__name__
        raise InputError(f"--{what} {text!r}: expected comma-separated {kind} values") from None
    if not values:
        raise InputError(f"--{what} {text!r}: name at least one")
    return list(dict.fromkeys(values))


def check_priors(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in PRIORS]
    if unknown:
        raise InputError(f"--priors: unknown prior {unknown[0]!r}; choose from {','.join(PRIORS)}")
    return names


def device_counts(text: str | None, available: int) -> list[int]:
    """The device counts to measure: ``text``'s, or powers of two up to ``available`` and
    ``available`` itself.

    Raises:
      InputError: a count below 1 or above ``available``.
    """
    if text is None:
        counts = [2**k for k in range(available.bit_length()) if 2**k <= available]
        return sorted({*counts, available})
    counts = sorted(parse_list(text, "devices", int))
    bad = [n for n in counts if not 1 <= n <= available]
    if bad:
        raise InputError(
            f"--devices: {bad[0]}: this machine has {available} devices; choose counts "
            f"from 1 to {available}"
        )
    return counts


# -- what each prior trains ------------------------------------------------------------------


@dataclasses.dataclass
class PriorBench:
    """One prior's training, ready for any mesh: its config ``section``, fresh ``module``,
    ``make_loss(mesh, batch per device) -> loss_fn`` and ``source(global batch)``."""

    name: str
    section: object
    module: object
    make_loss: Callable
    source: Callable


def resized(source, batch_size: int):
    """``source`` drawing ``batch_size`` elements a batch, sharing its pool or world.

    The procedural sources fix their batch size at construction, beside a pool or world that
    takes seconds to minutes to make, and read ``self.batch_size`` in ``batch()``; a shallow
    copy with another size shares the expensive part. :func:`measure` checks the size of
    the batches it gets.
    """
    import copy

    out = copy.copy(source)
    out.batch_size = int(batch_size)
    return out


def build_e2v(config, model, largest: int) -> PriorBench:
    from ggtalker_jax.data.e2v import make_e2v_source
    from ggtalker_jax.train.e2v import build_generator, capacity_for, make_loss_fn

    e2v = config.e2v
    data = make_e2v_source(model, e2v.data, largest, split="train")
    template, generator = build_generator(model, e2v, seed=config.seed)

    def make_loss(mesh, per_device: int):
        return make_loss_fn(e2v, mesh, capacity_for(template, per_device, e2v.backend))

    return PriorBench("e2v", e2v, generator, make_loss, lambda size: resized(data, size))


def build_a2e(config, model, largest: int) -> PriorBench:
    from ggtalker_jax.train.a2e import build_prior, make_loss_fn, prepare_data, set_statistics

    del largest  # a WindowSource is cheap to make: one per size
    a2e = config.a2e
    data = prepare_data(model, a2e)
    prior = build_prior(
        a2e, data.extractor.dim, data.layout, len(data.identities), seed=config.seed
    )
    set_statistics(prior, data)

    def source(size: int):
        return data.source(dataclasses.replace(a2e, batch_size=size), seed=config.seed)

    return PriorBench("a2e", a2e, prior, lambda mesh, _: make_loss_fn(a2e, mesh), source)


def build_inpainter(config, model, largest: int) -> PriorBench:
    from ggtalker_jax.data.inpainter import make_inpainter_source
    from ggtalker_jax.train import inpainter

    section = config.inpainter
    data = make_inpainter_source(model, section.data, largest, "train")
    module = inpainter.build_inpainter(section, seed=config.seed)
    return PriorBench(
        "inpainter",
        section,
        module,
        lambda mesh, _: inpainter.make_loss_fn(section, mesh),
        lambda size: resized(data, size),
    )


BUILDERS = {"e2v": build_e2v, "a2e": build_a2e, "inpainter": build_inpainter}


# -- timing ----------------------------------------------------------------------------------


class StampedSource:
    """A data source that notes when the first batch of a run is asked for."""

    def __init__(self, source):
        self.source, self.batch_size, self.first_call = source, source.batch_size, None

    def batch(self, position: int):
        if self.first_call is None:
            self.first_call = time.perf_counter()
        return self.source.batch(position)


class StampedLogger:
    """A :class:`~ggtalker_jax.train.logging.TrainLogger` that notes ``(step, time)`` after
    writing each log (what :func:`run_training` calls of it: ``scalars`` and ``flush``)."""

    def __init__(self, logger):
        self.logger, self.stamps = logger, []

    def scalars(self, step: int, values) -> None:
        self.logger.scalars(step, values)
        self.stamps.append((int(step), time.perf_counter()))

    def flush(self) -> None:
        self.logger.flush()


def time_compute(step, state, batch, key, steps: int) -> float:
    """Seconds for ``steps`` back-to-back steps on one sharded batch (after the warm-up)."""
    import jax

    for _ in range(COMPUTE_WARMUP):
        state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))
    return time.perf_counter() - start


def time_input(source, mesh, steps: int) -> float:
    """Seconds for ``steps`` batches of the data source alone, sharded, blocked on at the end
    (a procedural source renders its batches on the device: that is its time there)."""
    import jax

    from ggtalker_jax.train import shard_batch

    batch = shard_batch(source.batch(COMPUTE_WARMUP), mesh)
    jax.block_until_ready(batch)
    start = time.perf_counter()
    for position in range(steps):
        batch = shard_batch(source.batch(position), mesh)
    jax.block_until_ready(batch)
    return time.perf_counter() - start


def time_loop(step, state, source, mesh, section, config, steps: int) -> tuple[float, int]:
    """Seconds for ``steps`` steps of :func:`run_training` (module docstring) and the number
    of logs written in them."""
    import jax

    from ggtalker_jax.train import Checkpointer, TrainLogger, run_training

    total = LOOP_WARMUP + steps
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        workdir = Path(tmp) / "run"
        tensorboard = TrainLogger(workdir)
        logger, data = StampedLogger(tensorboard), StampedSource(source)
        loop_args = dict(
            mesh=mesh,
            key=jax.random.key(config.seed),
            log_every=section.log_every,
            logger=logger,
            progress=False,
        )
        try:
            with Checkpointer(workdir, config.to_json(), every=total + 1) as ckpt:
                warm = run_training(state, step, data, ckpt, steps=LOOP_WARMUP, **loop_args)
                data.first_call, logger.stamps = None, []
                run_training(warm.state, step, data, ckpt, steps=total, **loop_args)
        finally:
            tensorboard.close()
    last_step, end = logger.stamps[-1]
    if last_step != total:  # run_training logs its last step: the timing's end
        raise RuntimeError(f"the loop's last log was at step {last_step}, not {total}")
    return end - data.first_call, len(logger.stamps)


def loss_curve(step, state, source, mesh, config, steps: int) -> list[float]:
    """The loss of each of ``steps`` steps of :func:`run_training` from ``state`` (a log every
    step, a real :class:`Checkpointer` in a temporary folder)."""
    import jax

    from ggtalker_jax.train import Checkpointer, run_training

    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        with Checkpointer(Path(tmp) / "run", config.to_json(), every=steps + 1) as ckpt:
            result = run_training(
                state,
                step,
                source,
                ckpt,
                mesh=mesh,
                key=jax.random.key(config.seed),
                steps=steps,
                log_every=1,
                progress=False,
            )
    return [float(h["train/loss"]) for h in result.history if "train/loss" in h]


def measure(
    prior: PriorBench,
    state,
    n: int,
    per_device: int,
    config,
    steps: int,
    repeats: int = 1,
    curve_steps: int = 0,
) -> dict:
    """One row: the compute, input and loop timings of ``prior`` on the first ``n`` devices,
    each the median of ``repeats`` trials taken in turn (compute, input, loop, compute, ...),
    so a drift of the machine's speed lands in every part alike."""
    import statistics

    import jax
    import jax.numpy as jnp

    from ggtalker_jax import train

    mesh = train.make_data_mesh(jax.devices()[:n])
    size = per_device * n
    source = prior.source(size)
    loss_fn, section = prior.make_loss(mesh, per_device), prior.section
    optimizer = train.section_optimizer(section)
    step = train.make_train_step(loss_fn, optimizer, mesh, train.section_schedule(section))
    batch = train.shard_batch(source.batch(0), mesh)
    got = jax.tree.leaves(batch)[0].shape[0]
    if got != size:
        raise InputError(f"{prior.name}: the data source made batches of {got}, not {size}")
    # Each phase donates its own copy of the initial state.
    fresh = lambda: jax.tree.map(jnp.copy, state)
    key = train.replicate(jax.random.key(config.seed), mesh)
    trials = []
    for _ in range(repeats):
        t_compute = time_compute(step, train.replicate(fresh(), mesh), batch, key, steps)
        t_input = time_input(source, mesh, steps)
        t_loop, logs = time_loop(step, fresh(), source, mesh, section, config, steps)
        trials.append((t_compute, t_input, t_loop))
    t_compute, t_input, t_loop = (statistics.median(t) for t in zip(*trials, strict=True))
    curve = loss_curve(step, fresh(), source, mesh, config, curve_steps) if curve_steps else []
    outside = 1.0 - t_compute / t_loop
    host = 1.0 - (t_compute + t_input) / t_loop
    samples = steps * size / t_loop
    return {
        "prior": prior.name,
        "devices": n,
        "per_device_batch": per_device,
        "global_batch": size,
        "steps": steps,
        "repeats": repeats,
        "log_every": section.log_every,
        "logs_in_window": logs,
        "compute_seconds": t_compute,
        "loop_seconds": t_loop,
        "compute_steps_per_second": steps / t_compute,
        "steps_per_second": steps / t_loop,
        "samples_per_second": samples,
        "samples_per_second_per_device": samples / n,
        "compute_samples_per_second_per_device": steps * size / t_compute / n,
        "input_seconds": t_input,
        "input_share": t_input / t_loop,
        "outside_compute": max(outside, 0.0),
        "clamped": outside < 0,
        "host_overhead": max(host, 0.0),
        # Each trial's own share: the spread the median hides.
        "outside_per_trial": [1.0 - c / loop for c, _, loop in trials],
        "loss_curve": curve,
    }


def add_efficiency(rows: list[dict]) -> None:
    """Each row's per-device samples/s over that of the prior's smallest device count."""
    for name in {r["prior"] for r in rows}:
        mine = [r for r in rows if r["prior"] == name]
        base = min(mine, key=lambda r: r["devices"])
        for r in mine:
            r["efficiency_vs_devices"] = base["devices"]
            for key, per_device in (
                ("efficiency", "samples_per_second_per_device"),
                ("compute_efficiency", "compute_samples_per_second_per_device"),
            ):
                r[key] = r[per_device] / base[per_device]
            if r["loss_curve"] and base["loss_curve"]:
                pairs = zip(r["loss_curve"], base["loss_curve"], strict=True)
                r["curve_max_relative_difference"] = max(
                    abs(a - b) / max(abs(b), 1e-12) for a, b in pairs
                )


# -- the run ---------------------------------------------------------------------------------


def bench(
    config,
    model,
    batches: dict,
    counts: list[int],
    steps: int,
    repeats: int = 1,
    strong: bool = False,
    curve_steps: int = 0,
) -> list[dict]:
    """Every row of the table, in prior then device-count order (progress on stdout).

    Args:
      batches: ``{prior name: batch}``, in the order to run them: the batch per device, or
        with ``strong`` the global batch.
      strong: the same global batch on every device count.
      curve_steps: steps of each count's loss curve (0: none).
    """
    from ggtalker_jax.train import TrainState
    from ggtalker_jax.train.optim import section_optimizer

    rows = []
    for name, batch in batches.items():
        start = time.perf_counter()
        prior = BUILDERS[name](config, model, batch if strong else batch * counts[-1])
        state = TrainState.from_model(prior.module, section_optimizer(prior.section))
        print(f"{name}: data and model ready in {time.perf_counter() - start:.1f} s", flush=True)
        for n in counts:
            start = time.perf_counter()
            row = measure(
                prior,
                state,
                n,
                batch // n if strong else batch,
                config,
                steps,
                repeats,
                curve_steps,
            )
            rows.append(row)
            print(
                f"{name} on {n} device(s): {row['steps_per_second']:.2f} steps/s "
                f"({time.perf_counter() - start:.1f} s with compiles)",
                flush=True,
            )
    add_efficiency(rows)
    return rows


HEADER = (
    f"{'prior':<10}{'devices':>8}{'global batch':>14}{'steps/s':>9}{'samples/s':>11}"
    f"{'samples/s/device':>18}{'efficiency':>12}{'compute steps/s':>17}{'outside compute':>17}"
    f"{'input':>8}{'host':>7}"
)


def table(rows: list[dict]) -> list[str]:
    """The table's lines (the loop's rates; compute steps/s beside them)."""
    lines = [HEADER]
    for r in rows:
        outside = f"{r['outside_compute']:.0%}" + ("*" if r["clamped"] else "")
        lines.append(
            f"{r['prior']:<10}{r['devices']:>8}{r['global_batch']:>14}"
            f"{r['steps_per_second']:>9.2f}{r['samples_per_second']:>11.1f}"
            f"{r['samples_per_second_per_device']:>18.1f}{r['efficiency']:>12.2f}"
            f"{r['compute_steps_per_second']:>17.2f}{outside:>17}"
            f"{r['input_share']:>8.0%}{r['host_overhead']:>7.0%}"
        )
    return lines


def describe_machine(on_cpu: bool) -> dict:
    import flax
    import jax
    import optax

    kinds = sorted({d.device_kind for d in jax.devices()})
    return {
        "device_kinds": kinds,
        "device_count": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "cpu_cores": os.cpu_count(),
        "simulated": on_cpu,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
    }


def run(args) -> dict:
    import logging

    import jax

    from ggtalker_jax.config import load_config
    from ggtalker_jax.flame import load_flame

    priors = check_priors(parse_list(args.priors, "priors"))
    counts = device_counts(args.devices, jax.device_count())
    on_cpu = jax.devices()[0].platform == "cpu"
    # orbax warns when a save waits for the one before: the untimed warm-up's back-to-back
    # saves of steps 0 and 2 do.
    logging.getLogger("absl").setLevel(logging.ERROR)
    config_name = args.config or ("tiny" if on_cpu else "gpu")
    reduced = list(TINY_DATA) if config_name == "tiny" else []
    config = load_config(config_name, [*reduced, *args.set])
    steps = args.steps or (20 if on_cpu else 50)
    machine = describe_machine(on_cpu)
    print(
        f"{', '.join(machine['device_kinds'])} x {machine['device_count']} "
        f"({machine['platform']}); {machine['date']}; jax {machine['jax']}, "
        f"flax {machine['flax']}, optax {machine['optax']}"
    )
    if on_cpu:
        print(
            f"CPU: {machine['device_count']} simulated devices on {machine['cpu_cores']} cores; "
            "numbers show overhead, not scaling"
        )
    if reduced:
        print(f"tiny config, data reduced for speed: {' '.join(reduced)}")
    trials = f"{steps} timed steps after warm-up, {args.repeats} trial(s) of each part in turn"
    if args.strong:
        batches = {n: getattr(config, n).batch_size for n in priors}  # the global batch
        for name, size in batches.items():
            bad = [n for n in counts if size % n]
            if bad:
                raise InputError(
                    f"--strong: {name}.batch_size {size} does not split over {bad[0]} devices; "
                    f"set --set {name}.batch_size=<a multiple of {bad[0]}> or other --devices"
                )
        print(
            f"config {config_name}; strong scaling: the global batch is fixed ("
            + ", ".join(f"{n} {b}" for n, b in batches.items())
            + f") and split over the devices; {trials} (medians)"
        )
    else:
        batches = {n: max(getattr(config, n).batch_size // counts[-1], 1) for n in priors}
        print(
            f"config {config_name}; weak scaling: the batch per device is fixed (batch_size / "
            f"{counts[-1]}, the largest count: "
            + ", ".join(f"{n} {b}" for n, b in batches.items())
            + f"), the global batch is that x devices; {trials} (medians)"
        )
    model = load_flame(config.flame_model or None)
    rows = bench(config, model, batches, counts, steps, args.repeats, args.strong, args.curves)
    print()
    print("\n".join(table(rows)))
    print(
        "steps/s, samples/s and efficiency: the real loop (run_training: data, transfers, "
        f"logs); efficiency: samples/s per device over {counts[0]} device(s); outside "
        "compute = 1 - t_compute / t_loop = input (the data source alone) + host (the rest)"
    )
    if any(r["clamped"] for r in rows):
        print("* the loop ran faster than the compute timing (noise); clamped at 0")
    for r in rows:
        if "curve_max_relative_difference" in r and r["devices"] != counts[0]:
            print(
                f"{r['prior']} on {r['devices']} device(s): loss curve of {args.curves} steps "
                f"within {r['curve_max_relative_difference']:.2e} (relative) of {counts[0]}'s"
            )
    if args.repeats > 1:
        for r in rows:
            shares = ", ".join(f"{x:.0%}" for x in r["outside_per_trial"])
            print(f"{r['prior']} on {r['devices']} device(s): outside compute per trial {shares}")
    return {
        **machine,
        "config": config_name,
        "sets": args.set,
        "reduced": reduced,
        "steps": steps,
        "repeats": args.repeats,
        "strong": args.strong,
        "curve_steps": args.curves,
        # Weak scaling: each prior's batch per device; strong: its global batch.
        ("global_batch" if args.strong else "per_device_batch"): batches,
        "rows": rows,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="tiny, gpu or prior_multi (default: gpu on a GPU, else tiny)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--priors", default=",".join(PRIORS), help="some of e2v,a2e,inpainter")
    p.add_argument("--devices", help="device counts, e.g. 1,2,4,8 (default: powers of two, all)")
    p.add_argument("--steps", type=int, help="timed steps (default: 20 on CPU, 50 on a GPU)")
    p.add_argument(
        "--repeats", type=int, default=1, help="trials of each timing, in turn (default 1)"
    )
    p.add_argument(
        "--strong", action="store_true", help="the same global batch on every device count"
    )
    p.add_argument(
        "--curves", type=int, default=0, metavar="K", help="K-step loss curves (with --strong)"
    )
    p.add_argument("--json", help="write the results here too")
    args = p.parse_args(argv)
    if args.curves < 0:
        p.error(f"--curves {args.curves}: expected 0 or more")
    if args.curves and not args.strong:
        p.error("--curves compares the same batches on every device count: add --strong")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps {args.steps}: expected 1 or more")
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: expected 1 or more")
    if not gpu_present():
        force_cpu_devices()

    try:
        result = run(args)
    except InputError as e:
        print(f"bench_scaling: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
