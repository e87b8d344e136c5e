"""Talking-head evaluation: image scores against a numpy oracle, what the head mask hides,
motion scores on known answers (identical, a wider jaw, a head moved sideways), the pictures,
the side-by-side mp4 with its sound, the table and the report folder, and bad inputs.

One image size (32², chunks of 4 frames) and one clip length (6 frames) keep the compiles
to a handful.
"""

import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from ggtalker_jax.audio.wav import write_wav
from ggtalker_jax.data.video import probe_media, read_mp4
from ggtalker_jax.errors import InputError
from ggtalker_jax.eval.talking import (
    MOUTH_LANDMARKS,
    SideBySide,
    case_slug,
    comparison_grid,
    error_image,
    score_case,
    score_frames,
    score_motion,
    side_by_side_video,
    summary_table,
    write_eval_report,
)
from ggtalker_jax.eval.views import project_landmarks
from ggtalker_jax.flame import flame_forward, load_flame
from ggtalker_jax.geometry.camera import portrait_camera
from ggtalker_jax.types import FPS, SAMPLE_RATE, FlameParams

SIZE = 32  # image side
CHUNK = 4  # score_frames batch: 5 or 6 frames need a padded second chunk
T = 6  # frames of the motion clips
CAMERA_SIZE = 256  # pixels of the motion camera (only numbers: nothing is rendered)


def _frames(rng, t=5, size=SIZE) -> np.ndarray:
    return rng.integers(0, 256, size=(t, size, size, 3), dtype=np.uint8)


def _boxes(rng, t=5, size=SIZE) -> np.ndarray:
    """``[t, size, size]`` uint8 masks: one random box per frame, at least 8² pixels."""
    mask = np.zeros((t, size, size), np.uint8)
    for i in range(t):
        r, c = rng.integers(0, size - 12, size=2)
        h, w = rng.integers(8, 12, size=2)
        mask[i, r : r + h, c : c + w] = 1
    return mask


# -- the numpy oracle ----------------------------------------------------------------------


