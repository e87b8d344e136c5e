"""Data parallelism: one mesh axis ``"data"`` over every device, params replicated, batches split.

The mesh comes from ``jax.make_mesh``, whose axes are ``AxisType.Explicit`` by default in jax
0.11: an array's sharding is part of its type, so the batch's ``P("data")`` flows through
every op of the step and the gradient of replicated parameters is summed across devices by
the compiler, with no ``pmap``-style collectives written by hand. ``shard_map``
(:func:`per_example`) is used only around calls that must see one device's slice, such as
the Pallas rasterizer.

Multi-host runs start with :func:`initialize_distributed` (``jax.distributed.initialize()``
from the launcher's environment variables) before anything touches a device; the mesh then
spans every process's devices, and :func:`shard_batch` hands each process's rows of the
global batch to ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ggtalker_jax.errors import InputError

DATA_AXIS = "data"

# What a multi-process launch sets: JAX's own variables, or a cluster's that
# jax.distributed.initialize() detects by itself (Slurm, Open MPI).
_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
_CLUSTER_HINTS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def initialize_distributed() -> bool:
    """Start JAX's distributed runtime when this process is one of several.

    A multi-host run sets ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` on every host (or runs under Slurm or Open
    MPI with more than one task, which JAX detects itself); one process per host then drives
    all of its local GPUs. With none of these, nothing happens (one process, every local
    device). Call it before anything touches a device; calling it twice is harmless.

    Returns:
      Whether the runtime was started (by this call or an earlier one).

    Raises:
      InputError: a coordinator address without the process count and id, or numbers that
        do not parse.
    """
    if jax.distributed.is_initialized():
        return True
    env = os.environ
    if _COORDINATOR in env:
        missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if k not in env]
        if missing:
            raise InputError(
                f"{_COORDINATOR}={env[_COORDINATOR]} is set but {' and '.join(missing)} "
                "is not; set all three on every host (the process count, and this host's "
                "index from 0)"
            )
        try:
            count, index = int(env["JAX_NUM_PROCESSES"]), int(env["JAX_PROCESS_ID"])
        except ValueError:
            raise InputError(
                f"JAX_NUM_PROCESSES={env['JAX_NUM_PROCESSES']!r}, JAX_PROCESS_ID="
                f"{env['JAX_PROCESS_ID']!r}: expected integers"
            ) from None
        if not 0 <= index < count:
            raise InputError(
                f"JAX_PROCESS_ID={index} with JAX_NUM_PROCESSES={count}: expected an id "
                f"from 0 to {count - 1}"
            )
        if count == 1:
            return False
        jax.distributed.initialize(env[_COORDINATOR], num_processes=count, process_id=index)
        return True
    if any(int(env.get(k, "1") or 1) > 1 for k in _CLUSTER_HINTS):
        jax.distributed.initialize()
        return True
    return False


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all of them).

    The axis type is left at jax 0.11's default, ``Explicit`` (sharding in types; see the
    module docstring), on purpose.
    """
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of parameters, optimizer state and keys: a full copy on every device."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: the leading axis split over ``"data"``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh: Mesh):
    """Put every array of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def check_batch(tree, mesh: Mesh) -> int:
    """The common leading size of ``tree``'s arrays, checked against the device count.

    Raises:
      InputError: arrays with no leading axis, leading sizes that differ, or a batch size
        that the devices do not divide (naming both numbers and the fix).
    """
    leaves = jax.tree.leaves(tree)
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        raise InputError(
            f"batch: every array needs the same leading batch axis, got leading sizes "
            f"{sorted(str(s) for s in sizes)}; check the data source's batch()"
        )
    (size,) = sizes
    n = mesh.size
    if size % n:
        raise InputError(
            f"batch size {size} is not divisible by the {n} devices of the data mesh; choose a "
            f"batch size that is a multiple of {n} (e.g. {max(n, size // n * n)})"
        )
    return size


def process_rows(size: int) -> slice:
    """The rows of a global batch of ``size`` that this process feeds (all of them in a
    one-process run); the processes' slices tile the batch in process order."""
    count, index = jax.process_count(), jax.process_index()
    local = size // count
    return slice(index * local, (index + 1) * local)


def shard_batch(tree, mesh: Mesh):
    """Split the leading axis of every array of ``tree`` (the global batch) over the
    ``"data"`` axis.

    Each process puts only its own rows (:func:`process_rows`) on its own devices, through
    ``jax.make_array_from_process_local_data``; with one process that is the whole batch.
    A data source is deterministic in its position, so every process can compute the same
    global batch and keep its rows (a source that makes only its rows saves that work).

    Raises:
      InputError: as :func:`check_batch`.
    """
    size = check_batch(tree, mesh)
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    rows = process_rows(size)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x[rows], x.shape)

    return jax.tree.map(put, tree)


def per_example(fn: Callable, mesh: Mesh, *, check_vma: bool = True) -> Callable:
    """``fn`` run by each device on its own slice of the batch (``jax.shard_map``).

    Every positional argument and every output is split along its leading axis over
    ``"data"``; whatever ``fn`` closes over is seen whole by every device. Use it around calls
    that cannot be partitioned by the compiler (a Pallas kernel); everything else in a step
    stays in the global, explicitly-sharded view.

    Args:
      fn: a function of batched arrays, ``[B/n, ...] -> [B/n, ...]`` per device.
      mesh: the data mesh.
      check_vma: ``jax.shard_map``'s replication checks (turn off for a kernel whose
        outputs JAX cannot type).
    """
    return jax.shard_map(
        fn, mesh=mesh, in_specs=P(DATA_AXIS), out_specs=P(DATA_AXIS), check_vma=check_vma
    )


def sharded_example_terms(
    example_terms: Callable, mesh: Mesh, model, batch, draws, *, check_vma: bool = True
) -> dict:
    """A loss's per-example terms, each device computing those of its slice of the batch.

    The draws are made for the global batch first (so a step's randomness does not depend on
    the device count), then split with it; the model's parameters are seen whole by every
    device.

    Args:
      example_terms: ``(model, local_batch, local_draws) -> {name: [B/n]}``, with a
        ``"loss"`` term.
      mesh: the data mesh.
      model: an NNX module (split here, merged again on each device).
      batch: the global batch, split over ``"data"``.
      draws: a pytree of ``[B, ...]`` random draws for the global batch (``{}``: none).
      check_vma: as :func:`per_example`.

    Returns:
      ``{name: [B]}``, split over ``"data"``.
    """
    graphdef, state = nnx.split(model)
    split = batch_sharding(mesh)
    draws = jax.tree.map(lambda x: jax.sharding.reshard(x, split), draws)

    def per_device(state, local_batch, local_draws):
        return example_terms(nnx.merge(graphdef, state), local_batch, local_draws)

    return jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)),
        out_specs=P(DATA_AXIS),
        check_vma=check_vma,
    )(state, batch, draws)


def mean_loss(terms: dict) -> tuple[jax.Array, dict]:
    """``(loss, metrics)``: the batch means of :func:`sharded_example_terms`' terms, the
    ``"loss"`` one apart."""
    means = {k: jnp.mean(v) for k, v in terms.items()}
    return means.pop("loss"), means
