"""The data mesh, batch sharding, shard_map per example, and the jitted step on it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from ggtalker_jax import train
from ggtalker_jax.errors import InputError


def _run(tiny, data, steps):
    state, key = tiny.state(), jax.random.key(0)
    losses = []
    for position in range(steps):
        key, sub = jax.random.split(key)
        state, metrics = tiny.step(state, train.shard_batch(data.batch(position), tiny.mesh), sub)
        losses.append(float(metrics["loss"]))
    return state, losses


def test_mesh_is_explicit_data_axis():
    mesh = train.make_data_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.size == len(jax.devices()) == 8
    assert mesh.axis_types == (AxisType.Explicit,)


def test_shard_batch_splits_leading_axis(tiny, make_data):
    batch = train.shard_batch(make_data().batch(0), tiny.mesh)
    assert batch["x"].sharding.spec == P("data")
    assert {s.data.shape for s in batch["x"].addressable_shards} == {(2, 4)}


@pytest.mark.parametrize("size", [12, 3])
def test_batch_not_divisible_is_one_line(tiny, size):
    with pytest.raises(InputError, match=f"batch size {size} is not divisible by the 8 devices"):
        train.shard_batch({"x": np.zeros((size, 4), np.float32)}, tiny.mesh)


def test_batch_with_mismatched_leading_axes_is_one_line(tiny):
    with pytest.raises(InputError, match="same leading batch axis"):
        train.shard_batch({"x": np.zeros((8, 4)), "y": np.zeros((16, 4))}, tiny.mesh)


def _per_device(x, y):
    # Each device sees its own slice: report the slice size with the values.
    return x * 2.0 + y, jnp.full((x.shape[0],), x.shape[0], jnp.int32)


def test_per_example_maps_device_slices(tiny, rng):
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)
    fn = jax.jit(train.per_example(_per_device, tiny.mesh))
    out, sizes = fn(*train.shard_batch((x, y), tiny.mesh))
    np.testing.assert_allclose(np.asarray(out), x * 2.0 + y, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(sizes), 2)
    assert out.sharding.spec[0] == "data"


def test_loss_goes_down_on_fixed_batch(tiny, make_data):
    data = make_data()
    fixed = type("Fixed", (), {"batch": lambda self, p: data.batch(0)})()
    _, losses = _run(tiny, fixed, 12)
    assert losses[-1] < 0.5 * losses[0], losses


def test_step_keeps_replication_and_does_not_retrace(tiny, make_data, count_traces):
    data = make_data()
    state, key = tiny.state(), jax.random.key(1)
    state, _ = tiny.step(state, train.shard_batch(data.batch(0), tiny.mesh), key)  # compiled
    with count_traces() as traces:
        for position in range(1, 4):
            state, metrics = tiny.step(
                state, train.shard_batch(data.batch(position), tiny.mesh), key
            )
    assert traces() == 0
    assert int(state.step) == 4
    assert set(metrics) == {"loss", "mae", "grad_norm", "param_norm"}
    for leaf in jax.tree.leaves(state):
        assert leaf.sharding.spec == P() and len(leaf.sharding.device_set) == 8


def test_eight_devices_match_one(tiny, tiny_one, make_data):
    data = make_data()
    state8, losses8 = _run(tiny, data, 4)
    state1, losses1 = _run(tiny_one, data, 4)
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_optimizer_rejects_bad_schedule():
    with pytest.raises(InputError, match="warmup_steps"):
        train.make_optimizer(1e-3, steps=10, warmup_steps=10, weight_decay=0.0, grad_clip=1.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JAX_COORDINATOR_ADDRESS": "host0:1234"}, "JAX_NUM_PROCESSES and JAX_PROCESS_ID"),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "x"},
            "expected integers",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
            "from 0 to 1",
        ),
    ],
)
def test_a_half_set_launch_environment_is_one_line(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=message):
        train.parallel.initialize_distributed()


def test_one_process_needs_no_distributed_runtime(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert train.parallel.initialize_distributed() is False
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    assert train.parallel.initialize_distributed() is False
    assert train.parallel.process_rows(16) == slice(0, 16)
