"""Input checks shared by the mesh renderer (:mod:`ggtalker_jax.render.mesh.raster`).

Shapes, dtypes and static sizes are checked at trace time; values (NaN, indices out of range)
only when the arrays are concrete, i.e. at a host-side call. Each failure is one
:class:`~ggtalker_jax.errors.InputError` line naming the value and the fix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_image_size(width, height) -> tuple[int, int]:
    """Return ``(width, height)`` as ints, or raise :class:`InputError` unless both are
    positive integers (they are static: checked at trace time)."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise InputError(f"image {name} must be a positive integer, got {value!r}")
    return int(width), int(height)


def check_camera(viewmat, K) -> None:
    """Shapes at trace time; finiteness too when the values are concrete (host entry)."""
    if jnp.shape(viewmat) != (4, 4) or jnp.shape(K) != (3, 3):
        raise InputError(
            f"camera: viewmat must be [4, 4] and K [3, 3], got {jnp.shape(viewmat)} and "
            f"{jnp.shape(K)} (vmap over frames for a batch)"
        )
    for name, x in (("viewmat", viewmat), ("K", K)):
        if _is_concrete(x) and not np.isfinite(np.asarray(x)).all():
            raise InputError(f"camera: {name} has NaN or inf entries")


def check_mesh(vertices, faces, name: str = "mesh") -> None:
    """Raise :class:`InputError` for a malformed mesh.

    Shapes and dtypes are checked at trace time; NaN vertices and face indices out of range
    only when the arrays are concrete (a host-side call). Inside ``jit`` such faces are culled.
    """
    vshape, fshape = jnp.shape(vertices), jnp.shape(faces)
    if len(vshape) != 2 or vshape[1] != 3 or vshape[0] == 0:
        raise InputError(f"{name}: vertices must be [V, 3] with V > 0, got {vshape}")
    if len(fshape) != 2 or fshape[1] != 3 or fshape[0] == 0:
        raise InputError(f"{name}: faces must be [F, 3] with F > 0, got {fshape}")
    if not jnp.issubdtype(jnp.result_type(faces), jnp.integer):
        raise InputError(f"{name}: faces must be integers, got {jnp.result_type(faces)}")
    if _is_concrete(vertices) and not np.isfinite(np.asarray(vertices)).all():
        bad = int((~np.isfinite(np.asarray(vertices))).any(axis=-1).sum())
        raise InputError(f"{name}: {bad} vertices are NaN or inf; fix the mesh before rendering")
    if _is_concrete(faces):
        f = np.asarray(faces)
        if f.min() < 0 or f.max() >= vshape[0]:
            raise InputError(
                f"{name}: face indices span [{f.min()}, {f.max()}] but there are {vshape[0]} "
                "vertices (indices must be in [0, V))"
            )
