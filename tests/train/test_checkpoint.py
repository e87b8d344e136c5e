"""Checkpoints: exact round trips of sharded state, config guarding, atomicity, retention."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ggtalker_jax import train
from ggtalker_jax.errors import InputError


def _trained(tiny, make_data, steps=2):
    state, key = tiny.state(), jax.random.key(7)
    for position in range(steps):
        state, _ = tiny.step(state, train.shard_batch(make_data().batch(position), tiny.mesh), key)
    return state


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_restore_round_trip(tmp_path, tiny, make_data, make_config):
    state = _trained(tiny, make_data)
    snapshot = jax.device_get(state.arrays())
    key = jax.random.fold_in(jax.random.key(3), 5)
    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        ckpt.save(2, state, data_position=9, rng_key=key)
        # The step donates the saved state while the async save may still be writing.
        _trained(tiny, make_data, 1)
        state, _ = tiny.step(state, train.shard_batch(make_data().batch(5), tiny.mesh), key)
    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        assert ckpt.latest_step() == 2
        restored, position, restored_key = ckpt.restore(tiny.state(seed=1))
    _assert_same(restored.arrays(), snapshot)
    assert int(restored.step) == 2 and position == 9
    np.testing.assert_array_equal(jax.random.key_data(restored_key), jax.random.key_data(key))
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding.spec == P() and len(leaf.sharding.device_set) == 8
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(make_config())


def test_empty_workdir_restores_none(tmp_path, tiny, make_config):
    with train.Checkpointer(tmp_path / "run", make_config(), every=2) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.restore(tiny.state()) is None


def test_other_config_is_refused_in_one_line(tmp_path, make_config):
    with train.Checkpointer(tmp_path, make_config(), every=2):
        pass
    with pytest.raises(InputError) as error:
        train.Checkpointer(tmp_path, make_config(name="gpu", uv_size=64), every=2)
    message = str(error.value)
    assert "\n" not in message
    for part in ("'tiny'", "'gpu'", "e2v.uv_size", "32", "64", "--workdir", "--force"):
        assert part in message


def test_resumable_keys_may_change(tmp_path, make_config):
    with train.Checkpointer(tmp_path, make_config(), every=2):
        pass
    with train.Checkpointer(tmp_path, make_config(steps=600, log_every=5), every=2):
        pass
    assert json.loads((tmp_path / "config.json").read_text())["e2v"]["steps"] == 600


def test_force_starts_over_and_keeps_foreign_files(tmp_path, tiny, make_data, make_config):
    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        ckpt.save(2, _trained(tiny, make_data), 2, jax.random.key(0))
    with train.Checkpointer(tmp_path, make_config(uv_size=64), every=2, force=True) as ckpt:
        assert ckpt.latest_step() is None
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"notes\.txt"):
        train.Checkpointer(tmp_path, make_config(), every=2, force=True)


def test_second_writer_is_refused(tmp_path, make_config):
    with train.Checkpointer(tmp_path, make_config(), every=2):
        with pytest.raises(InputError, match="another ggtalker training run"):
            train.Checkpointer(tmp_path, make_config(), every=2)


def test_partial_checkpoint_is_ignored_and_removed(tmp_path, tiny, make_data, make_config):
    state = _trained(tiny, make_data)
    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        ckpt.save(2, state, 2, jax.random.key(0))
    # What a kill during orbax's write of step 4 leaves: its temporary folder, half written.
    partial = tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1700000000000000"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "junk").write_bytes(b"\0" * 10)
    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        assert ckpt.latest_step() == 2
        assert ckpt.restore(tiny.state()) is not None
    assert not partial.exists()


def test_keeps_the_newest(tmp_path, tiny, make_data, make_config):
    state = _trained(tiny, make_data)
    with train.Checkpointer(tmp_path, make_config(), every=1, keep=2) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, state, step, jax.random.key(0))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
        "2",
        "3",
    ]


def test_checkpoint_of_another_model_is_one_line(tmp_path, tiny, make_data, make_config):
    from flax import nnx

    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        ckpt.save(2, _trained(tiny, make_data), 2, jax.random.key(0))
    bigger = train.TrainState.from_model(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), tiny.optimizer)
    with train.Checkpointer(tmp_path, make_config(), every=2) as ckpt:
        with pytest.raises(InputError, match="does not fit this model"):
            ckpt.restore(train.replicate(bigger, tiny.mesh))
