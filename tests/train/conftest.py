"""A tiny regression problem for the trainer's tests: an ``nnx.Linear`` fitting a fixed linear
map, batches deterministic in their position, one jitted step per mesh (built once)."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax import train

IN, OUT, BATCH, STEPS = 4, 2, 16, 50
TRUE_MAP = np.linspace(-1.0, 1.0, IN * OUT, dtype=np.float32).reshape(IN, OUT)


@dataclasses.dataclass
class Regression:
    """``y = x @ TRUE_MAP``; ``nan_at`` makes that position's targets NaN; ``interrupt_at``
    raises KeyboardInterrupt when that position is asked for."""

    batch_size: int = BATCH
    nan_at: int | None = None
    interrupt_at: int | None = None

    def batch(self, position: int):
        if position == self.interrupt_at:
            raise KeyboardInterrupt
        rng = np.random.default_rng(position)
        x = rng.normal(size=(self.batch_size, IN)).astype(np.float32)
        y = x @ TRUE_MAP
        if position == self.nan_at:
            y = np.full_like(y, np.nan)
        return {"x": x, "y": y}


def mse_loss(model, batch, key):
    noise = 1e-3 * jax.random.normal(key, batch["y"].shape)  # the key must matter
    error = model(batch["x"]) - (batch["y"] + noise)
    return jnp.mean(error**2), {"mae": jnp.mean(jnp.abs(error))}


def config_json(name="tiny", **changes) -> str:
    config = {"name": name, "seed": 0, "e2v": {"steps": 6, "uv_size": 32, "log_every": 2}}
    config["e2v"].update(changes)
    return json.dumps(config, indent=2, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Tiny:
    mesh: jax.sharding.Mesh
    optimizer: object
    step: object

    def state(self, seed: int = 0) -> train.TrainState:
        model = nnx.Linear(IN, OUT, rngs=nnx.Rngs(seed))
        return train.replicate(train.TrainState.from_model(model, self.optimizer), self.mesh)


@functools.cache
def _tiny(devices: int) -> Tiny:
    mesh = train.make_data_mesh(jax.devices()[:devices])
    optimizer = train.make_optimizer(
        learning_rate=0.05, steps=STEPS, warmup_steps=2, weight_decay=1e-4, grad_clip=1.0
    )
    return Tiny(mesh, optimizer, train.make_train_step(mse_loss, optimizer, mesh))


@pytest.fixture
def tiny() -> Tiny:
    """The problem on all (8 simulated) devices."""
    return _tiny(len(jax.devices()))


@pytest.fixture
def tiny_one() -> Tiny:
    """The same problem on one device."""
    return _tiny(1)


@pytest.fixture
def make_data():
    """:class:`Regression`'s constructor."""
    return Regression


@pytest.fixture
def make_config():
    """:func:`config_json`."""
    return config_json
