"""The Gaussian head's render path on a tiny FLAME-format sheet: the template is cached,
frames batch exactly, gradients in the map and in the FLAME expression match central finite
differences, and every bad input is refused with a line that names it."""

import dataclasses
import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.camera import portrait_camera
from ggtalker_jax.geometry.uv import MAP_SLICES
from ggtalker_jax.render.head import (
    HeadRender,
    make_head_template,
    map_to_gaussians,
    pose_mesh,
    render_gaussians,
    render_head,
)
from ggtalker_jax.types import FLAME_PARAM_FIELDS, Camera, FlameParams

SIZE = 32  # image side, pixels
UV = 8  # UV grid side: 36 Gaussians


def sheet_model(seed: int = 0, n: int = 3) -> FlameModel:
    """A bumpy n x n-cell sheet (0.12 m across, facing +z) in the FLAME layout, with UVs
    equal to its xy layout: 5 joints, small random blendshapes and skinning weights."""
    rng = np.random.default_rng(seed)
    g = np.linspace(0.2, 0.8, n + 1)
    vt = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j
            d = (i + 1) * (n + 1) + j + 1
            faces += [[a, b, d], [a, d, c]]  # counter-clockwise seen from +z
    n_v = len(vt)
    verts = np.concatenate([0.2 * (vt - 0.5), 0.01 * rng.normal(size=(n_v, 1))], -1)
    weights = rng.dirichlet(np.ones(5), n_v)
    return FlameModel.from_arrays(
        {
            "v_template": verts,
            "f": np.asarray(faces, np.int32),
            "shapedirs": rng.normal(size=(n_v, 3, 5)) * 0.01,
            "posedirs": rng.normal(size=(n_v, 3, 36)) * 1e-3,
            "J_regressor": rng.dirichlet(np.ones(n_v), 5),
            "weights": weights,
            "kintree_table": np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
            "n_shape": np.int32(2),
            "n_exp": np.int32(3),
            "vt": vt,
            "ft": np.asarray(faces, np.int32),
        },
        source="sheet.npz",
    )


@pytest.fixture(scope="module")
def template():
    return make_head_template(sheet_model(), UV)


def cameras(yaws, pitch=0.0, field=0.25) -> Camera:
    views, Ks = zip(
        *(portrait_camera(np.zeros(3), SIZE, y, pitch, distance=0.5, field=field) for y in yaws),
        strict=True,
    )
    return Camera(jnp.asarray(np.stack(views)), jnp.asarray(np.stack(Ks)), SIZE, SIZE)


def frame_params(model, rng, frames: int) -> FlameParams:
    p = FlameParams.zeros(model.n_shape, model.n_exp, (frames,))
    return p.replace(
        shape=rng.normal(size=model.n_shape),
        expression=rng.normal(size=(frames, model.n_exp)),
        jaw_pose=rng.normal(size=(frames, 3)) * 0.05,
        global_pose=rng.normal(size=(frames, 3)) * 0.1,
    )


def test_template_is_built_once_per_model_and_size(template):
    model = template.model
    assert make_head_template(model, UV) is template
    assert make_head_template(model, UV + 2) is not template
    assert template.base_map.shape == (UV, UV, 14) and template.uv_size == (UV, UV)
    assert 20 < template.n < UV * UV - 20 and template.faces.dtype == np.int32
    hash(template)  # a static jit argument
    no_uv = dataclasses.replace(model, vt=np.zeros((0, 2), np.float32))
    with pytest.raises(InputError, match="sheet.npz: this FLAME model has no uv"):
        make_head_template(no_uv, UV)


def test_base_map_renders_the_sheet_covered_and_at_its_depth(template):
    model = template.model
    params = FlameParams.zeros(model.n_shape, model.n_exp, (1,))
    background = jnp.asarray([[0.0, 0.0, 1.0]])
    render, gaussians, meta = render_head(
        template,
        params,
        cameras([0.0]),
        template.base_map,
        background=background,
        backend="reference",
    )
    assert isinstance(render, HeadRender)
    assert render.rgb.shape == (1, SIZE, SIZE, 3) and render.alpha.shape == (1, SIZE, SIZE)
    assert gaussians.means.shape == (1, template.n, 3) and meta["radii"].shape[-2] == template.n
    centre = render.alpha[0, 13:19, 13:19]
    # The initial Gaussians close the surface (opacity 0.9 each).
    assert float(centre.min()) > 0.75 and float(centre.mean()) > 0.88
    np.testing.assert_allclose(render.depth[0, 13:19, 13:19], 0.5, atol=0.03)
    np.testing.assert_allclose(render.rgb[0, 0, 0], [0.0, 0.0, 1.0], atol=1e-3)  # off the sheet
    np.testing.assert_allclose(render.rgb[0, 16, 16, 0], 0.5 * render.alpha[0, 16, 16], atol=1e-3)


