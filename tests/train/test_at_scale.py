"""What every prior trainer (E2V, A2E, inpainter) guarantees at scale, on 8 simulated CPU
devices, through ``ggtalker <prior> train``:

- a training process killed with SIGKILL at a random step (drawn from the run's seed) and
  started again ends on exactly the parameters of a run that was never interrupted;
- SIGTERM (a scheduler's preemption) saves the step under way and exits with status 143;
- a run whose loss turns NaN stops with one line naming the step and the last good
  checkpoint, and that checkpoint exports as a prior with finite parameters;
- a work directory made by another config is refused, naming the fields that differ.

The one-device and the sharded step agree in each trainer's own test file.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax.cli import main
from ggtalker_jax.flame import load_flame
from ggtalker_jax.train import loop

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,  # the conftest's platform and 8 simulated devices included
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
}
STEPS = 6
# Each prior at the smallest size its code allows, one example per simulated device, a
# checkpoint every step (a kill loses at most one), no warm-up and no evaluation.
SMALL = {
    "e2v": [
        "e2v.uv_size=16",
        "e2v.encoder_widths=4,8,8,8",
        "e2v.uv_widths=8,16",
        "e2v.global_dim=8",
        "e2v.uv_embed_dim=4",
        "e2v.data.identities=3",
        "e2v.data.heldout=0",
        "e2v.data.image_size=32",
        "e2v.data.crop_size=32",
        "e2v.data.texture_size=64",
    ],
    "a2e": [
        "a2e.data.identities=2",
        "a2e.data.clips_per_identity=1",
        "a2e.data.seconds=2.4",
        "a2e.data.heldout_identities=1",
        "a2e.data.heldout_clips=1",
    ],
    "inpainter": [
        "inpainter.widths=4,8,8",
        "inpainter.data.identities=2",
        "inpainter.data.heldout=0",
        "inpainter.data.seconds=0.4",
        "inpainter.data.image_size=32",
    ],
}
COMMON = ["batch_size=8", "warmup_steps=0", "log_every=1", "checkpoint_every=1", "eval_every=0"]
# A field of each architecture, and the learning rate, to change for the refusal.
OTHER = {
    "e2v": ["e2v.global_dim=12", "e2v.learning_rate=0.005"],
    "a2e": ["a2e.layers=3", "a2e.learning_rate=0.005"],
    "inpainter": ["inpainter.widths=4,8,16", "inpainter.learning_rate=0.005"],
}
PRIORS = list(SMALL)


def train_args(prior: str, workdir: Path, *extra: str) -> list[str]:
    sets = [*SMALL[prior], *(f"{prior}.{c}" for c in COMMON), f"{prior}.steps={STEPS}"]
    sets += extra
    return [prior, "train", "--workdir", str(workdir), "--no-eval"] + [
        a for s in sets for a in ("--set", s)
    ]


def saved_steps(workdir: Path) -> list[int]:
    """The complete checkpoints' steps (orbax renames a step's folder when it is whole)."""
    root = workdir / "checkpoints"
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.is_dir() else []


def run_until(args: list[str], workdir: Path, step: int, sig: int) -> tuple[int, str]:
    """``ggtalker ARGS`` in a child process, sent ``sig`` once checkpoint ``step`` exists:
    its exit status and standard error."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggtalker_jax.cli", *args],
        cwd=workdir.parent,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    with proc:
        while not any(s >= step for s in saved_steps(workdir)):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"no checkpoint {step} before the run ended: {proc.communicate()[1]}")
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def restored_params(prior: str, workdir: Path) -> tuple[list[np.ndarray], int]:
    """The trained parameters of a run's newest checkpoint, and its step."""
    if prior == "e2v":
        from ggtalker_jax.train.e2v import restore_e2v_run

        module, *_, step = restore_e2v_run(workdir, load_flame())
    elif prior == "a2e":
        from ggtalker_jax.train.a2e import restore_a2e_run

        module, *_, step = restore_a2e_run(workdir, load_flame())
    else:
        from ggtalker_jax.train.inpainter import restore_inpainter_run

        module, *_, step = restore_inpainter_run(workdir)
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(module))], step


@pytest.mark.parametrize("prior", PRIORS)
def test_sigkill_at_a_random_step_resumes_to_the_uninterrupted_parameters(
    prior, tmp_path, rng, capsys
):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(train_args(prior, straight)) == 0
    capsys.readouterr()
    kill_at = int(rng.integers(1, STEPS // 2 + 1))
    code, _ = run_until(train_args(prior, killed), killed, kill_at, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = saved_steps(killed)
    assert kill_at <= max(left) < STEPS, f"killed at step {kill_at}, saved {left}"
    # The same command again (no --force) resumes from the newest complete checkpoint.
    assert main(train_args(prior, killed)) == 0
    assert f"step {STEPS}" in capsys.readouterr().out
    (a, step_a), (b, step_b) = restored_params(prior, straight), restored_params(prior, killed)
    assert step_a == step_b == STEPS and len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(y, x)
    # The finished run's folder refuses another config, naming what differs.
    code = main(train_args(prior, killed, *OTHER[prior]))
    err = capsys.readouterr().err
    field, rate = (s.split("=")[0] for s in OTHER[prior])
    assert code == 2 and field in err and rate in err and "--force" in err


def test_sigterm_saves_the_step_and_exits_143(tmp_path, capsys):
    work = tmp_path / "run"
    code, err = run_until(train_args("inpainter", work), work, 2, signal.SIGTERM)
    assert code == 143, err
    assert "stopped by SIGTERM at step" in err and "rerun the same command" in err
    stopped_at = int(err.split("stopped by SIGTERM at step ")[1].split(":")[0])
    assert 2 <= stopped_at < STEPS and max(saved_steps(work)) == stopped_at
    assert main(train_args("inpainter", work)) == 0
    assert f"step {STEPS}" in capsys.readouterr().out


@pytest.mark.parametrize("prior", PRIORS)
def test_a_nan_loss_stops_in_one_line_and_leaves_a_loadable_checkpoint(
    prior, tmp_path, rng, monkeypatch, capsys
):
    bad_step = int(rng.integers(2, STEPS))
    make_step = loop.make_train_step

    def diverging(*args, **kwargs):  # the parameters turn NaN before step bad_step
        step = make_step(*args, **kwargs)

        def run(state, batch, key):
            diverging.calls += 1
            if diverging.calls == bad_step:
                state = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
            return step(state, batch, key)

        return run

    diverging.calls = 0
    monkeypatch.setattr(loop, "make_train_step", diverging)
    work = tmp_path / "run"
    assert main(train_args(prior, work)) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ggtalker")]
    assert len(lines) == 1, lines  # the rest of standard error is the progress bar
    (err,) = lines
    assert err.startswith(f"ggtalker: error: step {bad_step}: the loss is nan (not finite)")
    assert f"the last good checkpoint is step {bad_step - 1}" in err
    # That checkpoint loads, its parameters finite, and exports as a prior.
    params, step = restored_params(prior, work)
    assert step == bad_step - 1 and all(np.isfinite(p).all() for p in params)
    out = tmp_path / "prior"
    export = [prior, "export", "--workdir", str(work), "--out", str(out)]
    assert main(export) == 0 and (out / "prior.json").is_file()
