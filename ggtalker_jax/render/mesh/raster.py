"""Z-buffer triangle rasterizer in pure JAX: the ground-truth renderer of the synthetic world.

Conventions (the same as the rest of the package and gsplat):

* ``viewmat [4, 4]`` maps world to camera, OpenCV axes: +x right, +y down, +z forward.
* ``K [3, 3]`` is in pixels; pixel ``(i, j)`` (row ``i``, column ``j``) has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``.
* Triangles are counter-clockwise seen from outside (normal ``cross(v1 - v0, v2 - v0)``). Back
  faces are drawn unless ``cull_backfaces=True`` (the mouth cavity is seen from inside).

Algorithm (what the step comments below cite):

1. **Setup.** Vertices go to camera space. Each triangle gets three *homogeneous edge functions*
   ``E_i(u, v) = d(u, v) · N_i`` with ``d = K⁻¹ [u, v, 1]`` the pixel's ray (z = 1) and ``N_i``
   the cross product of the two camera-space vertices of the edge opposite vertex ``i``
   (Olano & Greer 1997, "Triangle scan conversion using 2D homogeneous coordinates"). A ray hits
   the triangle iff all ``E_i`` share the sign of ``c = P0 · n`` (``n = e1 × e2``); the hit depth
   is ``t = c / (d · n)`` (camera z, as ``d_z = 1``). This needs no clipping: a triangle that
   crosses the near plane is drawn exactly where its surface lies at ``z >= near`` (per-pixel
   near clipping), and the part behind the camera is never drawn. ``N_i`` is computed from the
   vertices in a canonical order (lower vertex index first) and then negated as needed, so two
   triangles sharing an edge evaluate bit-identical, opposite edge functions: no cracks and no
   gaps along shared edges (watertight).
2. **Windows.** Each triangle's pixel bounding box (of its part in front of the near plane:
   vertices plus near-plane crossings of its edges, projected) is cut into ``window × window``
   pixel windows anchored at the box's corner; a 2-pixel triangle costs one 4×4 window, a
   full-screen one costs (H/4)·(W/4). All (triangle, window) pairs form one implicit work list
   (a prefix sum of per-triangle window counts).
3. **Scatter.** A ``lax.while_loop`` walks that list ``chunk`` windows at a time (triangle of a
   work item by binary search in the prefix sum), tests the ``window²`` pixel centres of each
   window, and scatter-mins a packed ``uint32`` key into the z-buffer: quantised depth in the high
   bits, face id in the low bits. The loop's trip count is data dependent, so there is **no
   capacity**: every covered pixel of every triangle is tested, whatever the triangle sizes, and
   nothing is ever dropped; ``chunk`` only trades the padding of the last iteration against the
   number of iterations. (Under ``vmap`` the loop runs until the busiest frame is done.)
   On a GPU such a loop makes the host read its condition back at every iteration; where
   that wait matters (inside a training step, or a data source feeding one), ``max_windows``
   runs a fixed number of chunks instead and counts the windows left untested.
4. **Resolve.** The face id is the key's low bits; barycentrics and depth are recomputed per
   pixel from the winning face with a ray–triangle intersection (Möller–Trumbore), in float32,
   so the quantisation only decides *which* face wins.

Depth key precision: ``id_bits = F.bit_length()`` bits hold the face id and the other
``min(32 - id_bits, 24)`` hold depth, quantised linearly between the nearest and farthest on-screen
triangle of this frame. A 14k-face head plus torso leaves 18 bits: 2 µm steps over a 0.5 m deep
scene, far finer than the millimetre gaps between lips and mouth cavity or eyelid and eyeball.
Ties (equal quantised depth) go to the lower face id. At most ``2**20 - 1`` faces (12 depth bits).

Speed (``tools/bench_mesh_raster.py``, 2-core CPU, 13.7k-face head + torso, textured and
shaded): 7-10 ms a frame at 256² and about 20 ms at 512² under ``lax.map`` (the rasterizer
alone: 4 and 8-10 ms); ``vmap`` over frames is up to 1.5x slower on CPU (batched scatters, and
every frame waits for the busiest one), so the world generator should ``lax.map`` over frames
there. XLA:CPU runs tiny
reductions and ``[N, 3] @ [3, 3]`` dots far slower than the same arithmetic unrolled, hence the
spelled-out dot and cross products below.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.render.mesh.checks import check_camera, check_image_size, check_mesh

MAX_FACES = 2**20 - 1
_EMPTY = np.uint32(0xFFFFFFFF)  # z-buffer value of a pixel no triangle covers
_BBOX_EPS = 1e-2  # pixels; widens bounding boxes so rounding never loses a pixel centre


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["face_id", "bary", "depth", "dropped"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Fragments:
    """What the z-buffer saw at each pixel (leading batch dims under ``vmap``).

    Attributes:
      face_id: ``[..., H, W]`` int32 index of the nearest face, ``-1`` where empty.
      bary: ``[..., H, W, 3]`` float32 perspective-correct barycentrics of the pixel centre's
        ray hit in that face (weights of its vertices 0, 1, 2; sum 1; zeros where empty).
      depth: ``[..., H, W]`` float32 camera-space z of the hit, ``+inf`` where empty.
      dropped: ``[...]`` int32 work windows left untested because the loop's capacity
        (``max_windows`` of :func:`rasterize_mesh`) was reached; always 0 without one.
    """

    face_id: jax.Array
    bary: jax.Array
    depth: jax.Array
    dropped: jax.Array

    @property
    def mask(self) -> jax.Array:
        """``[..., H, W]`` bool: pixels covered by some face."""
        return self.face_id >= 0


# --------------------------------------------------------------------------- helpers


def pixel_rays(K: jax.Array, width: int, height: int) -> jax.Array:
    """Camera-space rays ``K⁻¹ [u, v, 1]`` through every pixel centre.

    Args:
      K: ``[3, 3]`` intrinsics in pixels.  width, height: image size (static).

    Returns:
      ``[H, W, 3]`` float32 directions with z = 1 (so a hit at ray parameter t has depth t).
    """
    kinv = jnp.linalg.inv(jnp.asarray(K, jnp.float32))
    u = jnp.arange(width, dtype=jnp.float32) + 0.5
    v = jnp.arange(height, dtype=jnp.float32) + 0.5
    uu, vv = jnp.meshgrid(u, v)  # [H, W]
    return (
        uu[..., None] * kinv[None, None, :, 0]
        + vv[..., None] * kinv[None, None, :, 1]
        + kinv[None, None, :, 2]
    )


def apply_matrix(points: jax.Array, matrix: jax.Array, offset: jax.Array | None = None):
    """``points @ matrix.T + offset`` for ``points [..., 3]``, ``matrix [3, 3]``, ``offset
    [3]``, written elementwise: XLA:CPU runs a [N, 3] x [3, 3] dot ~5x slower than this."""
    rows = []
    for i in range(3):
        row = sum(points[..., j] * matrix[i, j] for j in range(3))
        rows.append(row if offset is None else row + offset[i])
    return jnp.stack(rows, axis=-1)


def to_camera(vertices: jax.Array, viewmat: jax.Array) -> jax.Array:
    """``[..., 3]`` world points → ``[..., 3]`` camera-space points (``viewmat [4, 4]``)."""
    viewmat = jnp.asarray(viewmat, jnp.float32)
    return apply_matrix(vertices, viewmat[:3, :3], viewmat[:3, 3])


def _cross(a, b):
    """Cross product over the last axis, spelled out so every lane runs the same arithmetic."""
    return jnp.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def _dot(a, b):
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _affine_in_pixels(vec, kinv):
    """Coefficients ``(a, b, c)`` with ``vec · K⁻¹[u, v, 1] = a u + b v + c``: ``[..., 3]``."""
    cols = [kinv[:, j].reshape((1,) * (vec.ndim - 1) + (3,)) for j in range(3)]
    return jnp.stack([_dot(vec, col) for col in cols], axis=-1)


# --------------------------------------------------------------------------- step 1: setup


def _fold(fn, parts):
    """``fn``-reduce a short list of arrays. XLA:CPU reduces a tiny trailing axis ~20x slower
    than it fuses the same unrolled elementwise ops, so small reductions are spelled out."""
    return functools.reduce(fn, parts)


def _setup(P, faces, K, width, height, near, cull_backfaces, window):
    """Per-face tables for the scatter loop (steps 1-2).

    Returns:
      ``(coef [F, 13] float32, box [F, 6] int32, z_range, n_windows [F])``: ``coef`` holds the
      three edge functions and the depth denominator ``d · n`` as affine functions of the pixel
      centre ``(a, b, c)`` (12 floats) and ``c = P0 · n``; ``box`` holds the pixel box
      ``x0, y0, x1, y1``, the windows across it, and the face's first work item.
    """
    n_verts = P.shape[0]
    in_range = _fold(
        jnp.logical_and, [(faces[:, k] >= 0) & (faces[:, k] < n_verts) for k in range(3)]
    )
    f = jnp.clip(faces, 0, n_verts - 1)
    p0, p1, p2 = P[f[:, 0]], P[f[:, 1]], P[f[:, 2]]  # [F, 3] each
    normal = _cross(p1 - p0, p2 - p0)  # n, well conditioned (edge vectors)
    plane = _dot(p0, normal)  # c = P0 · n; c < 0 ⇔ front facing (camera at the origin)

    # Step 1: canonical edge normals N_i = P_a × P_b over the edge (a, b) opposite vertex i,
    # taken as P_lo × P_hi by vertex index and then negated, so shared edges agree bit-wise.
    def edge_normal(a, b):
        lo, hi = jnp.minimum(a, b), jnp.maximum(a, b)
        n_canon = _cross(P[lo], P[hi])
        return jnp.where((a < b)[:, None], n_canon, -n_canon)

    kinv = jnp.linalg.inv(K)
    # Inside ⇔ every E_i has the sign of c: fold sign(c) in so the test is min(E) >= 0.
    side = jnp.where(plane < 0, -1.0, 1.0).astype(jnp.float32)[:, None]
    coef = jnp.concatenate(
        [
            _affine_in_pixels(edge_normal(f[:, 1], f[:, 2]), kinv) * side,
            _affine_in_pixels(edge_normal(f[:, 2], f[:, 0]), kinv) * side,
            _affine_in_pixels(edge_normal(f[:, 0], f[:, 1]), kinv) * side,
            _affine_in_pixels(normal, kinv),  # d · n, the depth's denominator
            plane[:, None],
        ],
        axis=1,
    )  # [F, 13]

    finite = jnp.isfinite(p0) & jnp.isfinite(p1) & jnp.isfinite(p2)
    valid = in_range & finite[:, 0] & finite[:, 1] & finite[:, 2] & (plane != 0)
    if cull_backfaces:
        valid &= plane < 0

    # Step 2: pixel box of the part at z >= near: vertices in front plus the points where the
    # edges cross the near plane (triangle clipping, only to bound the box).
    corners = (p0, p1, p2)
    pts, use = [], []
    for k in range(3):
        pa, pb = corners[k], corners[(k + 1) % 3]
        za, zb = pa[:, 2], pb[:, 2]
        crosses = (za >= near) != (zb >= near)
        s = (near - za) / jnp.where(crosses, zb - za, 1.0)
        cut = pa + s[:, None] * (pb - pa)
        pts += [pa, cut.at[:, 2].set(near)]
        use += [za >= near, crosses]
    u_lo, v_lo, u_hi, v_hi, z_lo, z_hi = [], [], [], [], [], []
    for pt, ok in zip(pts, use, strict=True):
        uvw = apply_matrix(pt, K)
        w = jnp.where(ok, uvw[:, 2], 1.0)
        u, v = uvw[:, 0] / w, uvw[:, 1] / w
        u_lo.append(jnp.where(ok, u, 1e9))
        v_lo.append(jnp.where(ok, v, 1e9))
        u_hi.append(jnp.where(ok, u, -1e9))
        v_hi.append(jnp.where(ok, v, -1e9))
        z_lo.append(jnp.where(ok, pt[:, 2], jnp.inf))
        z_hi.append(jnp.where(ok, pt[:, 2], -jnp.inf))

    # Pixel centres c + 0.5 inside [lo, hi] ⇔ c in [ceil(lo - 0.5), floor(hi - 0.5)].
    def first_pixel(lo, size):
        return jnp.maximum(jnp.ceil(jnp.clip(lo - 0.5 - _BBOX_EPS, -1.0, size)), 0).astype(
            jnp.int32
        )

    def last_pixel(hi, size):
        return jnp.minimum(jnp.floor(jnp.clip(hi - 0.5 + _BBOX_EPS, -1.0, size)), size - 1).astype(
            jnp.int32
        )

    x0, y0 = (
        first_pixel(_fold(jnp.minimum, u_lo), width),
        first_pixel(_fold(jnp.minimum, v_lo), height),
    )
    x1, y1 = (
        last_pixel(_fold(jnp.maximum, u_hi), width),
        last_pixel(_fold(jnp.maximum, v_hi), height),
    )
    on_screen = valid & _fold(jnp.logical_or, use) & (x1 >= x0) & (y1 >= y0)
    across = jnp.where(on_screen, (x1 - x0) // window + 1, 1)
    n_windows = jnp.where(on_screen, across * ((y1 - y0) // window + 1), 0)
    window_start = jnp.cumsum(n_windows) - n_windows
    box = jnp.stack([x0, y0, x1, y1, across, window_start], axis=1)  # [F, 6]

    # Depth range of the on-screen geometry, for the key's linear depth quantisation.
    z_lo = jnp.min(jnp.where(on_screen, _fold(jnp.minimum, z_lo), jnp.inf))
    z_hi = jnp.max(jnp.where(on_screen, _fold(jnp.maximum, z_hi), -jnp.inf))
    z_lo = jnp.where(jnp.isfinite(z_lo), z_lo, near)
    z_hi = jnp.where(jnp.isfinite(z_hi), z_hi, near + 1.0)
    return coef, box, (z_lo, z_hi), n_windows


# --------------------------------------------------------------------------- step 3: scatter


def _scatter_depth_keys(
    coef, box, z_range, n_windows, width, height, near, window, chunk, iterations
):
    """Walk the (triangle, window) work list and scatter-min packed keys (step 3):
    ``(face_id [H, W], dropped)``. ``iterations``: ``None`` walks the whole list (a loop
    with a data-dependent trip count); a number runs exactly that many chunks, and
    ``dropped`` counts the windows beyond them."""
    n_faces = coef.shape[0]
    id_bits = max(1, n_faces.bit_length())
    # At most 24 depth bits: float32 represents every integer up to 2**24 exactly, so the
    # clipped, floored value never rounds up into the face-id bits' neighbour (overflow).
    depth_bits = min(32 - id_bits, 24)
    q_max = float(2**depth_bits - 1)
    z_lo, z_hi = z_range
    q_scale = q_max / jnp.maximum(z_hi - z_lo, 1e-12)
    window_end = box[:, 5] + n_windows  # exclusive prefix sum + count
    total = window_end[-1]
    offs = jnp.arange(window, dtype=jnp.int32)

    def body(carry):
        start, zbuf = carry
        item = start + jnp.arange(chunk, dtype=jnp.int32)  # [M] work items
        face = jnp.minimum(jnp.searchsorted(window_end, item, side="right"), n_faces - 1)
        c, b = coef[face], box[face]  # one gather per table: [M, 13], [M, 6]
        local = item - b[:, 5]
        row_w, col_w = local // b[:, 4], local % b[:, 4]
        px = (b[:, 0] + col_w * window)[:, None, None] + offs[None, None, :]  # [M, 1, T]
        py = (b[:, 1] + row_w * window)[:, None, None] + offs[None, :, None]  # [M, T, 1]
        in_box = (px <= b[:, 2, None, None]) & (py <= b[:, 3, None, None])
        in_box &= (item < total)[:, None, None]
        u = px.astype(jnp.float32) + 0.5
        v = py.astype(jnp.float32) + 0.5

        def affine(k):  # coefficients k..k+2 of c, evaluated at the window's pixels: [M, T, T]
            return c[:, k, None, None] * u + c[:, k + 1, None, None] * v + c[:, k + 2, None, None]

        inside = (affine(0) >= 0) & (affine(3) >= 0) & (affine(6) >= 0)
        depth = c[:, 12, None, None] / affine(9)  # t = (P0 · n) / (d · n)
        hit = in_box & inside & (depth >= near) & (depth < jnp.inf)
        q = jnp.floor(jnp.clip((depth - z_lo) * q_scale, 0.0, q_max)).astype(jnp.uint32)
        q = jnp.minimum(q, np.uint32(q_max))
        key = (q << id_bits) | face.astype(jnp.uint32)[:, None, None]
        pixel = jnp.where(hit, py * width + px, width * height)  # out of range: dropped
        zbuf = zbuf.at[pixel.reshape(-1)].min(key.reshape(-1), mode="drop")
        return start + chunk, zbuf

    zbuf = jnp.full((height * width,), _EMPTY, jnp.uint32)
    if iterations is None:
        _, zbuf = jax.lax.while_loop(lambda c: c[0] < total, body, (jnp.int32(0), zbuf))
        dropped = jnp.int32(0)
    else:
        # A static trip count: on a GPU, XLA runs it without reading the loop condition back
        # to the host, which a data-dependent loop does at every iteration (the host then
        # waits for all work queued before it, and launches what follows one kernel at a
        # time while the device idles).
        _, zbuf = jax.lax.fori_loop(0, iterations, lambda _, c: body(c), (jnp.int32(0), zbuf))
        dropped = jnp.maximum(total - iterations * chunk, 0)
    face_id = jnp.where(zbuf == _EMPTY, -1, (zbuf & np.uint32(2**id_bits - 1)).astype(jnp.int32))
    return face_id.reshape(height, width), dropped


# --------------------------------------------------------------------------- step 4: resolve


def _resolve(face_id, P, faces, K, width, height):
    """Barycentrics and depth of each pixel's ray in its winning face (Möller–Trumbore)."""
    covered = face_id >= 0
    f = jnp.clip(faces, 0, P.shape[0] - 1)[jnp.maximum(face_id, 0)]  # [H, W, 3]
    p0, p1, p2 = P[f[..., 0]], P[f[..., 1]], P[f[..., 2]]  # [H, W, 3] each
    e1, e2 = p1 - p0, p2 - p0
    d = pixel_rays(K, width, height)
    pvec = _cross(d, e2)
    det = _dot(e1, pvec)
    inv = 1.0 / jnp.where(covered & (det != 0), det, 1.0)
    tvec = -p0  # ray origin (the camera centre) minus P0
    qvec = _cross(tvec, e1)
    b1 = _dot(tvec, pvec) * inv
    b2 = _dot(d, qvec) * inv
    depth = _dot(e2, qvec) * inv
    # Pixels exactly on an edge can land a rounding error outside: clamp, renormalise.
    bary = jnp.clip(jnp.stack([1.0 - b1 - b2, b1, b2], axis=-1), 0.0, None)
    bary = bary / jnp.maximum(bary[..., 0] + bary[..., 1] + bary[..., 2], 1e-12)[..., None]
    bary = jnp.where(covered[..., None], bary, 0.0)
    depth = jnp.where(covered, depth, jnp.inf)
    return bary, depth


