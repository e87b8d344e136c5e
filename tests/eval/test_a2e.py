"""A2E evaluation: the lip measures on known answers, the lip geometry of an opening jaw, and
:func:`evaluate_a2e` end to end with oracle speakers (the true motion scores perfectly, the
same motion three frames late scores worse), its files and its table.

The clips are synthetic (smooth random expression and jaw on random shapes, noise for audio),
2 s or less: no world, no network.
"""

import json

import numpy as np
import pytest
from PIL import Image

from ggtalker_jax.data.a2e import SpeechClip
from ggtalker_jax.errors import InputError
from ggtalker_jax.eval.a2e import (
    correlation,
    evaluate_a2e,
    lip_geometry,
    lip_vertex_error,
    summary_table,
    velocity_error,
)
from ggtalker_jax.flame import load_flame

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 fps
FPS = 25


@pytest.fixture(scope="module")
def model():
    return load_flame(None)


# -- the measures on known answers ---------------------------------------------------------


def _lips(rng, t=6, k=9):
    return rng.normal(scale=0.01, size=(t, k, 3))  # metres


def test_lip_vertex_error_known_answers(rng):
    true = _lips(rng)
    direction = rng.normal(size=3)
    shift = 0.002 * direction / np.linalg.norm(direction)  # 2 mm
    assert lip_vertex_error(true + shift, true) == pytest.approx(2.0, rel=1e-9)
    assert lip_vertex_error(true, true) == 0.0

    t, k = true.shape[:2]
    pred = true.copy()
    frame, vertex = int(rng.integers(t)), int(rng.integers(k))
    pred[frame, vertex] += 0.005 * direction / np.linalg.norm(direction)
    assert lip_vertex_error(pred, true) == pytest.approx(5.0 / t, rel=1e-9)


def test_velocity_error_known_answers(rng):
    true = _lips(rng)
    t, k = true.shape[:2]
    direction = rng.normal(size=3)
    unit = direction / np.linalg.norm(direction)
    assert velocity_error(true + 0.003 * unit, true) == pytest.approx(0.0, abs=1e-9)

    # Drifting 1 mm per frame: every frame-to-frame motion is 1 mm off.
    drift = 0.001 * np.arange(t)[:, None, None] * unit
    assert velocity_error(true + drift, true) == pytest.approx(1.0, rel=1e-9)

    # One vertex 5 mm off at one interior frame: two of the (T-1)*K motions are 5 mm off.
    pred = true.copy()
    frame, vertex = int(rng.integers(1, t - 1)), int(rng.integers(k))
    pred[frame, vertex] += 0.005 * unit
    assert velocity_error(pred, true) == pytest.approx(2 * 5.0 / ((t - 1) * k), rel=1e-9)


def test_correlation_known_answers(rng):
    x = rng.normal(size=50)
    scale, offset = float(rng.uniform(0.1, 10)), float(rng.normal())
    assert correlation(scale * x + offset, x) == pytest.approx(1.0, abs=1e-12)
    assert correlation(-x, x) == pytest.approx(-1.0, abs=1e-12)
    assert correlation(np.full(50, offset), x) == 0.0
    assert correlation(x, np.full(50, offset)) == 0.0
    assert abs(correlation(rng.normal(size=50), x)) < 0.9


def test_lip_geometry_opens_with_the_jaw(model, rng):
    t = 6
    shape = rng.normal(scale=0.5, size=model.n_shape).astype(np.float32)
    expression = rng.normal(scale=0.05, size=(t, model.n_exp)).astype(np.float32)
    expression[:] = expression[:1]  # the same face, only the jaw moves
    jaw = np.zeros((t, 3), np.float32)
    jaw[:, 0] = np.linspace(0.0, 0.3, t)
    lips, opening = lip_geometry(model, shape, expression, jaw)
    assert lips.shape == (t, len(np.asarray(model.masks["lips"])), 3)
    assert opening.shape == (t,)
    assert np.all(np.diff(opening) > 1e-4), opening  # > 0.1 mm per step
    # The lower lip moves with the jaw: lip vertices are displaced.
    assert np.abs(lips[-1] - lips[0]).max() > 1e-3


# -- evaluate_a2e with oracle speakers -----------------------------------------------------


def _smooth(rng, t: int, n: int) -> np.ndarray:
    """``[t, n]`` smooth random series in [-1, 1]: three sinusoids of 0.5-3 Hz each."""
    time = np.arange(t)[:, None, None] / FPS
    freq = rng.uniform(0.5, 3.0, size=(1, n, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, n, 3))
    return (np.sin(2 * np.pi * freq * time + phase).sum(-1) / 3).astype(np.float32)