def _blur(x: np.ndarray) -> np.ndarray:
    """Valid 11-tap Gaussian (sigma 1.5) blur of ``[H, W, C]`` along both image axes."""
    g = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    g /= g.sum()
    x = np.lib.stride_tricks.sliding_window_view(x, 11, axis=0) @ g  # [H-10, W, C]
    return np.lib.stride_tricks.sliding_window_view(x, 11, axis=1) @ g  # [H-10, W-10, C]


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al. 2004 on ``[H, W, 3]`` in 0..1, the mean over channels: ``[H-10, W-10]``."""
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = _blur(a), _blur(b)
    var_a = _blur(a * a) - mu_a**2
    var_b = _blur(b * b) - mu_b**2
    cov = _blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return ssim.mean(axis=-1)


def _oracle(pred, true, mask) -> dict[str, np.ndarray]:
    scores = {k: [] for k in ("psnr", "ssim", "head_psnr", "head_ssim")}
    for p, t, m in zip(pred / 255.0, true / 255.0, mask.astype(np.float64), strict=True):
        err = (p - t) ** 2
        ssim = _ssim_map(p, t)
        crop = m[5:-5, 5:-5]
        scores["psnr"].append(-10 * np.log10(err.mean()))
        scores["head_psnr"].append(-10 * np.log10((err * m[..., None]).sum() / (3 * m.sum())))
        scores["ssim"].append(ssim.mean())
        scores["head_ssim"].append((ssim * crop).sum() / crop.sum())
    return {k: np.array(v) for k, v in scores.items()}


# -- image scores --------------------------------------------------------------------------


def test_score_frames_matches_numpy(rng):
    pred, true, mask = _frames(rng), _frames(rng), _boxes(rng)
    # Random images score near 0 SSIM: make the prediction a noisy copy instead.
    pred = np.clip(true.astype(int) + rng.integers(-40, 41, size=true.shape), 0, 255)
    pred = pred.astype(np.uint8)
    scores = score_frames(pred, true, mask * 255, batch=CHUNK)  # nonzero = head
    want = _oracle(pred, true, mask)
    assert scores["frames"] == 5
    for name, values in want.items():
        got = scores["per_frame"][name]
        assert got.shape == (5,) and got.dtype == np.float32
        tol = 1e-3 if "psnr" in name else 1e-4
        np.testing.assert_allclose(got, values, atol=tol, err_msg=name)
        assert scores[name] == pytest.approx(values.mean(), abs=tol)
    assert 0.5 < scores["ssim"] < 0.99  # neither unrelated nor identical


def test_head_scores_ignore_pixels_outside_the_mask(rng):
    pred, true = _frames(rng), _frames(rng)
    mask = np.zeros((5, SIZE, SIZE), np.uint8)
    mask[:, 12:20, 12:20] = 1
    base = score_frames(pred, true, mask, batch=CHUNK)

    # Far from the mask (beyond the SSIM window's reach of 5 pixels): both head scores hold.
    far = pred.copy()
    far[:, :7] = 255 - far[:, :7]
    far[:, :, 25:] = 0
    moved = score_frames(far, true, mask, batch=CHUNK)
    assert moved["head_psnr"] == pytest.approx(base["head_psnr"], rel=1e-6)
    assert moved["head_ssim"] == pytest.approx(base["head_ssim"], rel=1e-6)
    assert abs(moved["psnr"] - base["psnr"]) > 0.1

    # Right beside the mask: PSNR holds, SSIM's windows reach across the border.
    near = pred.copy()
    near[:, 11, 12:20] = 255 - near[:, 11, 12:20]
    beside = score_frames(near, true, mask, batch=CHUNK)
    assert beside["head_psnr"] == pytest.approx(base["head_psnr"], rel=1e-6)
    assert beside["head_ssim"] != pytest.approx(base["head_ssim"], rel=1e-6)


def test_identical_frames_empty_masks_and_no_retrace(rng, count_traces):
    true, mask = _frames(rng), _boxes(rng)
    mask[0] = 0  # nothing to measure in frame 0
    same = score_frames(true, true, mask, batch=CHUNK)
    assert same["psnr"] == np.inf and same["head_psnr"] == np.inf
    assert same["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert same["head_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(same["per_frame"]["head_psnr"][0])

    pred = _frames(rng)
    scores = score_frames(pred, true, mask, batch=CHUNK)
    head = scores["per_frame"]["head_psnr"]
    assert np.isnan(head[0]) and scores["head_psnr"] == pytest.approx(head[1:].mean())
    none = score_frames(pred, true, np.zeros_like(mask), batch=CHUNK)
    assert np.isnan(none["head_psnr"]) and np.isnan(none["head_ssim"])
    no_mask = score_frames(pred, true, None, batch=CHUNK)
    assert set(no_mask["per_frame"]) == {"psnr", "ssim"} and "head_psnr" not in no_mask
    assert no_mask["psnr"] == pytest.approx(scores["psnr"])

    with count_traces() as traces:  # other clip lengths reuse the one compile
        score_frames(pred[:3], true[:3], mask[:3], batch=CHUNK)
        score_frames(np.concatenate([pred, pred]), np.concatenate([true, true]), None, CHUNK)
    assert traces() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, t, m: (p.astype(np.float32) / 255, t, m), "pred has dtype float32.*uint8"),
        (lambda p, t, m: (p, t.astype(np.int32), m), "true has dtype int32"),
        (lambda p, t, m: (p, t[:4], m), r"true has shape \(4, 32, 32, 3\) but pred has"),
        (lambda p, t, m: (p, t[:, :, :30], m), "same size"),
        (lambda p, t, m: (p[:0], t[:0], m[:0]), r"T > 0"),
        (lambda p, t, m: (p[..., 0], t, m), r"expected \[T, H, W, 3\]"),
        (lambda p, t, m: (p, t, m[:, :16]), "head_mask has shape"),
        (lambda p, t, m: (p[:, :8, :8], t[:, :8, :8], m[:, :8, :8]), "SSIM needs at least"),
    ],
)
def test_score_frames_bad_inputs(rng, change, message):
    pred, true, mask = change(_frames(rng, 5, SIZE), _frames(rng, 5, SIZE), _boxes(rng))
    with pytest.raises(InputError, match=message):
        score_frames(pred, true, mask, batch=CHUNK)


def test_score_frames_bad_batch(rng):
    with pytest.raises(InputError, match="batch is 0"):
        score_frames(_frames(rng), _frames(rng), None, batch=0)


# -- motion scores -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return load_flame(None)


@pytest.fixture(scope="module")
def camera():
    viewmat, K = portrait_camera(np.zeros(3), CAMERA_SIZE)
    return np.broadcast_to(viewmat, (T, 4, 4)), np.broadcast_to(K, (T, 3, 3))


def _params(rng, model) -> FlameParams:
    jaw = np.zeros((T, 3), np.float32)
    jaw[:, 0] = np.linspace(0.02, 0.25, T) + rng.uniform(0, 0.02, size=T)
    return FlameParams.zeros(model.n_shape, model.n_exp, (T,)).replace(
        shape=rng.normal(scale=0.5, size=model.n_shape),
        expression=rng.normal(scale=0.1, size=(T, model.n_exp)),
        jaw_pose=jaw,
        global_pose=rng.normal(scale=0.05, size=(T, 3)),
    )


def test_identical_motion_scores_perfectly(model, camera, rng):
    params = _params(rng, model)
    scores = score_motion(model, params, params, *camera)
    assert scores["frames"] == T
    assert scores["lip_vertex_error_mm"] == pytest.approx(0.0, abs=1e-6)
    assert scores["opening_r"] == pytest.approx(1.0, abs=1e-9)
    assert scores["landmark_px"] == pytest.approx(0.0, abs=1e-6)
    assert scores["opening_mm"] == scores["true_opening_mm"] > 1.0  # open: millimetres
    assert {k: v.shape for k, v in scores["per_frame"].items()} == {
        "lip_vertex_error_mm": (T,),
        "opening_mm": (T,),
        "true_opening_mm": (T,),
        "landmark_px": (T,),
    }


def test_a_wider_jaw_is_a_lip_error(model, camera, rng):
    true = _params(rng, model)
    pred = true.replace(jaw_pose=np.asarray(true.jaw_pose) + np.array([0.1, 0.0, 0.0]))
    scores = score_motion(model, pred, true, *camera)
    assert scores["lip_vertex_error_mm"] > 2.0
    assert scores["opening_mm"] > scores["true_opening_mm"] + 2.0
    assert scores["landmark_px"] > 1.0
    per_frame = scores["per_frame"]
    assert np.all(per_frame["lip_vertex_error_mm"] > 0)
    assert per_frame["lip_vertex_error_mm"].mean() == pytest.approx(
        scores["lip_vertex_error_mm"], rel=1e-5
    )


@jax.jit
def _landmarks(model, params):
    return flame_forward(model, params).landmarks  # jitted: eager FLAME compiles op by op


def test_a_moved_head_is_a_landmark_error_not_a_lip_error(model, camera, rng):
    true = _params(rng, model)
    shift = 0.005  # metres along world x, which is the camera's x axis at yaw 0
    pred = true.replace(translation=np.asarray(true.translation) + np.array([shift, 0.0, 0.0]))
    scores = score_motion(model, pred, true, *camera)
    assert scores["lip_vertex_error_mm"] == pytest.approx(0.0, abs=1e-6)  # pose zeroed
    assert scores["opening_r"] == pytest.approx(1.0, abs=1e-9)
    # Pinhole: a sideways shift d at depth z moves the pixel by f·d/z.
    landmarks = np.asarray(_landmarks(model, true))[:, list(MOUTH_LANDMARKS)]
    _, depth = project_landmarks(landmarks, *camera)
    want = camera[1][:, 0, 0, None] * shift / depth
    np.testing.assert_allclose(scores["per_frame"]["landmark_px"], want.mean(-1), rtol=1e-4)
    assert scores["landmark_px"] > 1.0


def test_score_motion_bad_inputs(model, camera, rng):
    params = _params(rng, model)
    viewmat, K = camera
    jaw = np.asarray(params.jaw_pose).copy()
    jaw[2, 0] = np.nan
    with pytest.raises(InputError, match="pred_params: FLAME parameter 'jaw_pose' holds 1 NaN"):
        score_motion(model, params.replace(jaw_pose=jaw), params, viewmat, K)
    short = FlameParams(**{k: v[:5] if k != "shape" else v for k, v in vars(params).items()})
    with pytest.raises(InputError, match="pred_params have 6 frames but true_params 5"):
        score_motion(model, params, short, viewmat, K)
    with pytest.raises(InputError, match=r"true_params: 'jaw_pose' has shape \(5, 3\)"):
        score_motion(model, params, params.replace(jaw_pose=np.zeros((5, 3))), viewmat, K)
    with pytest.raises(InputError, match="pass a FlameParams"):
        score_motion(model, {"jaw_pose": jaw}, params, viewmat, K)
    with pytest.raises(InputError, match=r"viewmat has shape \(5, 4, 4\)"):
        score_motion(model, params, params, viewmat[:5], K)
    behind = viewmat.copy()
    behind[:, 2, 3] *= -1  # the head 0.9 m behind the camera
    with pytest.raises(InputError, match="behind the camera in 6 of 6 frames"):
        score_motion(model, params, params, behind, K)


# -- pictures and videos -------------------------------------------------------------------


def test_error_image_ramp(rng):
    true = _frames(rng, 2)
    assert error_image(true, true).shape == true.shape
    assert (error_image(true, true) == np.array([0, 0, 4], np.uint8)).all()  # black
    full = error_image(np.zeros_like(true), np.full_like(true, 255))
    assert (full == np.array([252, 255, 164], np.uint8)).all()  # saturated: pale yellow
    quarter = error_image(np.full_like(true, 16), np.zeros_like(true))  # 4·16/255 ≈ 1/4
    np.testing.assert_allclose(quarter[0, 0, 0], [87, 16, 110], atol=2)
    small, large = (error_image(np.full_like(true, v), np.zeros_like(true)) for v in (8, 24))
    assert small.astype(int).sum() < large.astype(int).sum()
    with pytest.raises(InputError, match="uint8"):
        error_image(true / 255.0, true)
    with pytest.raises(InputError, match="same shape"):
        error_image(true[:1], true)


def test_comparison_grid_rows_and_size(rng):
    true, pred = _frames(rng), _frames(rng)
    picks = [0, 2, 4, 1]
    grid = comparison_grid(true, pred, picks, [f"t{i}" for i in picks])
    cell = SIZE + 2  # contact_sheet's gap is 2
    assert isinstance(grid, Image.Image)
    assert grid.size == (4 * cell - 2, 3 * cell - 2)
    pixels = np.asarray(grid)
    # Second column (no labels there): ours in row 1, the heat map in row 2.
    np.testing.assert_array_equal(pixels[cell : cell + SIZE, cell : cell + SIZE], pred[2])
    np.testing.assert_array_equal(
        pixels[2 * cell : 2 * cell + SIZE, cell : cell + SIZE], error_image(pred[2], true[2])
    )
    assert comparison_grid(None, pred).size == (5 * cell - 2, SIZE)  # default: every frame
    with pytest.raises(InputError, match=r"picks \[0, 9\]"):
        comparison_grid(true, pred, [0, 9])
    with pytest.raises(InputError, match="1 labels for 2 picks"):
        comparison_grid(true, pred, [0, 1], ["a"])


def _speech(rng, frames: int) -> np.ndarray:
    samples = frames * SAMPLE_RATE // FPS
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(samples) / SAMPLE_RATE)
    return (tone + rng.normal(scale=0.01, size=samples)).astype(np.float32)


def test_side_by_side_video_round_trips_with_sound(rng, tmp_path):
    white = np.full((5, SIZE, SIZE, 3), 255, np.uint8)
    gray = np.full((5, SIZE, SIZE + 1, 3), 128, np.uint8)  # odd width: padded to even
    out = side_by_side_video(tmp_path / "sbs.mp4", [white, gray], _speech(rng, 5), ["gt", "us"])
    assert sorted(os.listdir(tmp_path)) == ["sbs.mp4"]  # no partial or temporary files
    media = probe_media(out)
    assert media["video"] and media["audio"] and media["audio_rate"] == SAMPLE_RATE
    frames, fps = read_mp4(out)
    assert frames.shape == (5, SIZE, 2 * SIZE + 2, 3) and fps == FPS
    frames = frames.astype(float)
    assert frames[:, :8, :20].mean() < 140  # the label box on white
    assert frames[:, 20:, :SIZE].mean() > 245
    assert abs(frames[:, 20:, SIZE + 4 : 2 * SIZE - 4].mean() - 128) < 4
    assert frames[:, :, -1].mean() < 20  # the black padding column

    wav = write_wav(tmp_path / "speech.wav", _speech(rng, 5))
    again = side_by_side_video(tmp_path / "from_wav.mp4", [white], wav)
    assert probe_media(again)["audio"]
    silent = side_by_side_video(tmp_path / "silent.mp4", [white])
    assert not probe_media(silent)["audio"]


def test_side_by_side_video_bad_inputs(rng, tmp_path):
    white = np.full((5, SIZE, SIZE, 3), 255, np.uint8)
    path = tmp_path / "x.mp4"
    with pytest.raises(InputError, match=r"audio lasts 1\.000 s but the 5 frames last 0\.200"):
        side_by_side_video(path, [white], _speech(rng, FPS))
    with pytest.raises(InputError, match="column 1 is 4 frames"):
        side_by_side_video(path, [white, white[:4]])
    with pytest.raises(InputError, match="1 labels for 2 columns"):
        side_by_side_video(path, [white, white], labels=["a"])
    with pytest.raises(InputError, match="no columns"):
        side_by_side_video(path, [])
    with pytest.raises(InputError, match="audio has shape"):
        side_by_side_video(path, [white], np.zeros((2, 3200), np.float32))
    assert not path.exists() and os.listdir(tmp_path) == []


# -- table and report ----------------------------------------------------------------------


def test_report_table_and_files(model, camera, rng, tmp_path):
    params = _params(rng, model)
    late = params.replace(jaw_pose=np.roll(np.asarray(params.jaw_pose), 2, axis=0))
    true, pred, mask = _frames(rng, T), _frames(rng, T), _boxes(rng, T)
    report = {
        "cases": {
            "self-driven": score_case(model, pred, late, params, *camera, true, mask, CHUNK),
            "oracle": score_case(model, true, params, params, *camera, true, mask, CHUNK),
            "cross-language": score_case(model, pred, late, params, *camera),
        },
        "identity": "id0",
    }
    self_driven = report["cases"]["self-driven"]
    assert set(self_driven["per_frame"]) >= {"psnr", "head_ssim", "landmark_px"}
    assert "psnr" not in report["cases"]["cross-language"]

    table = summary_table(report)
    assert len(table) == 1 + 3 + 1 and "head PSNR" in table[0] and "mouth px" in table[0]
    rows = dict(zip(("self-driven", "oracle", "cross-language"), table[1:4], strict=True))
    assert rows["self-driven"].count("—") == 0
    assert f"{self_driven['head_psnr']:.2f}" in rows["self-driven"]
    assert f"{self_driven['lip_vertex_error_mm']:.2f}" in rows["self-driven"]
    assert "inf" in rows["oracle"] and "1.000" in rows["oracle"]
    assert rows["cross-language"].count("—") == 4

    grid = comparison_grid(true, pred, [0, 3])
    video = SideBySide([true, pred], _speech(rng, T), ["ground truth", "ours"])
    written = write_eval_report(tmp_path, report, {"self-driven": grid}, {"novel +30°": video})
    names = ["grid_self_driven.png", "metrics.json", "per_frame.npz", "video_novel_p30deg.mp4"]
    assert sorted(written) == names and sorted(os.listdir(tmp_path)) == names

    def no_constants(name):
        raise AssertionError(f"metrics.json holds {name}: not strict JSON")

    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=no_constants)
    assert metrics["identity"] == "id0"
    assert metrics["files"] == [n for n in names if n != "metrics.json"]
    assert metrics["cases"]["oracle"]["psnr"] is None  # inf is not JSON
    assert metrics["cases"]["self-driven"]["psnr"] == self_driven["psnr"]
    assert "per_frame" not in metrics["cases"]["self-driven"]
    again = summary_table(metrics)  # the file keeps the case order; inf reads back as "—"
    assert again[1] == table[1] and again[3] == table[3] and again[2].count("—") == 2
    with np.load(tmp_path / "per_frame.npz") as tracks:
        assert tracks["self_driven/head_psnr"].shape == (T,)
        np.testing.assert_array_equal(
            tracks["cross_language/landmark_px"],
            report["cases"]["cross-language"]["per_frame"]["landmark_px"],
        )
    with Image.open(tmp_path / "grid_self_driven.png") as image:
        assert image.size == grid.size
    assert read_mp4(tmp_path / "video_novel_p30deg.mp4")[0].shape == (T, SIZE, 2 * SIZE, 3)


def test_case_slugs_and_bad_reports(tmp_path):
    assert case_slug("novel view +30°") == "novel_view_p30deg"
    assert case_slug("yaw -30") == "yaw_m30"
    assert case_slug("Self-Driven") == "self_driven"
    with pytest.raises(InputError, match="as 'self-driven' does"):
        write_eval_report(tmp_path, {"cases": {"self-driven": {}, "self driven": {}}})
    with pytest.raises(InputError, match="no 'cases'"):
        summary_table({"psnr": 30.0})
    assert os.listdir(tmp_path) == []
