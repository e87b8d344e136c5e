"""``rasterization`` refuses bad arguments with one ``SplatInputError`` line that names the
argument, the value and the fix: shapes and static values at trace time (also under ``jit``),
array values at eager calls. Tiny scenes on the reference backend: every check runs before
dispatch, so the backend does not matter.
"""

import re

import jax
import numpy as np
import pytest

from ggtalker_jax.kernels.splat import KernelConfig, SplatInputError, rasterization

N, SIZE = 8, 16


def make_args(rng, batch=(), cameras=1):
    """Keyword arguments of a valid call: ``N`` Gaussians in front of ``cameras`` cameras."""
    means = rng.normal(size=(*batch, N, 3)) * 0.3 + [0.0, 0.0, 3.0]
    K = np.array([[20.0, 0, SIZE / 2], [0, 20.0, SIZE / 2], [0, 0, 1]])
    return dict(
        means=means.astype(np.float32),
        quats=rng.normal(size=(*batch, N, 4)).astype(np.float32),
        scales=np.full((*batch, N, 3), 0.1, np.float32),
        opacities=rng.uniform(0.1, 1.0, (*batch, N)).astype(np.float32),
        colors=rng.uniform(0, 1, (*batch, N, 3)).astype(np.float32),
        viewmats=np.broadcast_to(np.eye(4), (*batch, cameras, 4, 4)).astype(np.float32),
        Ks=np.broadcast_to(K, (*batch, cameras, 3, 3)).astype(np.float32),
        width=SIZE,
        height=SIZE,
        backend="reference",
    )


def setting(index, value):
    """A change that writes ``value`` at ``index`` of one array (a copy)."""

    def change(a):
        a = a.copy()
        a[index] = value
        return a

    return change


def empty(args):
    """Every per-Gaussian array cut to 0 Gaussians."""
    names = ("means", "quats", "scales", "opacities", "colors")
    return {
        k: args[k][..., :0, :] if args[k].ndim > args["opacities"].ndim else args[k][..., :0]
        for k in names
    }


NAN, INF = float("nan"), float("inf")

