"""The Gaussian map's texels: the layout agrees with the UV binding, gather and scatter are
inverse on covered texels, surface points are the barycentric points of the posed mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.geometry.uv import (
    MAP_CHANNELS,
    MAP_SLICES,
    bind_texels,
    interpolate_bound,
    surface_points,
    texel_layout,
)


def test_map_slices_tile_the_channels():
    covered = np.concatenate([np.arange(MAP_CHANNELS)[s] for s in MAP_SLICES.values()])
    np.testing.assert_array_equal(covered, np.arange(MAP_CHANNELS))
    sizes = {k: s.stop - s.start for k, s in MAP_SLICES.items()}
    assert sizes == {"offset": 3, "log_scale": 3, "rotation": 4, "color": 3, "opacity": 1}


def test_layout_lists_the_bound_texels_in_row_major_order(rng, sheet):
    _, ft, vt = sheet()
    size = 24
    layout = texel_layout(vt, ft, size)
    binding = bind_texels(vt, ft, size)
    np.testing.assert_array_equal(layout.mask, binding.covered)
    assert layout.n == int(binding.covered.sum()) and layout.size == (size, size)
    assert np.all(np.diff(layout.flat) > 0)  # row-major, each texel once
    np.testing.assert_array_equal(layout.face, binding.face[layout.rows, layout.cols])
    np.testing.assert_allclose(layout.bary, binding.bary[layout.rows, layout.cols], atol=1e-7)
    assert layout.face.dtype == np.int32 and layout.bary.dtype == np.float32
    # UV area in texels of each texel's face: the faces tile 0.8² of the unit square.
    area = np.zeros(len(ft))
    area[layout.face] = layout.uv_area
    np.testing.assert_allclose(area.sum(), (0.8 * size) ** 2, rtol=1e-5)
    # Hashed by identity: a static jit argument, never equal to a copy of itself.
    again = texel_layout(vt, ft, size)
    assert layout != again and hash(layout) != hash(again) and layout == layout


def test_gather_and_scatter_are_inverse_on_covered_texels(rng, sheet):
    _, ft, vt = sheet()
    layout = texel_layout(vt, ft, 16)
    uv_map = jnp.asarray(rng.normal(size=(2, 16, 16, 5)), jnp.float32)
    texels = layout.gather(uv_map)
    assert texels.shape == (2, layout.n, 5)
    back = layout.scatter(texels, fill=-3.0)
    mask = layout.mask[..., None]
    np.testing.assert_array_equal(back, np.where(mask, uv_map, -3.0))
    np.testing.assert_array_equal(layout.gather(back), texels)
    # scatter is gather's adjoint (what gradients through the map rely on).
    cotangent = jnp.asarray(rng.normal(size=back.shape), jnp.float32)
    _, vjp = jax.vjp(layout.scatter, texels)
    np.testing.assert_allclose(vjp(cotangent)[0], layout.gather(cotangent), rtol=1e-6)


def test_surface_points_are_barycentric_points_of_the_posed_mesh(rng, sheet):
    verts, faces, vt = sheet()
    ft = faces
    layout = texel_layout(vt, ft, 16)
    frames = verts + rng.normal(size=(3, *verts.shape)) * 0.01  # [3, V, 3]
    points = surface_points(jnp.asarray(frames, jnp.float32), faces, layout)
    assert points.shape == (3, layout.n, 3)
    want = np.einsum("nk,tnkd->tnd", layout.bary.astype(np.float64), frames[:, faces[layout.face]])
    np.testing.assert_allclose(points, want, atol=1e-6)
    binding = bind_texels(vt, ft, 16)
    grid = interpolate_bound(frames[0], faces, binding)
    np.testing.assert_allclose(points[0], grid[layout.rows, layout.cols], atol=1e-6)


@pytest.mark.parametrize("size", [4, 9])
def test_tiny_grids_keep_consistent_shapes(rng, sheet, size):
    _, ft, vt = sheet(n=2)
    layout = texel_layout(vt, ft, size)
    assert layout.rows.shape == layout.cols.shape == layout.face.shape == (layout.n,)
    assert layout.bary.shape == (layout.n, 3) and layout.uv_area.shape == (layout.n,)
    assert layout.scatter(jnp.ones((layout.n, 2))).shape == (size, size, 2)
