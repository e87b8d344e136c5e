"""EWA projection of 3D Gaussians with gsplat 1.5's numerics (pure ``jnp``, differentiable).

Per Gaussian and camera:

1. ``mean_c = R mean + t``; cull unless ``near < z < far``.
2. ``Sigma_3d = R_q diag(s^2) R_q^T`` in world, ``Sigma_c = R Sigma_3d R^T``.
3. Perspective Jacobian at the mean, its x/y clamped to 1.3x the field of view (gsplat's
   ``lim_x``, ``lim_y``), ``Sigma_2d = J Sigma_c J^T + eps2d I`` (low-pass dilation).
4. ``conic = Sigma_2d^-1``; cull if ``det <= 0``.
5. Opacity-aware extent ``min(3.33, sqrt(2 ln(255 o)))``; per-axis radius
   ``ceil(extent sqrt(Sigma_2d[ii]))``; cull if ``o < 1/255``, both radii ``<= 0`` or the box
   misses the image.

Culled Gaussians get radius 0; their other outputs are finite but meaningless.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ALPHA_THRESHOLD = 1.0 / 255.0


def _matmul(a, b):
    """``a @ b`` for the tiny per-Gaussian matrices as broadcast products and sums.

    Full float32: on GPUs a float32 matmul defaults to TF32, whose ~1e-3 relative error moves
    projected means by a pixel at 512 px. And elementwise: a ``dot_general`` over millions of
    3x3 blocks becomes a batched GEMM call that XLA cannot fuse with the rest.
    """
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


MAX_EXTENT = 3.33


def quat_to_rotmat(quats):
    """Unit-normalised ``wxyz`` quaternions ``[..., 4]`` -> rotation matrices ``[..., 3, 3]``.

    A zero quaternion maps to a non-finite matrix; callers cull those Gaussians.
    """
    q = quats / jnp.linalg.norm(quats, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return jnp.stack(rows, axis=-1).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(quats, scales):
    """World covariances ``[..., N, 3, 3]`` from ``quats [..., N, 4]`` (wxyz) and linear
    ``scales [..., N, 3]``."""
    r = quat_to_rotmat(quats)
    m = r * scales[..., None, :]  # R diag(s)
    return _matmul(m, jnp.swapaxes(m, -1, -2))


def project_gaussians(
    means,
    quats,
    scales,
    opacities,
    viewmat,
    K,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
):
    """Project ``N`` Gaussians into one camera.

    Args:
      means: ``[N, 3]`` world.  quats: ``[N, 4]`` wxyz.  scales: ``[N, 3]`` linear.
      opacities: ``[N]`` in 0..1.  viewmat: ``[4, 4]`` world->camera.  K: ``[3, 3]``.
      width, height: image size in pixels.

    Returns:
      dict with ``means2d [N, 2]`` (pixels), ``conics [N, 3]`` (a, b, c of the inverse 2D
      covariance ``[[a, b], [b, c]]``), ``depths [N]`` (camera z), ``radii [N, 2]`` int32
      (0 = culled), ``opacities [N]`` (0 where culled or invalid) and ``invalid [N]`` (bool:
      culled because an input was NaN/Inf or its quaternion had zero norm).
    """
    finite = (
        jnp.all(jnp.isfinite(means), -1)
        & jnp.all(jnp.isfinite(scales), -1)
        & jnp.all(jnp.isfinite(quats), -1)
        & jnp.isfinite(opacities)
        & (jnp.sum(quats * quats, -1) > 0)
        & jnp.all(scales >= 0, -1)
    )
    # Replace bad rows by a harmless Gaussian so neither values nor gradients turn NaN.
    means = jnp.where(finite[:, None], means, 0.0)
    identity = jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0, 0.0], quats.dtype), quats.shape)
    quats = jnp.where(finite[:, None], quats, identity)
    scales = jnp.where(finite[:, None], scales, 1.0)
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    mean_c = _matmul(means, rot.T) + trans[None, :]
    x, y, z = mean_c[:, 0], mean_c[:, 1], mean_c[:, 2]
    cov_c = _matmul(_matmul(rot[None], covariance_3d(quats, scales)), rot.T[None])

    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    safe_z = jnp.where(z > 0, z, 1.0)
    rz = 1.0 / safe_z
    tx = safe_z * jnp.clip(x * rz, -lim_x_neg, lim_x_pos)
    ty = safe_z * jnp.clip(y * rz, -lim_y_neg, lim_y_pos)
    zero = jnp.zeros_like(rz)
    jac = jnp.stack(
        [
            jnp.stack([fx * rz, zero, -fx * tx * rz * rz], -1),
            jnp.stack([zero, fy * rz, -fy * ty * rz * rz], -1),
        ],
        -2,
    )  # [N, 2, 3]
    cov2d = _matmul(_matmul(jac, cov_c), jnp.swapaxes(jac, -1, -2))
    a = cov2d[:, 0, 0] + eps2d
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    safe_det = jnp.where(det > 0, det, 1.0)
    conics = jnp.stack([c / safe_det, -b / safe_det, a / safe_det], -1)
    means2d = jnp.stack([fx * x * rz + cx, fy * y * rz + cy], -1)

    opac = jnp.where(finite, opacities, 0.0)
    # Extent where alpha falls to 1/255 (never beyond 3.33 sigma).
    extent = jnp.minimum(
        MAX_EXTENT, jnp.sqrt(2.0 * jnp.log(jnp.maximum(opac / ALPHA_THRESHOLD, 1.0)))
    )
    rad_x = jnp.ceil(extent * jnp.sqrt(jnp.maximum(a, 0.0)))
    rad_y = jnp.ceil(extent * jnp.sqrt(jnp.maximum(c, 0.0)))
    visible = (
        finite
        & (z > near_plane)
        & (z < far_plane)
        & (det > 0)
        & (opac >= ALPHA_THRESHOLD)
        & ((rad_x > 0) | (rad_y > 0))
        & (means2d[:, 0] + rad_x > 0)
        & (means2d[:, 0] - rad_x < width)
        & (means2d[:, 1] + rad_y > 0)
        & (means2d[:, 1] - rad_y < height)
    )
    radii = jnp.where(visible[:, None], jnp.stack([rad_x, rad_y], -1), 0).astype(jnp.int32)
    # Keep culled rows finite so no NaN leaks into sums or gradients.
    keep = visible[:, None]
    return {
        "means2d": jnp.where(keep, means2d, 0.0),
        "conics": jnp.where(keep, conics, 0.0),
        "depths": jnp.where(visible, z, 0.0),
        "radii": radii,
        "opacities": jnp.where(visible, opac, 0.0),
        "invalid": ~finite,
    }


def project_batch(
    means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d
):
    """:func:`project_gaussians` over images: Gaussians ``[I, N, ...]``, cameras ``[I, ...]``."""
    fn = lambda m, q, s, o, v, k: project_gaussians(
        m, q, s, o, v, k, width, height, near_plane, far_plane, eps2d
    )
    return jax.vmap(fn)(means, quats, scales, opacities, viewmats, Ks)