def _images(uv_map, expression, params, camera, template):
    params = dataclasses.replace(params, expression=expression)
    render, _, _ = render_head(template, params, camera, uv_map, backend="reference")
    return jnp.concatenate([render.rgb, render.alpha[..., None]], -1)  # [1, H, W, 4]


def _loss(uv_map, expression, params, camera, weights, template):
    """A fixed linear read-out of the rendered colour and alpha."""
    return jnp.sum(_images(uv_map, expression, params, camera, template) * weights)


_images_jit = jax.jit(_images, static_argnames="template")
_loss_and_grad = jax.jit(jax.value_and_grad(_loss, argnums=(0, 1)), static_argnames="template")


def central_difference(images, weights, x, direction, steps):
    """Central quotients of ``sum(images(x) * weights)`` along ``direction``, one per step.
    The images are differenced pixel by pixel in float64: the float32 sum of a whole image
    would bury a small step's change in rounding."""
    weights = np.asarray(weights, np.float64)
    out = []
    for h in steps:
        plus = np.asarray(images(x + h * direction), np.float64)
        minus = np.asarray(images(x - h * direction), np.float64)
        out.append(float(np.sum((plus - minus) * weights)) / (2 * h))
    return out


def test_gradients_in_the_map_and_the_expression_match_finite_differences(template, rng):
    """Directional derivatives against central differences of float32 renders. The renderer is only
    piecewise smooth (the 1/255 alpha cut-off, pixel-rounded boxes, depth-order swaps), so a
    step can straddle a jump: then the quotients of two steps disagree and the direction is
    drawn again. A wrong gradient gives quotients that agree with each other but not with it."""
    template = make_head_template(template.model, 4)  # 16 Gaussians
    mask = template.layout.mask[..., None]
    params = frame_params(template.model, rng, 1)
    camera = cameras([0.4], pitch=0.2, field=0.16)  # oblique: few depth ties on the sheet
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    phase = rng.uniform(0, 6, (2, 4))
    # Smooth weights: the cut-off jumps of a moving Gaussian's leading and trailing edges
    # then nearly cancel.
    weights = np.sin(3 * xx[..., None] + phase[0]) * np.cos(2 * yy[..., None] + phase[1])
    weights = jnp.asarray(weights[None], jnp.float32)
    uv_map = jnp.asarray(template.base_map + 0.2 * rng.normal(size=mask.shape[:2] + (14,)) * mask)
    uv_map = uv_map.astype(jnp.float32)
    expression = params.expression
    _, (grad_map, grad_exp) = _loss_and_grad(uv_map, expression, params, camera, weights, template)

    def of_map(m):
        return _images_jit(m, expression, params, camera, template)

    def of_expression(e):
        return _images_jit(uv_map, e, params, camera, template)

    def map_direction(name):
        """Random in one attribute's channels, leaning towards the gradient there (as the
        expression's directions do: a purely random one often has too small a derivative to
        check, e.g. the opacities of a nearly opaque sheet); an offset moves one Gaussian
        (moving them all along their normals swaps depth orders at almost every step)."""
        support = np.zeros(uv_map.shape)
        if name == "offset":
            t = rng.integers(template.n)
            support[template.layout.rows[t], template.layout.cols[t], MAP_SLICES[name]] = 1.0
        else:
            support[..., MAP_SLICES[name]] = mask
        direction = rng.normal(size=uv_map.shape) * support
        toward = np.asarray(grad_map, np.float64) * support
        norm = np.linalg.norm(toward)
        if norm > 0:
            direction += np.linalg.norm(direction) * toward / norm
        return direction

    # Steps of 1e-3: points move by 1e-6 to 1e-5 m, tens of float32 ulps of a camera-space
    # depth of 0.5 m (1e-4 drowns in that rounding); 1e-2 already crosses many jumps.
    map_steps, expression_steps = (2e-3, 1e-3), (1e-3, 5e-4)  # the expression moves all
    cases = [
        (name, of_map, uv_map, grad_map, functools.partial(map_direction, name), map_steps)
        # Not log_scale: a growing Gaussian's whole rim crosses the 1/255 cut-off at once,
        # a share of the derivative the smooth gradient leaves out (up to a third here);
        # scales are checked through the rig (test_rig_gradient_matches_finite_differences)
        # and the splatting's scale gradient by the kernel tests in float64.
        for name in MAP_SLICES
        if name != "log_scale"
    ]
    cases += [
        (
            "expression",
            of_expression,
            expression,
            grad_exp,
            # Leaning towards the gradient: three components leave few large derivatives.
            lambda: rng.normal(size=expression.shape) + 2 * grad_exp / jnp.linalg.norm(grad_exp),
            expression_steps,
        )
    ] * 2
    for name, f, x, grad, draw, steps in cases:
        for _ in range(12):
            direction = jnp.asarray(draw(), jnp.float32)
            exact = float(jnp.sum(grad * direction))
            quotients = central_difference(f, weights, x, direction, steps)
            # Accept a direction with a derivative worth checking whose two quotients agree
            # (no jump straddled).
            if abs(exact) > 2.0 and abs(quotients[0] - quotients[1]) <= 0.05 * abs(exact) + 0.1:
                break
        else:
            raise AssertionError(
                f"{name}: no direction with a derivative above 2 whose quotients agree: "
                f"{quotients} (exact {exact})"
            )
        # What is left: float32 rounding, and cut-off jumps too dense to step between (up to
        # about 20% on this 16-Gaussian sheet). A wrong sign, a missing factor or a cut link
        # in the chain is still far outside.
        assert abs(np.mean(quotients) - exact) <= 0.25 * abs(exact) + 0.3, (name, quotients, exact)