# (id, batch, cameras, change, message fragment). A change maps a valid call's arguments to the
# ones it replaces; a callable value is applied to the valid argument of that name.
CASES = [
    # Static arguments.
    ("width-0", (), 1, dict(width=0), "width=0: pass an int >= 1 (the image width in pixels)"),
    ("width-float", (), 1, dict(width=128.5), "width=128.5: pass an int >= 1"),
    ("width-str", (), 1, dict(width="16"), "width='16': pass an int >= 1"),
    ("height-bool", (), 1, dict(height=True), "height=True: pass an int >= 1"),
    ("height-negative", (), 1, dict(height=-3), "height=-3: pass an int >= 1"),
    ("tile-size-12", (), 1, dict(tile_size=12), "tile_size=12: pass a power of two"),
    ("tile-size-float", (), 1, dict(tile_size=16.0), "tile_size=16.0: pass an int >= 1"),
    ("capacity-0", (), 1, dict(capacity=0), "capacity=0: pass an int >= 1"),
    ("capacity-negative", (), 1, dict(capacity=-5), "capacity=-5: pass an int >= 1"),
    ("capacity-float", (), 1, dict(capacity=2.5), "capacity=2.5: pass an int >= 1"),
    ("capacity-bool", (), 1, dict(capacity=True), "capacity=True: pass an int >= 1"),
    ("near-0", (), 1, dict(near_plane=0.0), "near_plane=0.0: pass a finite value > 0"),
    ("near-negative", (), 1, dict(near_plane=-1.0), "near_plane=-1.0: pass a finite value > 0"),
    ("near-nan", (), 1, dict(near_plane=NAN), "near_plane=nan: pass a finite value > 0"),
    ("near-array", (), 1, dict(near_plane=np.array(0.01)), "near_plane=array(0.01): pass a"),
    (
        "near-beyond-far",
        (),
        1,
        dict(near_plane=5.0, far_plane=1.0),
        "far_plane=1.0 must exceed near_plane=5.0; pass near_plane < far_plane",
    ),
    ("far-nan", (), 1, dict(far_plane=NAN), "far_plane=nan must exceed near_plane=0.01"),
    ("eps2d-negative", (), 1, dict(eps2d=-0.1), "eps2d=-0.1: pass a finite value >= 0"),
    ("eps2d-nan", (), 1, dict(eps2d=NAN), "eps2d=nan: pass a finite value >= 0"),
    ("render-mode", (), 1, dict(render_mode="RGBA"), "render_mode='RGBA'; choose one of"),
    ("backend", (), 1, dict(backend="cuda"), "backend='cuda'; choose one of"),
    (
        "config-tile-size",
        (),
        1,
        dict(config=KernelConfig(tile_size=8)),
        "config.tile_size=8 != tile_size=16",
    ),
    ("config-type", (), 1, dict(config="fast"), "config='fast': pass a KernelConfig or None"),
    # Dtypes and containers.
    ("means-complex", (), 1, dict(means=lambda a: a + 1j), "means has dtype complex64; pass real"),
    ("opacities-bool", (), 1, dict(opacities=lambda a: a > 0.5), "opacities has dtype bool"),
    ("colors-str", (), 1, dict(colors=np.full((N, 3), "red")), "colors has dtype <U3"),
    ("means-ragged", (), 1, dict(means=[[0.0, 0.0, 3.0], [1.0]]), "means is not a rectangular"),
    ("means-none", (), 1, dict(means=None), "means is None; pass an array"),
    # Gaussian shapes.
    ("no-gaussians", (), 1, empty, "means has shape (0, 3): it holds 0 Gaussians"),
    ("no-gaussians-batched", (2,), 1, empty, "means has shape (2, 0, 3): it holds 0 Gaussians"),
    (
        "empty-batch",
        (0,),
        1,
        {},
        "means has shape (0, 8, 3): a batch axis of size 0; pass at least one scene",
    ),
    (
        "means-2d",
        (),
        1,
        dict(means=lambda a: a[:, :2]),
        "means has shape (8, 2); expected [..., N, 3]",
    ),
    ("means-flat", (), 1, dict(means=lambda a: a[:, 0]), "means has shape (8,); expected"),
    (
        "quats-short",
        (),
        1,
        dict(quats=lambda a: a[:7]),
        "quats has shape (7, 4); expected [8, 4] to match means (8, 3)",
    ),
    (
        "scales-2",
        (),
        1,
        dict(scales=lambda a: a[:, :2]),
        "scales has shape (8, 2); expected [8, 3]",
    ),
    (
        "opacities-column",
        (),
        1,
        dict(opacities=lambda a: a[:, None]),
        "opacities has shape (8, 1); expected [8]",
    ),
    (
        "colors-none",
        (),
        1,
        dict(colors=None),
        "colors is None; render_mode='RGB' needs colors [8, D]",
    ),
    (
        "colors-none-rgb-d",
        (),
        1,
        dict(colors=None, render_mode="RGB+D"),
        "colors is None; render_mode='RGB+D' needs",
    ),
    (
        "colors-extra-axis",
        (),
        1,
        dict(colors=lambda a: a[None]),
        "colors has shape (1, 8, 3); expected [8, D]",
    ),
    (
        "colors-flat",
        (),
        1,
        dict(colors=lambda a: a[:, 0]),
        "colors has shape (8,); expected [8, D]",
    ),
    (
        "colors-sh",
        (),
        1,
        dict(colors=np.zeros((N, 16, 3))),
        "evaluate spherical harmonics to colours first",
    ),
    (
        "colors-0-channels",
        (),
        1,
        dict(colors=lambda a: a[:, :0]),
        "colors has shape (8, 0): 0 channels",
    ),
    (
        "colors-short-depth-mode",
        (),
        1,
        dict(colors=lambda a: a[:7], render_mode="D"),
        "colors has shape (7, 3); expected [8, D]",
    ),
    # Camera shapes.
    (
        "viewmats-no-camera-axis",
        (),
        1,
        dict(viewmats=lambda a: a[0]),
        "viewmats has shape (4, 4); expected [C, 4, 4]: add a camera axis: viewmats[None]",
    ),
    (
        "viewmats-no-camera-axis-batched",
        (2,),
        1,
        dict(viewmats=lambda a: a[:, 0]),
        "viewmats has shape (2, 4, 4); expected [2, C, 4, 4]: add a camera axis: "
        "viewmats[..., None, :, :]",
    ),
    (
        "viewmats-3x4",
        (),
        1,
        dict(viewmats=lambda a: a[:, :3]),
        "viewmats has shape (1, 3, 4); expected [C, 4, 4]",
    ),
    (
        "viewmats-other-batch",
        (2,),
        1,
        dict(viewmats=np.zeros((3, 1, 4, 4))),
        "expected [2, C, 4, 4] (the batch dims (2,) of means, then cameras)",
    ),
    (
        "no-cameras",
        (),
        1,
        dict(viewmats=lambda a: a[:0], Ks=lambda a: a[:0]),
        "viewmats has shape (0, 4, 4): 0 cameras",
    ),
    (
        "Ks-no-camera-axis",
        (),
        1,
        dict(Ks=lambda a: a[0]),
        "Ks has shape (3, 3); expected [1, 3, 3]: add a camera axis: Ks[None]",
    ),
    (
        "Ks-no-camera-axis-2-cameras",
        (),
        2,
        dict(Ks=lambda a: a[0]),
        "add a camera axis: jnp.broadcast_to(Ks[..., None, :, :], (2, 3, 3))",
    ),
    (
        "Ks-too-many",
        (),
        1,
        dict(Ks=lambda a: a[[0, 0]]),
        "Ks has shape (2, 3, 3); expected [1, 3, 3]",
    ),
    # Backgrounds.
    (
        "backgrounds-channels",
        (),
        1,
        dict(backgrounds=np.zeros((1, 4))),
        "backgrounds has shape (1, 4); expected [1, 3]",
    ),
    (
        "backgrounds-no-camera-axis",
        (),
        1,
        dict(backgrounds=np.zeros(3)),
        "backgrounds has shape (3,); expected [1, 3]",
    ),
    (
        "backgrounds-depth-mode",
        (),
        1,
        dict(backgrounds=np.zeros((1, 3)), render_mode="D"),
        "render_mode='D' has no colour channels: pass backgrounds=None",
    ),
    # Values (eager calls only).
    (
        "means-nan",
        (),
        1,
        dict(means=setting((2, 1), NAN)),
        "means: 1 Gaussian(s) are not finite (first at index [2])",
    ),
    (
        "scales-negative",
        (),
        1,
        dict(scales=setting((3, 0), -0.1)),
        "scales: 1 Gaussian(s) are not finite and >= 0",
    ),
    (
        "quats-zero",
        (),
        1,
        dict(quats=setting(4, 0.0)),
        "quats: 1 Gaussian(s) are not finite with non-zero norm",
    ),
    (
        "opacities-inf",
        (),
        1,
        dict(opacities=setting(5, INF)),
        "opacities: 1 Gaussian(s) are not finite and in [0, 1]",
    ),
    ("opacities-above-1", (), 1, dict(opacities=setting(5, 1.5)), "pass sigmoid(logits)"),
    (
        "opacities-negative",
        (),
        1,
        dict(opacities=setting(0, -0.1)),
        "opacities: 1 Gaussian(s) are not finite and in [0, 1] (first at index [0])",
    ),
    (
        "opacities-logits-batched",
        (2,),
        1,
        dict(opacities=lambda a: a * 10 - 5),
        "(first at index [0, ",
    ),
    (
        "colors-nan",
        (),
        1,
        dict(colors=setting((6, 2), NAN)),
        "colors: 1 Gaussian(s) are not finite",
    ),
    (
        "viewmats-inf",
        (),
        2,
        dict(viewmats=setting((1, 0, 3), INF)),
        "viewmats: 1 camera(s) are not finite (first at index [1])",
    ),
    ("Ks-nan", (), 1, dict(Ks=setting((0, 0, 0), NAN)), "Ks: 1 camera(s) are not finite"),
    (
        "backgrounds-nan",
        (),
        1,
        dict(backgrounds=np.full((1, 3), NAN)),
        "backgrounds: 1 camera(s) are not finite",
    ),
]


