"""The E2V stage on CPU: a few steps lower the loss on a fixed batch without retracing, a step
sharded over 8 devices equals the one-device step, and
``ggtalker e2v train | eval | export`` run end to end on a tiny config: resume, the held-out
report, a prior whose renders equal the run's, and one-line refusals."""

import json

import jax
import numpy as np
import pytest

from ggtalker_jax.cli import main
from ggtalker_jax.config import load_config
from ggtalker_jax.data.e2v import ProceduralE2V
from ggtalker_jax.flame import load_flame
from ggtalker_jax.train import TrainState, make_data_mesh, make_optimizer, make_train_step
from ggtalker_jax.train.e2v import (
    build_generator,
    capacity_for,
    make_loss_fn,
    predict_batch,
    restore_e2v_run,
)

# The smallest E2V the code allows: 16² UV (255 Gaussians), 32-pixel frames, batch 8 (one
# example per simulated device).
SMALL = [
    "e2v.uv_size=16",
    "e2v.encoder_widths=4,8,8,8",
    "e2v.uv_widths=8,16",
    "e2v.global_dim=8",
    "e2v.uv_embed_dim=4",
    "e2v.batch_size=8",
    "e2v.warmup_steps=0",
    "e2v.data.identities=3",
    "e2v.data.heldout=2",
    "e2v.data.image_size=32",
    "e2v.data.crop_size=32",
    "e2v.data.texture_size=64",
]


class _Fixed:
    """A data source that always returns one batch."""

    def __init__(self, batch):
        self.batch_size = batch.batch_size
        self._batch = batch

    def batch(self, position):
        return self._batch