def _rigged(uv_map, vertices, template):
    gaussians, _ = map_to_gaussians(template, uv_map, vertices)
    return jnp.concatenate(
        [
            gaussians.means * 100.0,
            gaussians.scales * 100.0,
            gaussians.quats,
            gaussians.colors,
            gaussians.opacities[..., None],
        ],
        -1,
    )  # [N, 14], positions and sizes in cm


_rigged_jit = jax.jit(_rigged, static_argnames="template")


def test_rig_gradient_matches_finite_differences(template, rng):
    """The decode + rig chain is smooth: its Jacobian-vector products in the map (every
    channel) and the posed vertices match central differences tightly."""
    uv_map = jnp.asarray(template.base_map + 0.3 * rng.normal(size=template.base_map.shape))
    uv_map = uv_map.astype(jnp.float32)
    vertices = pose_mesh(template.model, frame_params(template.model, rng, 1))[0]
    mask = template.layout.mask[..., None]
    for _ in range(3):
        d_map = jnp.asarray(rng.normal(size=uv_map.shape) * mask, jnp.float32)
        d_vert = jnp.asarray(rng.normal(size=vertices.shape) * 1e-3, jnp.float32)
        _, exact = jax.jvp(
            lambda m, v: _rigged_jit(m, v, template), (uv_map, vertices), (d_map, d_vert)
        )
        h = 3e-3
        plus = np.asarray(
            _rigged_jit(uv_map + h * d_map, vertices + h * d_vert, template), np.float64
        )
        minus = np.asarray(
            _rigged_jit(uv_map - h * d_map, vertices - h * d_vert, template), np.float64
        )
        np.testing.assert_allclose((plus - minus) / (2 * h), exact, rtol=2e-2, atol=3e-3)


def test_two_frames_in_one_call_equal_two_single_frame_calls(template, rng):
    model = template.model
    params = frame_params(model, rng, 2)
    camera = cameras([0.0, 0.5])
    uv_map = jnp.asarray(template.base_map + 0.1 * rng.normal(size=(2, UV, UV, 14)), jnp.float32)
    delta = jnp.asarray(rng.normal(size=(2, template.n, 3)) * 0.1, jnp.float32)
    background = jnp.asarray(rng.uniform(size=(2, 3)), jnp.float32)
    kwargs = dict(backend="reference")
    both, gaussians, _ = render_head(template, params, camera, uv_map, delta, background, **kwargs)
    assert both.rgb.shape == (2, SIZE, SIZE, 3) and gaussians.means.shape == (2, template.n, 3)
    assert float(jnp.min(gaussians.colors)) >= 0.0 and float(jnp.max(gaussians.colors)) <= 1.0
    for t in range(2):
        frame = slice(t, t + 1)
        per_frame = {f: getattr(params, f)[frame] for f in FLAME_PARAM_FIELDS[1:]}
        single, _, _ = render_head(
            template,
            dataclasses.replace(params, **per_frame),
            Camera(camera.viewmat[frame], camera.K[frame], SIZE, SIZE),
            uv_map[frame],
            delta[frame],
            background[frame],
            **kwargs,
        )
        for got, want in zip(jax.tree.leaves(single), jax.tree.leaves(both), strict=True):
            np.testing.assert_allclose(got[0], want[t], atol=2e-6)
    # One map on many frames: the map broadcasts over the parameters' batch.
    shared, _, _ = render_head(template, params, camera, uv_map[0], **kwargs)
    first, _, _ = render_head(template, params, camera, jnp.stack([uv_map[0]] * 2), **kwargs)
    np.testing.assert_allclose(shared.rgb, first.rgb, atol=2e-6)