def _clip(rng, model, name: str, t: int, language: str) -> SpeechClip:
    jaw = np.zeros((t, 3), np.float32)
    jaw[:, 0] = 0.12 + 0.1 * _smooth(rng, t, 1)[:, 0]  # open between 0.02 and 0.22 rad
    return SpeechClip(
        name=name,
        identity=name.split("/")[0],
        language=language,
        audio=rng.uniform(-0.5, 0.5, size=t * SAMPLES_PER_FRAME).astype(np.float32),
        shape=rng.normal(scale=0.5, size=model.n_shape).astype(np.float32),
        expression=(0.3 * _smooth(rng, t, model.n_exp)).astype(np.float32),
        jaw_pose=jaw,
        global_pose=(0.05 * _smooth(rng, t, 3)).astype(np.float32),
    )


class Oracle:
    """A speaker that knows each clip's true motion (found by its audio), optionally late."""

    def __init__(self, clips, delay: int = 0):
        self.truth = {c.audio.tobytes(): c for c in clips}
        self.delay = delay
        self.calls = []

    def _late(self, x: np.ndarray) -> np.ndarray:
        if self.delay == 0:
            return x
        return np.concatenate([np.repeat(x[:1], self.delay, 0), x[: -self.delay]])

    def motion_batch(self, audio, key, n_frames=None, identity=None):
        clips = [self.truth[np.asarray(a, np.float32).tobytes()] for a in audio]
        self.calls.append((len(clips), n_frames, identity))
        return {
            field: np.stack([self._late(getattr(c, field)) for c in clips])
            for field in ("expression", "jaw_pose", "global_pose")
        }


@pytest.fixture
def sets(rng, model):
    return {
        "voices": [
            _clip(rng, model, "v0/clip000", 40, "en"),
            _clip(rng, model, "v1/clip000", 40, "de"),
        ],
        "languages": [_clip(rng, model, "l0/clip000", 48, "it")],
    }


def test_evaluate_a2e_scores_oracles_and_writes_the_report(model, sets, key, tmp_path):
    clips = [c for s in sets.values() for c in s]
    speakers = {"oracle": Oracle(clips), "late": Oracle(clips, delay=3)}
    report = evaluate_a2e(speakers, sets, model, key, out_dir=tmp_path)

    assert report["frames"] == 40 + 40 + 48
    assert report["sets"]["voices"]["clips"] == 2
    assert report["sets"]["voices"]["languages"] == ["de", "en"]
    assert report["sets"]["languages"]["languages"] == ["it"]
    # Clips of one length are one batch of the speaker, with that many frames.
    assert sorted(speakers["oracle"].calls) == [(1, 48, None), (2, 40, None)]
    for set_name in sets:
        truth, late = report["sets"][set_name]["oracle"], report["sets"][set_name]["late"]
        assert truth["opening_r"] == pytest.approx(1.0, abs=1e-6)
        assert truth["lip_vertex_error_mm"] == pytest.approx(0.0, abs=1e-6)
        assert truth["velocity_error_mm"] == pytest.approx(0.0, abs=1e-6)
        assert truth["opening_mm"] == pytest.approx(truth["true_opening_mm"], rel=1e-6)
        assert truth["opening_mm"] > 1.0  # the jaw is open: millimetres, not metres
        assert late["opening_r"] < truth["opening_r"] - 0.02
        assert late["lip_vertex_error_mm"] > 0.1
        assert late["velocity_error_mm"] > 0.01

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == report  # plain JSON: every number a float or an int
    assert set(metrics["sets"]) == {"voices", "languages"}
    assert all({"oracle", "late"} <= set(row) for row in metrics["sets"].values())
    with Image.open(tmp_path / "opening.png") as image:
        image.load()
        assert image.format == "PNG" and image.size == (900, 2 * 220)
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels != 255).any(axis=-1).mean() > 0.01  # something was drawn

    table = summary_table(report)
    assert len(table) == 1 + 2 * 2
    assert "opening r" in table[0]
    rows = table[1:]
    for set_label in ("held-out voices", "unseen languages"):
        models = [r for r in rows if r.startswith(set_label)]
        assert len(models) == 2
        assert any(" oracle " in r and "1.000" in r for r in models)
        assert any(" late " in r for r in models)


def test_evaluate_a2e_without_clips(model, key, tmp_path):
    with pytest.raises(InputError, match="no held-out clips"):
        evaluate_a2e({"oracle": Oracle([])}, {"voices": [], "languages": []}, model, key, tmp_path)
    assert not (tmp_path / "metrics.json").exists()
