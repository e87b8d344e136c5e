"""The A2E stage on CPU: a few steps of the tiny config lower the loss without retracing, a
step sharded over 8 devices equals the one-device step, the regression baseline trains, and
``ggtalker a2e train | eval | export`` run end to end: a prior whose samples equal the run's,
resume, and one-line refusals."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax.cli import main
from ggtalker_jax.config import load_config
from ggtalker_jax.flame import load_flame
from ggtalker_jax.motion import Speaker
from ggtalker_jax.train import (
    TrainState,
    make_data_mesh,
    make_train_step,
    replicate,
    shard_batch,
)
from ggtalker_jax.train.a2e import (
    build_prior,
    make_loss_fn,
    prepare_data,
    restore_a2e_run,
    set_statistics,
)
from ggtalker_jax.train.optim import section_optimizer

# The tiny config on less data: 3 speakers of 2.4 s clips (60 frames, window 50), 2 held out.
SMALL = [
    "a2e.data.identities=3",
    "a2e.data.clips_per_identity=1",
    "a2e.data.seconds=2.4",
    "a2e.data.heldout_identities=1",
    "a2e.data.heldout_clips=1",
    "a2e.batch_size=8",
    "a2e.warmup_steps=0",
    "a2e.sample_steps=2",
]


@pytest.fixture(scope="module")
def small():
    config = load_config("tiny", SMALL)
    model = load_flame()
    return config, model, prepare_data(model, config.a2e)


def _state(config, data, seed=0):
    prior = build_prior(config, data.extractor.dim, data.layout, len(data.identities), seed)
    set_statistics(prior, data)
    optimizer = section_optimizer(config)
    return TrainState.from_model(prior, optimizer), optimizer


@pytest.mark.parametrize("objective", ["diffusion", "regression"])
def test_steps_lower_the_loss_on_a_fixed_batch_without_retracing(
    small, count_traces, key, objective
):
    base, _, data = small
    config = load_config("tiny", [*SMALL, f"a2e.objective={objective}", "a2e.steps=15"]).a2e
    mesh = make_data_mesh()
    state, optimizer = _state(config, data)
    state = replicate(state, mesh)  # as the training loop does
    # The step folds its step count into the run's key (train.step); this loss draws its
    # noise with one fixed key instead: the loss must fall on one fixed problem.
    loss_fn = make_loss_fn(config, mesh)
    step = make_train_step(lambda model, batch, _: loss_fn(model, batch, key), optimizer, mesh)
    batch = shard_batch(data.source(config, seed=0).batch(0), mesh)
    state, metrics = step(state, batch, key)
    losses = [float(metrics["loss"])]
    with count_traces() as traces:
        for _ in range(config.steps - 1):
            state, metrics = step(state, batch, key)
            losses.append(float(metrics["loss"]))
    assert traces() == 0  # the first step compiled everything
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses


def test_a_sharded_step_equals_the_single_device_step(small, key):
    config, _, data = small
    batch = data.source(config.a2e, seed=3).batch(5)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = make_data_mesh(devices)
        state, _ = _state(config.a2e, data, seed=1)
        state = replicate(state, mesh)
        loss_fn = make_loss_fn(config.a2e, mesh)
        # What the train step differentiates (train.step.make_train_step), on this mesh.
        value_and_grad = jax.jit(
            jax.value_and_grad(lambda p, b, s, f: f(s.model(p), b, key)[0]), static_argnums=3
        )
        loss, grads = value_and_grad(state.params, shard_batch(batch, mesh), state, loss_fn)
        results.append((float(loss), grads))
    assert len(jax.devices()) == 8
    (l1, d1), (l8, d8) = results
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    # Gradients leaf by leaf, to float32 reduction-order noise relative to each leaf's scale.
    for a, b in zip(jax.tree.leaves(d1), jax.tree.leaves(d8), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * np.abs(a).max() + 1e-12)


def test_train_eval_export_and_resume_from_the_command_line(small, tmp_path, capsys):
    _, model, _ = small
    work, prior_dir = tmp_path / "run", tmp_path / "prior"
    args = ["--config", "tiny", *(a for s in SMALL for a in ("--set", s))]
    assert main(["a2e", "train", "--workdir", str(work), *args, "--set", "a2e.steps=4"]) == 0
    out = capsys.readouterr().out
    assert "trained" in out and "step 4" in out and "held-out voices" in out
    report = json.loads((work / "eval" / "metrics.json").read_text())
    assert set(report["sets"]) == {"voices", "languages"}
    assert (work / "eval" / "opening.png").stat().st_size > 1000
    # Resume to more steps with the same config (steps may change).
    assert (
        main(["a2e", "train", "--workdir", str(work), *args, "--set", "a2e.steps=6", "--no-eval"])
        == 0
    )
    assert "step 6" in capsys.readouterr().out
    # Another architecture in the same folder is refused, naming the field.
    code = main(["a2e", "train", "--workdir", str(work), *args, "--set", "a2e.layers=3"])
    assert code == 2 and "a2e.layers" in capsys.readouterr().err
    # The exported float32 prior samples exactly what the run samples.
    assert (
        main(
            ["a2e", "export", "--workdir", str(work), "--out", str(prior_dir), "--dtype", "float32"]
        )
        == 0
    )
    assert "wrote prior" in capsys.readouterr().out
    from ggtalker_jax.priors.a2e import load_a2e_prior

    speaker, a2e, info = load_a2e_prior(prior_dir, model)
    prior, _, identities, _, step = restore_a2e_run(work, model)
    assert step == 6 and info["steps"] == 6 and speaker.identities == identities
    run_speaker = Speaker(prior, speaker.extractor, identities, model.n_exp)
    audio = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    k = jax.random.key(4)
    for name in (None, identities[0]):
        a, b = speaker.speak(audio, k, name), run_speaker.speak(audio, k, name)
        np.testing.assert_allclose(a["expression"], b["expression"], atol=1e-5)
    assert jax.tree.structure(nnx.state(prior)) == jax.tree.structure(nnx.state(speaker.prior))
    # eval on the exported prior, against the run as a baseline.
    ev = tmp_path / "eval"
    assert (
        main(["a2e", "eval", "--prior", str(prior_dir), "--baseline", str(work), "--out", str(ev)])
        == 0
    )
    table = capsys.readouterr().out
    assert "baseline" in table and "prior" in table
    assert main(["a2e", "eval", "--prior", str(prior_dir), "--out", str(ev)]) == 2
    assert "--force" in capsys.readouterr().err
