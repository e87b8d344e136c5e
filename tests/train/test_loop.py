"""The generic loop: resume is exact, divergence and interrupts stop cleanly, logs land."""

import jax
import numpy as np
import pytest

from ggtalker_jax import train


def _train(tiny, data, workdir, config, steps, **kwargs):
    with train.Checkpointer(workdir, config, every=kwargs.pop("every", 3)) as ckpt:
        return train.run_training(
            tiny.state(),
            tiny.step,
            data,
            ckpt,
            mesh=tiny.mesh,
            key=jax.random.key(11),
            steps=steps,
            log_every=kwargs.pop("log_every", 2),
            **kwargs,
        )


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_resume_matches_uninterrupted_run(tmp_path, tiny, make_data, make_config):
    straight = _train(tiny, make_data(), tmp_path / "a", make_config(), 6)
    _train(tiny, make_data(), tmp_path / "b", make_config(), 3)
    resumed = _train(tiny, make_data(), tmp_path / "b", make_config(steps=9), 6)
    for a, b in zip(_leaves(straight.state.arrays()), _leaves(resumed.state.arrays()), strict=True):
        np.testing.assert_array_equal(a, b)
    assert straight.position == resumed.position == 6
    np.testing.assert_array_equal(
        jax.random.key_data(straight.key), jax.random.key_data(resumed.key)
    )
    assert [h["step"] for h in straight.history] == [2, 4, 6]
    assert [h["step"] for h in resumed.history] == [4, 6]  # the window since the restart
    assert straight.history[-1]["train/loss"] < straight.history[0]["train/loss"]


def test_logs_and_evaluates(tmp_path, tiny, make_data, make_config):
    calls = []

    def evaluate(state, step):
        calls.append(step)
        return {"score": float(step)}

    logger = train.TrainLogger(tmp_path)
    result = _train(
        tiny,
        make_data(),
        tmp_path,
        make_config(),
        4,
        logger=logger,
        eval_fn=evaluate,
        eval_every=2,
    )
    logger.close()
    assert calls == [2, 4]
    assert {"step": 4, "eval/score": 4.0} in result.history
    logs = [h for h in result.history if "train/loss" in h]
    assert [h["step"] for h in logs] == [2, 4]
    assert all(h["train/param_norm"] > 0 and h["train/grad_norm"] >= 0 for h in logs)
    # The first window holds the compile: throughput is logged from the second one on.
    assert "perf/steps_per_second" not in logs[0] and logs[1]["perf/steps_per_second"] > 0
    assert logs[1]["perf/samples_per_second"] == pytest.approx(
        logs[1]["perf/steps_per_second"] * make_data().batch_size
    )
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_nan_loss_stops_with_one_line(tmp_path, tiny, make_data, make_config):
    with pytest.raises(train.TrainingDiverged) as error:
        _train(tiny, make_data(nan_at=4), tmp_path, make_config(), 8)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("step 5: the loss is nan")
    assert "last good checkpoint is step 3" in message
    with train.Checkpointer(tmp_path, make_config(), every=3) as ckpt:
        assert ckpt.latest_step() == 3


def test_interrupt_saves_then_raises(tmp_path, tiny, make_data, make_config):
    with pytest.raises(KeyboardInterrupt):
        _train(tiny, make_data(interrupt_at=4), tmp_path, make_config(), 8, every=100)
    with train.Checkpointer(tmp_path, make_config(), every=100) as ckpt:
        assert ckpt.latest_step() == 4
        _, position, _ = ckpt.restore(tiny.state())
    assert position == 4


def test_logger_images(tmp_path, rng):
    logger = train.TrainLogger(tmp_path)
    logger.images(0, "render", rng.uniform(size=(8, 8, 3)).astype(np.float32))
    logger.images(1, "render", np.zeros((8, 8, 3), np.uint8))
    logger.close()
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