def test_steps_lower_the_loss_on_a_fixed_batch_without_retracing(count_traces):
    config = load_config("tiny", [*SMALL, "e2v.learning_rate=0.005", "e2v.steps=12"]).e2v
    model = load_flame()
    batch = ProceduralE2V(model, config.data, config.batch_size, range(2)).batch(0)
    mesh = make_data_mesh()
    template, generator = build_generator(model, config)
    optimizer = make_optimizer(config.learning_rate, config.steps, 0, 0.0, config.grad_clip)
    capacity = capacity_for(template, config.batch_size // mesh.size, config.backend)
    step = make_train_step(make_loss_fn(config, mesh, capacity), optimizer, mesh)
    from ggtalker_jax.train import replicate, shard_batch

    state = replicate(TrainState.from_model(generator, optimizer), mesh)
    batch = shard_batch(batch, mesh)
    key = replicate(jax.random.key(0), mesh)
    state, first = step(state, batch, key)
    losses = [float(first["loss"])]
    with count_traces() as traces:
        for _ in range(config.steps - 1):
            state, metrics = step(state, batch, key)
            losses.append(float(metrics["loss"]))
    assert traces() == 0
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.01, losses
    assert float(metrics["dropped"]) == 0 and float(metrics["raster_dropped"]) == 0


def test_a_sharded_step_equals_the_single_device_step(key):
    config = load_config("tiny", SMALL).e2v
    model = load_flame()
    batch = ProceduralE2V(model, config.data, config.batch_size, range(2)).batch(1)
    template, _ = build_generator(model, config)
    capacity = capacity_for(template, config.batch_size, config.backend)  # fits either split
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        from ggtalker_jax.train import replicate, shard_batch

        mesh = make_data_mesh(devices)
        _, generator = build_generator(model, config, seed=1)
        state = replicate(TrainState.from_model(generator, make_optimizer(1e-3, 2, 0, 0, 1)), mesh)
        loss_fn = make_loss_fn(config, mesh, capacity)
        # What the train step differentiates (train.step.make_train_step), on this mesh.
        value_and_grad = jax.jit(
            jax.value_and_grad(lambda p, b, s, f: f(s.model(p), b, key)[0]), static_argnums=3
        )
        results.append(value_and_grad(state.params, shard_batch(batch, mesh), state, loss_fn))
    assert len(jax.devices()) == 8
    (l1, d1), (l8, d8) = results
    np.testing.assert_allclose(float(l8), float(l1), rtol=1e-5)
    # Leaf by leaf, the relative L2 error: the splatting's per-device sort and blend reorder
    # float32 sums, which moves a leaf by up to about 1.5e-3 of its norm; a wrong
    # reduction over devices (a missing sum, a factor of 8) is off by order one. A leaf whose
    # gradient is only noise (a bias before a normalisation) is held to the largest leaf.
    norms = [float(np.linalg.norm(np.asarray(a))) for a in jax.tree.leaves(d1)]
    for a, b, norm in zip(jax.tree.leaves(d1), jax.tree.leaves(d8), norms, strict=True):
        error = float(np.linalg.norm(np.asarray(b) - np.asarray(a)))
        assert error <= 5e-3 * norm + 1e-6 * max(norms), (error, norm)


def test_cli_train_eval_export_resume_and_refusals(tmp_path, capsys):
    work = tmp_path / "run"
    args = ["e2v", "train", "--workdir", str(work), "--set", "e2v.steps=3"]
    args += [x for s in SMALL for x in ("--set", s)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained" in out and "step 3" in out and "held-out identities" in out
    report = json.loads((work / "eval" / "metrics.json").read_text())
    assert report["identities"] == 2
    assert set(report["cases"]) == {
        "same camera",
        "yaw +30",
        "yaw -30",
        "yaw +60",
        "yaw -60",
        "other identity",
    }
    for row in report["cases"].values():
        assert all(np.isfinite(v) for v in row.values())
    assert (work / "eval" / "grid_same_camera.png").is_file()
    assert list((work / "tensorboard").iterdir())

    # A rerun of the same config resumes at its end: no step, same checkpoint.
    assert main([*args, "--no-eval"]) == 0
    assert "step 3" in capsys.readouterr().out

    # Another config in the same workdir: one line naming the field.
    assert main([*args, "--set", "e2v.uv_size=32", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "e2v.uv_size (16 there, 32 here)" in err and "--force" in err
    assert err.count("\n") == 1

    # Export in float32: the prior renders exactly what the run's checkpoint renders.
    prior = tmp_path / "prior"
    cmd = ["e2v", "export", "--workdir", str(work), "--out", str(prior)]
    assert main([*cmd, "--dtype", "float32"]) == 0
    assert "wrote prior" in capsys.readouterr().out
    assert main([*cmd, "--dtype", "float32"]) == 2
    assert "already holds a prior; pass --force" in capsys.readouterr().err
    from ggtalker_jax.priors.e2v import load_e2v_prior

    run_generator, e2v, _, step = restore_e2v_run(work)
    prior_generator, prior_config, info = load_e2v_prior(prior)
    assert step == 3 and prior_config == e2v and info["steps"] == 3
    source = ProceduralE2V(run_generator.template.model, e2v.data, 1, range(3, 5))
    batch = source.views([3, 4], [0.0, 0.5], position=1)
    np.testing.assert_array_equal(
        np.asarray(predict_batch(run_generator, batch, e2v).rgb),
        np.asarray(predict_batch(prior_generator, batch, e2v).rgb),
    )

    # eval of the prior into a folder; a second eval there needs --force.
    ev = ["e2v", "eval", "--prior", str(prior), "--out", str(tmp_path / "ev")]
    assert main(ev) == 0
    assert "other identity" in capsys.readouterr().out
    assert main(ev) == 2
    assert "metrics.json: already exists; pass --force" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["e2v", "eval", "--workdir", "{tmp}"], "no training run here"),
        (["e2v", "eval", "--prior", "{tmp}", "--out", "{tmp}/o"], "not a prior folder"),
        (["e2v", "export", "--workdir", "{tmp}", "--out", "{tmp}/p"], "no training run here"),
        (
            ["e2v", "train", "--workdir", "{tmp}/w", "--set", "e2v.batch_size=12"],
            "batch size 12 is not divisible by the 8 devices",
        ),
        (
            ["e2v", "train", "--workdir", "{tmp}/w", "--set", "e2v.uv_size=20"],
            "e2v.uv_size=20 is invalid",
        ),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1
