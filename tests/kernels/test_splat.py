"""Splatting: every backend against the dense reference, forward and gradients.

The Pallas kernels run in the interpreter on CPU and compiled on a GPU (``gpu`` marker);
the xla backend runs everywhere.
Scenes mix the hard cases: Gaussians behind the camera, huge and sub-pixel scales,
opacities below 1/255, empty tiles, and Gaussians piled on one pixel (early stop).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.kernels.splat import SplatInputError, rasterization
from ggtalker_jax.kernels.splat.binning import ellipse_reaches_tile
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.projection import project_gaussians
from ggtalker_jax.kernels.splat.reference import composite_image_reference


def make_scene(rng, n, width, height, batch=(), cameras=1, d=3):
    """Random Gaussians in front of ``cameras`` cameras, with the hard cases mixed in."""
    means = rng.normal(size=(*batch, n, 3)) * [0.5, 0.4, 0.3] + [0.0, 0.0, 3.0]
    means[..., 0] = np.abs(means[..., 0])  # the left half stays empty...
    means[..., : n // 4, :2] = (
        rng.normal(size=(*batch, n // 4, 2)) * 0.05 - 0.3
    )  # ...but one corner
    means[..., n // 4 : n // 4 + 3, 2] = -1.0  # behind the camera
    scales = np.exp(rng.normal(size=(*batch, n, 3)) * 0.6 - 3.2)
    scales[..., -1, :] = 0.25  # covers a third of the image
    means[..., -1, :] = [0.8, 0.0, 3.0]
    scales[..., -2, :] = 1e-5  # far below a pixel
    opacities = rng.uniform(0.05, 1.0, (*batch, n))
    opacities[..., -3] = 0.002  # culled: below 1/255
    # A stack of opaque Gaussians on one spot: transmittance hits the 1e-4 stop there.
    means[..., -12:-4, :] = [0.1, 0.05, 2.5]
    means[..., -12:-4, 2] += np.linspace(0, 0.2, 8)
    opacities[..., -12:-4] = 0.99
    viewmats = np.tile(np.eye(4), (*batch, cameras, 1, 1))
    for c in range(cameras):
        angle = 0.15 * c
        viewmats[..., c, :3, :3] = [
            [np.cos(angle), 0, np.sin(angle)],
            [0, 1, 0],
            [-np.sin(angle), 0, np.cos(angle)],
        ]
    focal = 1.2 * max(width, height)
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    return dict(
        means=means.astype(np.float32),
        quats=rng.normal(size=(*batch, n, 4)).astype(np.float32),
        scales=scales.astype(np.float32),
        opacities=opacities.astype(np.float32),
        colors=rng.uniform(0, 1, (*batch, n, d)).astype(np.float32),
        viewmats=viewmats.astype(np.float32),
        Ks=np.broadcast_to(K, (*batch, cameras, 3, 3)).astype(np.float32),
        backgrounds=rng.uniform(0, 1, (*batch, cameras, d)).astype(np.float32),
    )


def render(scene, width, height, backend, **kw):
    return rasterization(
        scene["means"],
        scene["quats"],
        scene["scales"],
        scene["opacities"],
        scene["colors"],
        scene["viewmats"],
        scene["Ks"],
        width,
        height,
        backgrounds=scene["backgrounds"],
        backend=backend,
        **kw,
    )


GRAD_NAMES = ("means", "quats", "scales", "opacities", "colors", "backgrounds")


def grads(scene, width, height, backend, weights, mode="RGB", **kw):
    def loss(*args):
        s = dict(scene, **dict(zip(GRAD_NAMES, args, strict=True)))
        img, alpha, _ = render(s, width, height, backend, render_mode=mode, **kw)
        return jnp.sum(img * weights[0]) + jnp.sum(alpha * weights[1])

    return jax.grad(loss, argnums=tuple(range(len(GRAD_NAMES))))(*(scene[k] for k in GRAD_NAMES))


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / (np.linalg.norm(b) + 1e-12))


# (n, width, height, batch, cameras, d, mode): few shape buckets, each one compile.
CASES = [
    (160, 48, 32, (), 1, 3, "RGB"),
    (64, 32, 32, (2,), 2, 1, "RGB+ED"),
    (48, 16, 32, (), 1, 32, "RGB+D"),
]


class SplatParity:
    """Forward and gradient parity of ``backend`` against the reference."""

    backend: str
    atol = 2e-5
    grad_tol = 1e-4

    @pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c[0]}-{c[1]}x{c[2]}-d{c[5]}")
    def test_forward_and_gradients(self, rng, case):
        n, w, h, batch, cams, d, mode = case
        scene = make_scene(rng, n, w, h, batch, cams, d)
        ref, ref_a, ref_meta = render(scene, w, h, "reference", render_mode=mode)
        out, out_a, meta = render(scene, w, h, self.backend, render_mode=mode)
        d_out = d + (1 if "D" in mode else 0)
        assert out.shape == (*batch, cams, h, w, d_out) and out_a.shape == (*batch, cams, h, w, 1)
        np.testing.assert_allclose(
            out, ref, atol=self.atol * (20 if "ED" in mode else 1), rtol=1e-4
        )
        np.testing.assert_allclose(out_a, ref_a, atol=self.atol)
        assert int(meta["n_intersections"]) == int(ref_meta["n_intersections"]) > 0
        assert 0 < int(meta["n_active"]) <= int(meta["n_intersections"])
        assert not bool(meta["overflow"])
        # Some tiles are empty and some pixels are opaque: the scenes test both paths.
        assert float(np.min(ref_a)) < 1e-6 and float(np.max(ref_a)) > 0.99
        weights = (
            rng.normal(size=ref.shape).astype(np.float32),
            rng.normal(size=ref_a.shape).astype(np.float32),
        )
        g_ref = grads(scene, w, h, "reference", weights, mode)
        g_out = grads(scene, w, h, self.backend, weights, mode)
        for name, a, b in zip(GRAD_NAMES, g_out, g_ref, strict=True):
            assert np.all(np.isfinite(a)), name
            assert rel_l2(a, b) < self.grad_tol, (name, rel_l2(a, b))

    def test_all_culled_gives_background(self, rng):
        scene = make_scene(rng, 160, 48, 32)
        scene["means"][..., 2] = -2.0  # everything behind the camera
        out, alpha, meta = render(scene, 48, 32, self.backend)
        np.testing.assert_allclose(
            out, np.broadcast_to(scene["backgrounds"][:, None, None, :], out.shape), atol=1e-6
        )
        assert float(np.max(alpha)) == 0.0 and int(meta["n_intersections"]) == 0


class TestPallas(SplatParity):
    backend = "pallas"


class TestXLA(SplatParity):
    backend = "xla"


def test_xla_long_lists_stop_and_cross_chunks(rng):
    """One tile whose list is many chunks long, with a pile of opaque Gaussians that stops
    every pixel mid-list and lanes that take over tiles: the xla backend, run with a small
    chunk and two lanes, matches the reference in values and gradients."""
    from ggtalker_jax.kernels.splat.xla import composite_tiles_xla

    n, w, h = 96, 16, 16
    scene = make_scene(rng, n, w, h)
    scene["means"][:, :2] = rng.normal(size=(n, 2)) * 0.05  # all on the one tile
    scene["opacities"][: n // 2] = rng.uniform(0.05, 0.3, n // 2)
    ref, ref_a, _ = render(scene, w, h, "reference", tile_size=8)
    weights = (
        rng.normal(size=ref.shape).astype(np.float32),
        rng.normal(size=ref_a.shape).astype(np.float32),
    )
    assert float(np.max(ref_a)) > 0.9998  # some pixels stopped before their list ended
    import ggtalker_jax.kernels.splat.api as api

    small = lambda *a: composite_tiles_xla(*a, lanes=2, chunk=4)
    original = api.composite_tiles_xla
    api.composite_tiles_xla = small
    try:
        api._render.clear_cache()
        out, out_a, _ = render(scene, w, h, "xla", tile_size=8)
        g_out = grads(scene, w, h, "xla", weights, tile_size=8)
    finally:
        api.composite_tiles_xla = original
        api._render.clear_cache()
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(out_a, ref_a, atol=2e-5)
    g_ref = grads(scene, w, h, "reference", weights, tile_size=8)
    for name, a, b in zip(GRAD_NAMES, g_out, g_ref, strict=True):
        assert rel_l2(a, b) < 1e-4, (name, rel_l2(a, b))


def test_auto_is_xla_on_cpu(rng):
    if jax.default_backend() == "gpu":
        pytest.skip("auto is pallas on a GPU")
    scene = make_scene(rng, 160, 48, 32)
    auto = render(scene, 48, 32, "auto")[0]
    np.testing.assert_array_equal(auto, render(scene, 48, 32, "xla")[0])


def test_pack_bits_keeps_list_order_and_groups_bound_width(rng):
    from ggtalker_jax.kernels.splat.backward import bits_shape, color_groups, pack_bits

    for n in (1, 2, 8, 16):
        values = [jnp.asarray(rng.normal(size=5).astype(np.float32)) for _ in range(n)]
        packed = pack_bits(values)
        assert packed.shape == (5, *bits_shape(n))
        np.testing.assert_array_equal(packed.reshape(5, n), np.stack(values, -1))
    with pytest.raises(ValueError, match="power-of-two"):
        pack_bits([jnp.zeros(5)] * 3)
    assert [color_groups(d) for d in (1, 3, 4, 5, 32)] == [(1, 1), (4, 1), (4, 1), (4, 2), (4, 8)]


def test_prefetching_kernels_match_the_reference(rng):
    """``KernelConfig.prefetch`` (next chunk's scalars loaded early) changes only the
    schedule: forward and gradients still match the reference (interpreted on CPU)."""
    _check_prefetch(rng)


@pytest.mark.gpu
def test_prefetching_kernels_match_the_reference_on_gpu(rng):
    """The same, compiled (the prefetch path is off by default, so nothing else runs it)."""
    _check_prefetch(rng)


def _check_prefetch(rng):
    n, w, h, d = 48, 16, 32, 3
    scene = make_scene(rng, n, w, h, d=d)
    on_gpu = jax.default_backend() == "gpu"
    config = KernelConfig(prefetch=True, interpret=not on_gpu, fast_math=on_gpu)
    ref, ref_a, _ = render(scene, w, h, "reference")
    out, out_a, _ = render(scene, w, h, "pallas", config=config)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out_a, ref_a, atol=1e-4)
    weights = (
        rng.normal(size=ref.shape).astype(np.float32),
        rng.normal(size=ref_a.shape).astype(np.float32),
    )
    g_out = grads(scene, w, h, "pallas", weights, config=config)
    g_ref = grads(scene, w, h, "reference", weights)
    for name, a, b in zip(GRAD_NAMES, g_out, g_ref, strict=True):
        assert rel_l2(a, b) < 1e-3, (name, rel_l2(a, b))


def test_ellipse_tile_test_keeps_every_reached_tile_and_drops_others(rng):
    """The exact ellipse-tile test against the alpha rule evaluated at every pixel centre:
    never drops a tile some pixel of which gets alpha >= 1/255 (it would change the image),
    and drops a good share of the box's tiles for thin tilted splats."""
    n, ts, size = 4000, 16, 96
    means2d = rng.uniform(-10, size + 10, (n, 2)).astype(np.float32)
    # Thin, tilted ellipses (the box corners miss them) and a few round ones.
    sx, sy = np.exp(rng.normal(1.5, 0.8, n)), np.exp(rng.normal(0.0, 0.6, n))
    theta = rng.uniform(0, np.pi, n)
    cs, sn = np.cos(theta), np.sin(theta)
    cov = np.stack(
        [
            sx**2 * cs**2 + sy**2 * sn**2,
            (sx**2 - sy**2) * cs * sn,
            sx**2 * sn**2 + sy**2 * cs**2,
        ],
        -1,
    )
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    conics = np.stack([cov[:, 2], -cov[:, 1], cov[:, 0]], -1) / det[:, None]
    opac = rng.uniform(0.004, 1.0, n)
    # Tiles around the mean's own, as the box would list them.
    tx = np.clip(means2d[:, 0] // ts + rng.integers(-2, 3, n), 0, size // ts - 1).astype(int)
    ty = np.clip(means2d[:, 1] // ts + rng.integers(-2, 3, n), 0, size // ts - 1).astype(int)
    got = np.asarray(
        ellipse_reaches_tile(
            jnp.asarray(means2d),
            jnp.asarray(conics, jnp.float32),
            jnp.asarray(opac, jnp.float32),
            jnp.asarray(tx),
            jnp.asarray(ty),
            size,
            size,
            ts,
        )
    )
    lane = np.arange(ts) + 0.5
    px = tx[:, None, None] * ts + lane[None, None, :]
    py = ty[:, None, None] * ts + lane[None, :, None]
    dx, dy = px - means2d[:, 0, None, None], py - means2d[:, 1, None, None]
    a, b, c = (conics[:, i, None, None] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    reached = (opac[:, None, None] * np.exp(-sigma) >= 1 / 255).any((1, 2))
    assert 0.2 < reached.mean() < 0.8  # the draw has both kinds
    assert np.all(got[reached]), "the tile test dropped a tile that a pixel needs"
    assert (~got[~reached]).mean() > 0.9, "the tile test keeps tiles no pixel reaches"


def test_reference_matches_finite_differences(rng):
    """Directional derivatives of the reference in float64 (tiny steps: the renderer is only
    piecewise smooth, and float32 quotients would be swamped by its jumps)."""
    scene = {k: v.astype(np.float64) for k, v in make_scene(rng, 48, 16, 32, d=1).items()}
    weights = rng.normal(size=(32, 16, 1))
    names = ("means", "quats", "scales", "opacities", "colors")
    with jax.enable_x64(True):

        def loss(means, quats, scales, opacities, colors):
            proj = project_gaussians(
                means, quats, scales, opacities, scene["viewmats"][0], scene["Ks"][0], 16, 32
            )
            img, trans = composite_image_reference(
                proj["means2d"],
                proj["conics"],
                proj["opacities"],
                colors,
                proj["depths"],
                proj["radii"],
                16,
                32,
            )
            return jnp.sum(img * weights) + jnp.sum(trans)

        args = [jnp.asarray(scene[k]) for k in names]
        analytic = jax.grad(loss, argnums=tuple(range(len(names))))(*args)
        for i, name in enumerate(names):
            # A step can straddle a discontinuity of the renderer (the 1/255 alpha cut-off,
            # a pixel-rounded box reaching the image edge). Halving the step then changes the
            # quotient; a direction whose two quotients disagree is drawn again. A wrong
            # gradient gives quotients that agree with each other but not with it.
            for _ in range(5):
                direction = rng.normal(size=args[i].shape)
                if name == "scales":  # relative steps: some scales are 1e-5
                    direction = direction * scene["scales"]
                quotients = []
                for eps in (1e-6, 5e-7):
                    plus, minus = list(args), list(args)
                    plus[i] = args[i] + eps * direction
                    minus[i] = args[i] - eps * direction
                    quotients.append((float(loss(*plus)) - float(loss(*minus))) / (2 * eps))
                exact = float(jnp.sum(analytic[i] * direction))
                tol = 1e-4 * abs(exact) + 1e-6
                if abs(quotients[0] - quotients[1]) <= tol:
                    break
            else:
                raise AssertionError(f"{name}: every direction crossed a discontinuity")
            assert abs(quotients[0] - exact) <= tol, (name, quotients, exact)


def test_no_recompilation_for_equal_shapes(rng, count_traces):
    render(make_scene(rng, 160, 48, 32), 48, 32, "pallas")  # may trace: a first call
    with count_traces() as traces:
        for _ in range(2):
            render(make_scene(rng, 160, 48, 32), 48, 32, "pallas")
    assert traces() == 0


@pytest.mark.parametrize("backend", ["pallas", "xla"])
def test_overflow_is_reported_under_jit_and_retried_eagerly(rng, backend):
    scene = make_scene(rng, 160, 48, 32)
    ref, _, meta = render(scene, 48, 32, "reference")
    need = int(meta["n_intersections"])

    @jax.jit
    def small(means):
        return render(dict(scene, means=means), 48, 32, backend, capacity=need // 2)

    _, _, jit_meta = small(scene["means"])
    assert bool(jit_meta["overflow"]) and int(jit_meta["dropped"]) == need - need // 2
    out, _, eager_meta = render(scene, 48, 32, backend, capacity=need // 2)
    assert eager_meta["capacity"] >= need and not bool(eager_meta["overflow"])
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_bad_values_refused_eagerly_and_culled_under_jit(rng):
    scene = make_scene(rng, 160, 48, 32)
    for field, index, value, message in [
        ("means", (5, 1), np.nan, "means: 1 Gaussian"),
        ("scales", (7, 0), -0.1, "scales: 1 Gaussian"),
        ("quats", (9,), 0.0, "quats: 1 Gaussian"),
        ("opacities", (4,), np.inf, "opacities: 1 Gaussian"),
    ]:
        bad = {k: v.copy() for k, v in scene.items()}
        bad[field][index] = value
        with pytest.raises(SplatInputError, match=message):
            render(bad, 48, 32, "reference")
        out, _, meta = jax.jit(lambda s: render(s, 48, 32, "reference"))(bad)
        assert int(meta["n_invalid"]) == 1 and np.all(np.isfinite(out)), field


@pytest.mark.gpu
class TestPallasGPU(SplatParity):
    """Compiled Pallas on the GPU (``ex2.approx``-free kernels: same tolerances)."""

    backend = "pallas"
    atol = 1e-4
    grad_tol = 1e-3


def test_unroll_shrinks_with_wide_colours():
    config = KernelConfig(chunk=16)
    assert [config.unroll(d) for d in (1, 3, 4, 5, 8, 32, 64, 256)] == [16, 16, 16, 8, 8, 2, 1, 1]
    assert KernelConfig(chunk=4).unroll(32) == 1