def bad_args(rng, batch, cameras, change):
    args = make_args(rng, batch, cameras)
    changes = change(args) if callable(change) else change
    for name, value in changes.items():
        args[name] = value(args[name]) if callable(value) else value
    return args


@pytest.mark.parametrize(
    "batch,cameras,change,message",
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_is_one_line_naming_the_fix(rng, batch, cameras, change, message):
    with pytest.raises(SplatInputError, match=re.escape(message)) as info:
        rasterization(**bad_args(rng, batch, cameras, change))
    assert type(info.value) is SplatInputError
    assert "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "case_id", ["no-gaussians", "viewmats-no-camera-axis", "Ks-no-camera-axis", "colors-none"]
)
def test_shape_errors_raise_at_trace_time(rng, case_id):
    _, batch, cameras, change, message = next(c for c in CASES if c[0] == case_id)
    args = bad_args(rng, batch, cameras, change)
    arrays = {k: args.pop(k) for k in ("means", "quats", "scales", "opacities")}
    with pytest.raises(SplatInputError, match=re.escape(message)):
        jax.jit(lambda a: rasterization(**a, **args))(arrays)


def test_values_are_not_checked_under_jit(rng):
    """Traced values cannot be read: bad Gaussians are culled and counted, opacities above
    1 meet the per-Gaussian alpha clamp (0.999, as in gsplat), and nothing raises."""
    args = make_args(rng)
    args["means"][2, 0] = np.nan
    args["opacities"][5] = 1.5
    arrays = {k: args.pop(k) for k in ("means", "quats", "scales", "opacities", "colors")}
    out, alpha, meta = jax.jit(lambda a: rasterization(**a, **args))(arrays)
    assert int(meta["n_invalid"]) == 1
    assert np.all(np.isfinite(out)) and float(np.max(alpha)) <= 1.0