def test_render_gaussians_takes_one_camera_per_batch_element(template):
    model = template.model
    vertices = pose_mesh(model, FlameParams.zeros(model.n_shape, model.n_exp, (2,)))
    gaussians, local = map_to_gaussians(template, template.base_map, vertices)
    assert local.offsets.shape == (template.n, 3)  # the map's own batch
    with pytest.raises(InputError, match=r"leading shape \(2,\) but the camera \(3,\)"):
        render_gaussians(gaussians, cameras([0.0, 0.1, 0.2]), backend="reference")
    with pytest.raises(InputError, match=r"background has shape \(4,\)"):
        render_gaussians(gaussians, cameras([0.0, 0.1]), jnp.ones(4), backend="reference")


def bad_call(template, **change):
    """render_head's arguments for two frames, with ``change`` applied."""
    model = template.model
    args = dict(
        template=template,
        params=FlameParams.zeros(model.n_shape, model.n_exp, (2,)),
        camera=cameras([0.0, 0.3]),
        uv_map=jnp.asarray(template.base_map),
    )
    args.update(change)
    return args


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(uv_map=jnp.zeros((UV, UV, 13))),
            r"^uv map has 13 channels; expected 14 \(offset 3, log-scale 3, rotation 4, "
            r"colour 3, opacity 1\)",
        ),
        (
            dict(uv_map=jnp.zeros((6, 6, 14))),
            r"uv map is 6x6 texels; the head template's UV size is 8x8 "
            r"\(build the template with make_head_template\(model, 6\)",
        ),
        (dict(uv_map=jnp.zeros((14,))), r"uv map has shape \(14,\); expected \[\.\.\., Hu"),
        ("expression", r"render_head: FLAME parameter 'expression' has shape \(2, 7\)"),
        ("shape", r"render_head: FLAME parameter 'shape' has shape \(5,\)"),
        ("viewmat", r"render_head: camera: 'viewmat' has shape \(2, 3, 4\); expected"),
        ("K", r"render_head: camera: viewmat \(2, 4, 4\) and K \(3, 3, 3\) have different"),
        ("delta", r"color_delta has shape \(2, 5, 3\); expected \[\.\.\., 36, 3\]"),
        ("batch", r"leading shapes \[\(2,\), \(3,\)\] .* do not broadcast"),
    ],
)
def test_render_head_refuses_bad_inputs_naming_the_value(template, change, message):
    model = template.model
    params = FlameParams.zeros(model.n_shape, model.n_exp, (2,))
    camera = cameras([0.0, 0.3])
    if change == "expression":
        change = dict(params=params.replace(expression=jnp.zeros((2, 7))))
    elif change == "shape":
        change = dict(params=params.replace(shape=jnp.zeros(5)))
    elif change == "viewmat":
        change = dict(camera=dataclasses.replace(camera, viewmat=camera.viewmat[:, :3]))
    elif change == "K":
        change = dict(camera=dataclasses.replace(camera, K=jnp.zeros((3, 3, 3))))
    elif change == "delta":
        change = dict(color_delta=jnp.zeros((2, 5, 3)))
    elif change == "batch":
        change = dict(camera=cameras([0.0, 0.1, 0.2]))
    with pytest.raises(InputError, match=message):
        render_head(**bad_call(template, **change), backend="reference")


def test_importing_render_stays_light():
    code = (
        "import sys, ggtalker_jax.render as r\n"
        "assert 'ggtalker_jax.render.head' not in sys.modules\n"
        "assert r.render_head.__module__ == 'ggtalker_jax.render.head'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