@functools.partial(
    jax.jit,
    static_argnames=("width", "height", "cull_backfaces", "window", "chunk", "iterations"),
)
def _rasterize_jit(
    vertices, faces, viewmat, K, near, *, width, height, cull_backfaces, window, chunk, iterations
):
    P = to_camera(vertices, viewmat)
    coef, box, z_range, n_windows = _setup(P, faces, K, width, height, near, cull_backfaces, window)
    face_id, dropped = _scatter_depth_keys(
        coef, box, z_range, n_windows, width, height, near, window, chunk, iterations
    )
    bary, depth = _resolve(face_id, P, faces, K, width, height)
    return Fragments(face_id=face_id, bary=bary, depth=depth, dropped=dropped)


def default_chunk(n_faces: int, window: int) -> int:
    """Work items per loop iteration: about one window per face, at least 64k pixel tests,
    rounded up to 1024 (static, so equal shapes share one compilation)."""
    items = max(n_faces, 65536 // (window * window))
    return int(math.ceil(items / 1024) * 1024)


def window_capacity(n_faces: int, width: int, height: int, window: int = 4) -> int:
    """A ``max_windows`` for :func:`rasterize_mesh` with room to spare for a closed mesh
    seen whole: twice the sum of one window per face and the windows that tile the image.
    (The shipped FLAME head, 11.6k faces, at 256² needed 16.5k-19.7k windows over eight
    random E2V draws, 2026; this gives 31.4k, run as 3 chunks of 11,264.)"""
    tiles = math.ceil(width / window) * math.ceil(height / window)
    return 2 * (int(n_faces) + tiles)


def rasterize_mesh(
    vertices: jax.Array,
    faces: jax.Array,
    viewmat: jax.Array,
    K: jax.Array,
    width: int,
    height: int,
    near: float = 0.01,
    *,
    cull_backfaces: bool = False,
    window: int = 4,
    chunk: int | None = None,
    max_windows: int | None = None,
) -> Fragments:
    """Rasterize a triangle mesh into a z-buffer (nearest hit per pixel centre).

    Pure and jit-able (``width``, ``height``, ``cull_backfaces``, ``window``, ``chunk`` are
    static); ``vmap`` it over frames. Called outside ``jit`` with concrete arrays it also
    checks values (NaN vertices, face indices out of range); inside ``jit`` such faces are
    culled.

    Args:
      vertices: ``[V, 3]`` world positions (float32).
      faces: ``[F, 3]`` int vertex indices, counter-clockwise seen from outside.
      viewmat: ``[4, 4]`` world→camera (OpenCV: +z forward, +y down).
      K: ``[3, 3]`` intrinsics in pixels (last row ``0 0 1``).
      width, height: image size in pixels (static).
      near: camera-space z below which surfaces are not drawn (per-pixel clipping).
      cull_backfaces: drop faces whose outside does not face the camera.
      window: side of the square pixel window of one work item (static; 4 suits triangles
        of a few pixels, 8 suits larger ones). Any triangle size is handled.
      chunk: work items (windows) per loop iteration (static); default
        :func:`default_chunk`.
      max_windows: ``None`` (default): every window is tested, in a loop whose trip count
        depends on the data. A number (static; e.g. :func:`window_capacity`): the loop runs
        exactly ``ceil(max_windows / chunk)`` chunks, so on a GPU the host never waits for
        it, and the windows beyond them are left untested and counted in
        ``Fragments.dropped`` (what they would have covered stays empty or shows the face
        behind). Without a ``chunk``, the chunks are sized to cover ``max_windows`` with
        less than 1024 windows to spare each (as many as :func:`default_chunk` would need).

    Returns:
      :class:`Fragments` with ``face_id [H, W]``, ``bary [H, W, 3]``, ``depth [H, W]``,
      ``dropped []``.

    Raises:
      InputError: non-positive image size, malformed shapes, NaN vertices, face indices out
        of range or ``near <= 0`` (these three only for concrete inputs), more than
        ``MAX_FACES`` faces.
    """
    width, height = check_image_size(width, height)
    check_mesh(vertices, faces)
    check_camera(viewmat, K)
    n_faces = jnp.shape(faces)[0]
    if n_faces > MAX_FACES:
        raise InputError(f"mesh has {n_faces} faces; the z-buffer key holds at most {MAX_FACES}")
    if not isinstance(near, jax.core.Tracer) and not float(near) > 0:
        raise InputError(f"near plane must be > 0 (camera-space z), got {near}")
    if window < 1 or (chunk is not None and chunk < 1):
        raise InputError(f"window ({window}) and chunk ({chunk}) must be positive")
    if max_windows is not None and max_windows < 1:
        raise InputError(f"max_windows is {max_windows}; pass a positive count or None")
    fit_chunk = chunk is None
    if chunk is None:
        chunk = default_chunk(n_faces, window)
    iterations = None
    if max_windows is not None:
        iterations = math.ceil(max_windows / chunk)
        if fit_chunk:
            # As many chunks as the default size needs, each shrunk to just cover max_windows
            # (rounded up to 1024): never more than 1024 windows a chunk beyond it.
            chunk = math.ceil(max_windows / iterations / 1024) * 1024
    return _rasterize_jit(
        jnp.asarray(vertices, jnp.float32),
        jnp.asarray(faces, jnp.int32),
        jnp.asarray(viewmat, jnp.float32),
        jnp.asarray(K, jnp.float32),
        jnp.asarray(near, jnp.float32),
        width=width,
        height=height,
        cull_backfaces=bool(cull_backfaces),
        window=int(window),
        chunk=int(chunk),
        iterations=iterations,
    )


def interpolate(fragments: Fragments, attr_per_face_corner: jax.Array) -> jax.Array:
    """Interpolate per-face-corner attributes at each pixel with its barycentrics.

    Args:
      fragments: from :func:`rasterize_mesh` (``face_id [H, W]``, ``bary [H, W, 3]``).
      attr_per_face_corner: ``[F, 3, D]`` values at each face's three corners (e.g. UVs as
        ``vt[ft]``, camera-space vertex normals as ``normals[faces]``).

    Returns:
      ``[H, W, D]`` perspective-correct interpolated values, zeros where empty.
    """
    attr = jnp.asarray(attr_per_face_corner)
    if attr.ndim != 3 or attr.shape[1] != 3:
        raise InputError(f"interpolate: attributes must be [F, 3, D], got {attr.shape}")
    corner_vals = attr[jnp.maximum(fragments.face_id, 0)]  # [H, W, 3, D]
    bary = fragments.bary
    # Unrolled over the 3 corners (see _fold: a reduction over that axis is far slower).
    out = sum(bary[..., k, None] * corner_vals[..., k, :] for k in range(3))
    return jnp.where(fragments.mask[..., None], out, 0.0)