def test_accepted_variants_render_like_float32(rng):
    """Integer and nested-list arrays convert, NumPy ints are image sizes, an infinite far
    plane and eps2d = 0 are fine, and a depth-only call needs neither colours nor backgrounds
    (a one-channel background there is ignored, as in gsplat)."""
    args = make_args(rng)
    ref, ref_alpha, _ = rasterization(**args)
    variants = [
        dict(Ks=args["Ks"].astype(np.int64), viewmats=args["viewmats"].astype(np.int32)),
        dict(means=args["means"].tolist(), width=np.int64(SIZE), height=np.int32(SIZE)),
        dict(far_plane=float("inf"), capacity=1),
    ]
    for change in variants:
        out, alpha, _ = rasterization(**{**args, **change})
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(alpha, ref_alpha)
    rasterization(**{**args, "eps2d": 0.0, "opacities": np.linspace(0, 1, N)})
    depth, _, _ = rasterization(**{**args, "render_mode": "D"})
    for change in (dict(colors=None), dict(colors=None, backgrounds=np.ones((1, 1)))):
        out, _, _ = rasterization(**{**args, "render_mode": "D", **change})
        np.testing.assert_array_equal(out, depth)


@pytest.mark.parametrize("field,value", [("chunk", 3), ("tile_size", 0), ("num_warps", 2.0)])
def test_kernel_config_refuses_bad_sizes(field, value):
    with pytest.raises(SplatInputError, match=rf"KernelConfig.{field}={value!r} must be a power"):
        KernelConfig(**{field: value})
