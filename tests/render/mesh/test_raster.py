"""The textured-mesh rasterizer against a slow per-pixel numpy oracle, plus texture lookup,
compositing, jit/vmap behaviour and bad input."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.camera import intrinsics, look_at
from ggtalker_jax.render.mesh import raster
from ggtalker_jax.render.mesh.raster import interpolate, rasterize_mesh
from ggtalker_jax.render.mesh.shading import render_textured_meshes, sample_texture
from ggtalker_jax.types import Mesh

W, H = 48, 32  # one shape bucket for most tests (compiles are the cost)


# --------------------------------------------------------------------------- oracle


def rasterize_reference(vertices, faces, viewmat, K, width, height, near, cull_backfaces=False):
    """Per-pixel float64 z-buffer: for every pixel centre, loop over the triangles, intersect
    the pixel's ray with the triangle's plane, keep hits inside the triangle (all barycentric
    edge functions >= 0) at depth >= near, nearest wins. Returns (face_id, bary, depth)."""
    viewmat = np.asarray(viewmat, np.float64)
    P = np.asarray(vertices, np.float64) @ viewmat[:3, :3].T + viewmat[:3, 3]
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([jj, ii, np.ones_like(jj)], -1).reshape(-1, 3)
    rays = pix @ np.linalg.inv(np.asarray(K, np.float64)).T  # [HW, 3], z = 1
    face_id = np.full(len(rays), -1)
    depth = np.full(len(rays), np.inf)
    bary = np.zeros((len(rays), 3))
    for f, (a, b, c) in enumerate(np.asarray(faces)):
        p0, p1, p2 = P[a], P[b], P[c]
        n = np.cross(p1 - p0, p2 - p0)
        if cull_backfaces and p0 @ n >= 0:
            continue
        den = rays @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (p0 @ n) / den
        x = t[:, None] * rays
        nn = n @ n
        # Barycentric = signed sub-triangle area / area, projected on the normal.
        w = np.stack(
            [np.cross(q1 - x, q2 - x) @ n / nn for q1, q2 in ((p1, p2), (p2, p0), (p0, p1))],
            -1,
        )
        hit = (w >= 0).all(-1) & (t >= near) & np.isfinite(t) & (t < depth)
        face_id[hit], depth[hit], bary[hit] = f, t[hit], w[hit]
    return (
        face_id.reshape(height, width),
        bary.reshape(height, width, 3),
        depth.reshape(height, width),
    )


# --------------------------------------------------------------------------- scenes


def random_camera(rng, distance=0.0):
    """A random rigid world→camera transform (the scene is built in camera space)."""
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    q *= np.sign(np.linalg.det(q))
    view = np.eye(4)
    view[:3, :3], view[:3, 3] = q, rng.normal(size=3) + distance
    return view.astype(np.float32)


def to_world(P_cam, view):
    """Camera-space points → world points for ``view``."""
    return ((P_cam - view[:3, 3]) @ view[:3, :3]).astype(np.float32)


def unproject(uv, z, K):
    return np.concatenate([(uv - K[:2, 2]) / np.diag(K)[:2] * z[..., None], z[..., None]], -1)


def random_soup(rng, K, near):
    """Triangles in camera space: small, tiny (sub-pixel), big (most of the image), crossing
    the near plane (some vertices behind the camera), overlapping at different depths."""
    tris = []
    for _ in range(16):  # small, 2-12 px
        c = rng.uniform([-4, -4], [W + 4, H + 4])
        z = rng.uniform(1.0, 3.5)
        uv = c + rng.uniform(-1, 1, (3, 2)) * rng.uniform(2, 12)
        tris.append(unproject(uv, z + rng.uniform(-0.3, 0.3, 3), K))
    for _ in range(10):  # tiny, under a pixel
        c = rng.uniform([0, 0], [W, H])
        tris.append(
            unproject(c + rng.uniform(-0.4, 0.4, (3, 2)), rng.uniform(1, 4, 1) * [1, 1, 1], K)
        )
    for _ in range(4):  # big, slanted, overlapping each other, mostly behind the rest
        uv = rng.uniform([-0.5 * W, -0.5 * H], [1.5 * W, 1.5 * H], (3, 2))
        tris.append(unproject(uv, rng.uniform(3.0, 8.0, 3), K))
    for _ in range(6):  # crossing the near plane, in front of the rest, front facing
        z = np.array([rng.uniform(0.6, 1.0), rng.uniform(-0.5, near - 0.05), rng.uniform(0.6, 1.5)])
        uv = rng.uniform([5, 5], [W - 5, H - 5]) + rng.uniform(-15, 15, (3, 2)) * [[0], [1], [1]]
        P = unproject(uv, np.abs(z), K)
        P[1] *= np.sign(z[1])  # behind the camera: the point mirrored through the centre
        if P[0] @ np.cross(P[1] - P[0], P[2] - P[0]) > 0:
            P = P[[0, 2, 1]]
        tris.append(P)
    P = np.concatenate(tris).astype(np.float64)
    faces = np.arange(len(P)).reshape(-1, 3)
    flip = rng.random(len(faces)) < 0.5  # both windings (but the near-plane ones face us)
    flip[-6:] = False
    faces[flip] = faces[flip][:, ::-1]
    return P, faces.astype(np.int32)


def compare(frag, ref, max_mismatch=0.005):
    face_ref, bary_ref, depth_ref = ref
    face = np.asarray(frag.face_id)
    mismatch = face != face_ref
    assert mismatch.mean() <= max_mismatch, (mismatch.sum(), np.argwhere(mismatch)[:10])
    same = ~mismatch & (face >= 0)
    np.testing.assert_allclose(np.asarray(frag.bary)[same], bary_ref[same], atol=2e-4)
    # float32 camera transform: a vertex moves ~1e-7 m, which grazing slivers and triangles
    # reaching behind the camera lever up to ~1e-4 relative depth; typical pixels are ~1e-6.
    rel = np.abs(np.asarray(frag.depth)[same] / depth_ref[same] - 1)
    assert rel.max() < 3e-4 and np.median(rel) < 3e-6, (rel.max(), np.median(rel))
    assert np.isinf(np.asarray(frag.depth)[face < 0]).all()


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("cull_backfaces", [False, True])
def test_rasterize_matches_per_pixel_reference(rng, cull_backfaces):
    K = intrinsics(40.0, W, H)
    near = 0.5
    P, faces = random_soup(rng, K, near)
    view = random_camera(rng)
    verts = to_world(P, view)
    frag = rasterize_mesh(verts, faces, view, K, W, H, near, cull_backfaces=cull_backfaces)
    ref = rasterize_reference(verts, faces, view, K, W, H, near, cull_backfaces)
    # The scene exercises what it claims to: near-plane triangles drawn, many faces visible.
    assert len(np.unique(ref[0])) >= (4 if cull_backfaces else 12)
    assert np.isin(np.arange(30, 36), ref[0]).any()
    compare(frag, ref)


def test_small_chunks_loop_many_times_and_drop_nothing(rng):
    """Work beyond one chunk is never dropped: 8 windows per iteration gives the same image."""
    K = intrinsics(40.0, W, H)
    P, faces = random_soup(rng, K, 0.5)
    view = random_camera(rng)
    verts = to_world(P, view)
    full = rasterize_mesh(verts, faces, view, K, W, H, 0.5)
    tiny = rasterize_mesh(verts, faces, view, K, W, H, 0.5, window=8, chunk=8)
    np.testing.assert_array_equal(np.asarray(tiny.face_id), np.asarray(full.face_id))
    np.testing.assert_allclose(np.asarray(tiny.bary), np.asarray(full.bary), atol=1e-6)


def test_fixed_work_matches_the_loop_and_counts_what_it_leaves(rng):
    """max_windows: a static number of chunks; enough of them gives the loop's image, too few
    leave windows untested and count them exactly."""
    K = intrinsics(40.0, W, H)
    P, faces = random_soup(rng, K, 0.5)
    view = random_camera(rng)
    verts = to_world(P, view)
    full = rasterize_mesh(verts, faces, view, K, W, H, 0.5, window=8, chunk=8)
    P_cam = raster.to_camera(jnp.asarray(verts), jnp.asarray(view))
    setup = raster._setup(P_cam, jnp.asarray(faces), jnp.asarray(K), W, H, 0.5, False, 8)
    total = int(np.asarray(setup[3]).sum())  # windows the scene needs
    assert total > 16 and int(full.dropped) == 0
    enough = rasterize_mesh(verts, faces, view, K, W, H, 0.5, window=8, chunk=8, max_windows=total)
    np.testing.assert_array_equal(np.asarray(enough.face_id), np.asarray(full.face_id))
    np.testing.assert_array_equal(np.asarray(enough.bary), np.asarray(full.bary))
    assert int(enough.dropped) == 0
    fitted = rasterize_mesh(verts, faces, view, K, W, H, 0.5, window=8, max_windows=total)
    np.testing.assert_array_equal(np.asarray(fitted.face_id), np.asarray(full.face_id))
    assert int(fitted.dropped) == 0
    few = rasterize_mesh(verts, faces, view, K, W, H, 0.5, window=8, chunk=8, max_windows=13)
    assert int(few.dropped) == total - 16  # two chunks of 8 ran
    assert not np.asarray(few.mask & ~full.mask).any()  # it only ever covers less
    assert raster.window_capacity(len(faces), W, H, 8) == 2 * (len(faces) + 6 * 4)
    with pytest.raises(InputError, match="max_windows is 0"):
        rasterize_mesh(verts, faces, view, K, W, H, 0.5, max_windows=0)


def grid_mesh(rng, n=12):
    """A jittered, tilted n×n grid of quads (shared edges) covering more than the image."""
    s, t = np.meshgrid(np.linspace(-1, 1, n + 1), np.linspace(-1, 1, n + 1))
    s[1:-1, 1:-1] += rng.uniform(-0.3, 0.3, (n - 1, n - 1)) / n
    t[1:-1, 1:-1] += rng.uniform(-0.3, 0.3, (n - 1, n - 1)) / n
    verts = np.stack([s, t, 0.2 * rng.normal() * s], -1).reshape(-1, 3)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return verts.astype(np.float32), faces.astype(np.int32)


def test_shared_edges_leave_no_cracks(rng):
    """Every pixel inside a tessellated plane is covered (watertight edge functions)."""
    verts, faces = grid_mesh(rng, n=24)
    K = intrinsics(60.0, W, H)
    for _ in range(4):
        eye = np.array([*rng.uniform(-0.3, 0.3, 2), -1.2])
        view = look_at(eye, [*rng.uniform(-0.1, 0.1, 2), 0], [0, -1, 0])
        frag = rasterize_mesh(verts, faces, view, K, W, H)
        assert (np.asarray(frag.face_id) >= 0).all()


def test_depth_key_resolves_half_a_millimetre_with_many_faces(rng):
    """Lips in front of the mouth cavity: a surface 0.5 mm behind another (listed first, so
    it would win ties) never shows through, with 40k faces (16 depth bits) and a 3 m deep
    scene."""
    verts, faces = grid_mesh(rng, n=8)
    verts[:, 2] = 0.0
    K = intrinsics(60.0, W, H)
    view = look_at([0, 0, -1.0], [0, 0, 0], [0, -1, 0])
    behind = verts + np.float32([0, 0, 5e-4])
    far = np.float32([[-5, -5, 3], [5, -5, 3], [0, 5, 3]])
    all_verts = np.concatenate([behind, verts, far])
    n = len(verts)
    padding = np.zeros((40000 - 2 * len(faces) - 1, 3), np.int32)  # degenerate: culled
    all_faces = np.concatenate([faces, faces + n, [[2 * n, 2 * n + 1, 2 * n + 2]], padding])
    frag = rasterize_mesh(all_verts, all_faces.astype(np.int32), view, K, W, H)
    face = np.asarray(frag.face_id)
    assert (face >= 0).all()
    front = (face >= len(faces)) & (face < 2 * len(faces))
    assert front.mean() > 0.5 and not ((face >= 0) & (face < len(faces))).any()


# --------------------------------------------------------------------------- textures


def bilinear_reference(tex, uv, flip_v):
    h, w, _ = tex.shape
    out = np.zeros((*uv.shape[:-1], tex.shape[-1]))
    for idx in np.ndindex(uv.shape[:-1]):
        u, v = uv[idx]
        v = 1 - v if flip_v else v
        x = min(max(u * w - 0.5, 0), w - 1)
        y = min(max(v * h - 0.5, 0), h - 1)
        x0, y0 = min(int(np.floor(x)), w - 2), min(int(np.floor(y)), h - 2)
        fx, fy = x - x0, y - y0
        out[idx] = (
            tex[y0, x0] * (1 - fx) * (1 - fy)
            + tex[y0, x0 + 1] * fx * (1 - fy)
            + tex[y0 + 1, x0] * (1 - fx) * fy
            + tex[y0 + 1, x0 + 1] * fx * fy
        )
    return out


@pytest.mark.parametrize("flip_v", [False, True])
def test_sample_texture_is_bilinear(rng, flip_v):
    tex = rng.random((7, 9, 3)).astype(np.float32)
    uv = rng.uniform(-0.1, 1.1, (5, 6, 2)).astype(np.float32)
    got = sample_texture(tex, uv, flip_v)
    np.testing.assert_allclose(got, bilinear_reference(tex, uv, flip_v), atol=1e-5)
    # Texel centres return texels exactly; v = 0 is the top row (bottom with flip_v).
    centre = np.array([[(2 + 0.5) / 9, (0 + 0.5) / 7]], np.float32)
    row = 6 if flip_v else 0
    np.testing.assert_allclose(sample_texture(tex, centre, flip_v)[0], tex[row, 2], atol=1e-6)


def test_checkerboard_quad_is_perspective_correct(rng):
    """UVs on a tilted quad equal the analytic ray–plane UV at every pixel centre; the
    screen-space (affine) interpolation a non-perspective rasterizer would do does not."""
    corner = np.array([-1.0, -0.8, 0.0])
    a, b = np.array([2.0, 0.0, 0.0]), np.array([0.0, 1.6, 0.0])  # quad = corner + s a + t b
    verts = np.stack([corner, corner + a, corner + a + b, corner + b]).astype(np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    vt = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    view = look_at([rng.uniform(1.0, 1.4), rng.uniform(-0.5, 0.5), -1.3], [0, 0, 0], [0, -1, 0])
    K = intrinsics(45.0, W, H)
    frag = rasterize_mesh(verts, faces, view, K, W, H)
    uv = np.asarray(interpolate(frag, vt[faces]))

    # Analytic: intersect each pixel ray with the plane, solve for (s, t).
    ref_face, _, ref_depth = rasterize_reference(verts, faces, view, K, W, H, 0.01)
    covered = ref_face >= 0
    assert covered.mean() > 0.3
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays = np.stack([jj, ii, np.ones_like(jj)], -1) @ np.linalg.inv(K).T
    cam = rays * np.where(covered, ref_depth, 0.0)[..., None]
    world = (cam - view[:3, 3]) @ view[:3, :3]
    st = np.linalg.lstsq(np.stack([a, b], 1), (world - corner)[covered].T, rcond=None)[0].T
    np.testing.assert_array_equal(np.asarray(frag.face_id) >= 0, covered)
    np.testing.assert_allclose(uv[covered], st, atol=2e-4)

    # The checkerboard colours follow (away from the squares' borders).
    n = 4
    checker = ((np.arange(64)[:, None] // 16 + np.arange(64)[None] // 16) % 2).astype(np.float32)
    got = np.asarray(sample_texture(np.repeat(checker[..., None], 3, -1), uv))[..., 0]
    cell = st * n
    interior = (np.abs(cell - np.round(cell)) > 0.05).all(-1)
    want = (np.floor(cell[:, 0]) + np.floor(cell[:, 1])) % 2
    np.testing.assert_allclose(got[covered][interior], want[interior], atol=1e-3)

    # Affine (screen-space) barycentrics give visibly wrong UVs: the test can fail.
    P = verts.astype(np.float64) @ view[:3, :3].T + view[:3, 3]
    pix = P @ K.T
    pix = pix[:, :2] / pix[:, 2:]
    face = np.asarray(frag.face_id)[covered]
    q = np.stack([jj, ii], -1)[covered]
    tri = pix[faces[face]]  # [n, 3, 2]
    m = np.stack([tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]], -1)
    l12 = np.linalg.solve(m, (q - tri[:, 0])[..., None])[..., 0]
    affine = np.concatenate([1 - l12.sum(-1, keepdims=True), l12], -1)
    uv_affine = np.einsum("nk,nkc->nc", affine, vt[faces[face]])
    assert np.abs(uv_affine - st).max() > 0.02


# --------------------------------------------------------------------------- compositing


def solid_quad(centre, size, z, colour):
    c = np.asarray(centre, np.float32)
    verts = np.array(
        [
            [c[0] - size, c[1] - size, z],
            [c[0] + size, c[1] - size, z],
            [c[0] + size, c[1] + size, z],
            [c[0] - size, c[1] + size, z],
        ],
        np.float32,
    )
    faces = np.array([[0, 2, 1], [0, 3, 2]], np.int32)  # facing -z (towards the camera)
    vt = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    tex = np.broadcast_to(np.asarray(colour, np.float32), (2, 2, 3)).copy()
    return Mesh(verts, faces, vt, faces.copy(), tex)


@pytest.mark.parametrize("near_first", [True, False])
def test_compositing_nearer_mesh_wins_and_masks_partition(rng, near_first):
    K = intrinsics(50.0, W, H)
    view = look_at([0, 0, -2.0], [0, 0, 0], [0, -1, 0])
    offset = rng.uniform(0.1, 0.3, 2)
    near_q = solid_quad(-offset, 0.4, -0.3, (0.9, 0.1, 0.1))
    far_q = solid_quad(offset, 0.5, 0.3, (0.1, 0.1, 0.9))
    meshes = [near_q, far_q] if near_first else [far_q, near_q]
    i_near = 0 if near_first else 1
    bg = rng.random((H, W, 3)).astype(np.float32)
    rgb, masks = render_textured_meshes(
        meshes, view, K, W, H, background=bg, ambient=1.0, diffuse=0.0
    )
    rgb, masks = np.asarray(rgb), np.asarray(masks)
    assert masks.shape == (2, H, W) and masks.dtype == bool
    assert not (masks[0] & masks[1]).any()
    union = masks.any(0)
    np.testing.assert_allclose(rgb[~union], bg[~union])
    # Where both quads project, the nearer one is shown and labelled.
    ref_near = rasterize_reference(near_q.vertices, near_q.faces, view, K, W, H, 0.01)[0] >= 0
    ref_far = rasterize_reference(far_q.vertices, far_q.faces, view, K, W, H, 0.01)[0] >= 0
    np.testing.assert_array_equal(masks[i_near], ref_near)
    np.testing.assert_array_equal(masks[1 - i_near], ref_far & ~ref_near)
    assert (ref_near & ref_far).sum() > 10 and (ref_far & ~ref_near).sum() > 10
    np.testing.assert_allclose(
        rgb[masks[i_near]], np.broadcast_to([0.9, 0.1, 0.1], (masks[i_near].sum(), 3)), atol=1e-5
    )
    np.testing.assert_allclose(
        rgb[masks[1 - i_near]],
        np.broadcast_to([0.1, 0.1, 0.9], (masks[1 - i_near].sum(), 3)),
        atol=1e-5,
    )


def test_shading_is_lambert_plus_ambient():
    K = intrinsics(50.0, W, H)
    view = look_at([0, 0, -2.0], [0, 0, 0], [0, -1, 0])
    quad = solid_quad((0, 0), 0.5, 0.0, (0.5, 0.5, 0.5))  # normal towards the camera: -z
    light = np.array([0.0, -0.6, -0.8])
    rgb, masks = render_textured_meshes(
        [quad], view, K, W, H, light_dir=light, ambient=0.2, diffuse=0.6
    )
    want = 0.5 * (0.2 + 0.6 * 0.8)
    np.testing.assert_allclose(np.asarray(rgb)[np.asarray(masks[0])], want, atol=1e-5)


# --------------------------------------------------------------------------- jit and vmap


def test_no_retrace_and_vmap_equals_loop(rng, count_traces):
    verts, faces = grid_mesh(rng, n=6)
    K = intrinsics(60.0, W, H)
    views = np.stack(
        [look_at([*rng.uniform(-0.5, 0.5, 2), -1.5], [0, 0, 0], [0, -1, 0]) for _ in range(3)]
    )

    @jax.jit
    @chex.assert_max_traces(n=1)
    def render(v, view):
        return rasterize_mesh(v, faces, view, K, W, H)

    # New values, same shapes: one trace (a second would raise).
    loop = [render(verts + 0.01 * i, view) for i, view in enumerate(views)]
    # The eager host entry reuses its compiled core too.
    rasterize_mesh(verts, faces, views[0], K, W, H)
    with count_traces() as traces:
        rasterize_mesh(verts * 1.1, faces, views[1], K, W, H)
    assert traces() == 0

    shifts = 0.01 * np.arange(3, dtype=np.float32)[:, None, None]
    batched = jax.jit(jax.vmap(lambda v, view: rasterize_mesh(v, faces, view, K, W, H)))
    out = batched(verts[None] + shifts, jnp.asarray(views))
    assert out.face_id.shape == (3, H, W) and out.bary.shape == (3, H, W, 3)
    for i, frag in enumerate(loop):
        assert (np.asarray(frag.face_id) >= 0).mean() > 0.2
        np.testing.assert_array_equal(np.asarray(out.face_id[i]), np.asarray(frag.face_id))
        np.testing.assert_allclose(np.asarray(out.bary[i]), np.asarray(frag.bary), atol=1e-5)
        np.testing.assert_allclose(np.asarray(out.depth[i]), np.asarray(frag.depth), rtol=1e-5)


def test_render_vmap_over_frames_equals_loop(rng):
    """Per-frame head vertices and cameras through one vmapped render_textured_meshes."""
    K = intrinsics(50.0, W, H)
    quad = solid_quad((0, 0), 0.5, 0.0, (0.2, 0.6, 0.4))
    tex = rng.random((8, 8, 3)).astype(np.float32)
    # A backdrop wider than the view behind the moving quad: both always cover pixels.
    back = dataclasses.replace(solid_quad((0.0, 0.0), 1.6, 0.6, (0.0, 0.0, 0.0)), texture=tex)
    views = np.stack(
        [look_at([*rng.uniform(-0.6, 0.6, 2), -2.0], [0, 0, 0], [0, -1, 0]) for _ in range(3)]
    )
    shifts = rng.uniform(-0.2, 0.2, (3, 1, 3)).astype(np.float32)
    render = lambda v, view: render_textured_meshes(
        [dataclasses.replace(quad, vertices=v), back], view, K, W, H
    )
    rgb_b, masks_b = jax.jit(jax.vmap(render))(quad.vertices[None] + shifts, jnp.asarray(views))
    assert rgb_b.shape == (3, H, W, 3) and masks_b.shape == (3, 2, H, W)
    for i in range(3):
        rgb, masks = render(quad.vertices + shifts[i], views[i])
        np.testing.assert_array_equal(np.asarray(masks_b[i]), np.asarray(masks))
        np.testing.assert_allclose(np.asarray(rgb_b[i]), np.asarray(rgb), atol=1e-5)
        assert np.asarray(masks).sum(axis=(1, 2)).min() > 20


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_input_error(rng):
    verts, faces = grid_mesh(rng, n=2)
    K = intrinsics(60.0, W, H)
    view = look_at([0, 0, -1.5], [0, 0, 0], [0, -1, 0])
    bad_faces = faces.copy()
    bad_faces[3, 1] = len(verts)
    with pytest.raises(InputError, match="face indices"):
        rasterize_mesh(verts, bad_faces, view, K, W, H)
    nan_verts = verts.copy()
    nan_verts[2, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        rasterize_mesh(nan_verts, faces, view, K, W, H)
    for w, h in ((0, H), (W, -3), (W, 2.5)):
        with pytest.raises(InputError, match="positive integer"):
            rasterize_mesh(verts, faces, view, K, w, h)
    with pytest.raises(InputError, match="integers"):
        rasterize_mesh(verts, faces.astype(np.float32), view, K, W, H)
    with pytest.raises(InputError, match=r"\[V, 3\]"):
        rasterize_mesh(verts[:, :2], faces, view, K, W, H)
    with pytest.raises(InputError, match="viewmat"):
        rasterize_mesh(verts, faces, view[:3], K, W, H)
    with pytest.raises(InputError, match="near plane"):
        rasterize_mesh(verts, faces, view, K, W, H, near=0.0)
    # Inside jit values are not checked: a face with a bad index is culled, the rest drawn.
    frag = jax.jit(lambda f: rasterize_mesh(verts, f, view, K, W, H))(bad_faces)
    drawn = np.unique(np.asarray(frag.face_id))
    assert 3 not in drawn and len(drawn) > 4
    quad = solid_quad((0, 0), 0.5, 0.0, (0.5, 0.5, 0.5))
    with pytest.raises(InputError, match="background"):
        render_textured_meshes([quad], view, K, W, H, background=np.zeros((H, W + 1, 3)))
    with pytest.raises(InputError, match="mesh 0"):
        render_textured_meshes(
            [dataclasses.replace(quad, faces=bad_faces[:2] * 0 + 7)], view, K, W, H
        )
