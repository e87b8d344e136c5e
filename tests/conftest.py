"""Test setup: 8 simulated CPU devices (unless a GPU is present), strict rank promotion,
a persistent compilation cache, and one printed, replayable seed per run.

Replay a failure with ``GGTALKER_TEST_SEED=<seed printed in the header>``.
"""

import os
import shutil
import subprocess

if (
    shutil.which("nvidia-smi") is None
    or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode != 0
):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    )

import contextlib
import secrets
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# No silent dtype widening: mixing float32 with a Python float is fine, but float32 with
# float64/int arrays must be written out (jnp.asarray(x, jnp.float32)).
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).parent.parent / ".jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

SEED = int(os.environ.get("GGTALKER_TEST_SEED", secrets.randbelow(2**31)))
os.environ["GGTALKER_TEST_SEED"] = str(SEED)  # xdist workers inherit the same seed


def pytest_report_header(config):
    return f"GGTALKER_TEST_SEED={SEED} (set it to replay this run)"


def pytest_collection_modifyitems(config, items):
    on_gpu = any(d.platform == "gpu" for d in jax.devices())
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        # The marker, not the keyword: a parametrize id "gpu" (the gpu config) is no GPU test.
        if item.get_closest_marker("gpu") is not None and not on_gpu:
            item.add_marker(skip)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A numpy generator seeded from the run seed and the test's name (independent per test,
    replayable with GGTALKER_TEST_SEED)."""
    salt = int.from_bytes(request.node.nodeid.encode()[-8:].rjust(8, b"\0"), "little")
    return np.random.default_rng([SEED, salt])


@pytest.fixture
def key(rng) -> jax.Array:
    """A fresh JAX key derived from :func:`rng`."""
    return jax.random.key(int(rng.integers(2**31)))


@contextlib.contextmanager
def _count_traces():
    """Count the jaxpr traces (one per jit cache miss) inside the block, through JAX's
    public monitoring events: ``with count_traces() as traces: ...; traces()``.

    For functions a test cannot wrap in ``chex.assert_max_traces`` (a library's eager entry
    point that calls its own jitted core).
    """
    events = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield lambda: len(events)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def count_traces():
    """:func:`_count_traces`, for tests that check a function does not retrace."""
    return _count_traces
