"""Data parallelism: one mesh axis ``"data"`` over every device, params replicated, batches split.

The mesh comes from ``jax.make_mesh``, whose axes are ``AxisType.Explicit`` by default in jax
0.11: an array's sharding is part of its type, so the batch's ``P("data")`` flows through
every op of the step and the gradient of replicated parameters is summed across devices by
the compiler, with no ``pmap``-style collectives written by hand. ``shard_map``
(:func:`per_example`) is used only around calls that must see one device's slice, such as
the Pallas rasterizer.

Multi-host runs call ``jax.distributed.initialize()`` before building the mesh; this module
then sees every process's devices (single-host batches only for now: see :func:`shard_batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ggtalker_jax.errors import InputError

DATA_AXIS = "data"


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


def shard_batch(tree, mesh: Mesh):
    """Split the leading axis of every array of ``tree`` over the ``"data"`` axis.

    Raises:
      InputError: as :func:`check_batch`.
    """
    check_batch(tree, mesh)
    return jax.device_put(tree, batch_sharding(mesh))


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
