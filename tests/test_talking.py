"""The talking-head plumbing that needs no trained network: camera specs and orbits, pose
looping, map upsampling, adaptation clip checks, the identity folder's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.camera import orbit_viewmat, portrait_camera
from ggtalker_jax.infer import CameraSpec, loop_index, parse_camera, speech_audio


@pytest.mark.parametrize(
    "spec, want",
    [
        ("yaw=30,pitch=-10", CameraSpec(30.0, -10.0)),
        ("pitch=5", CameraSpec(0.0, 5.0)),
        ("", CameraSpec()),
    ],
)
def test_parse_camera(spec, want):
    assert parse_camera(spec) == want


@pytest.mark.parametrize(
    "spec, words",
    [
        ("yaw:30", "cannot read"),
        ("roll=3", "cannot read"),
        ("yaw=left", "not a number"),
        ("yaw=120", "within ±90"),
        ("yaw=nan", "within ±90"),
    ],
)
def test_parse_camera_refuses(spec, words):
    with pytest.raises(InputError, match=words):
        parse_camera(spec)


def test_orbit_matches_portrait_cameras(rng):
    target = rng.normal(size=3) * 0.05
    yaw0, yaw, pitch = rng.uniform(-0.2, 0.2), rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3)
    start, _ = portrait_camera(target, 128, yaw=yaw0)
    turned, _ = portrait_camera(target, 128, yaw=yaw0 + yaw)
    np.testing.assert_allclose(orbit_viewmat(start, target, yaw, 0.0), turned, atol=1e-5)
    front, _ = portrait_camera(target, 128)
    lifted, _ = portrait_camera(target, 128, pitch=pitch)
    np.testing.assert_allclose(orbit_viewmat(front, target, 0.0, pitch), lifted, atol=1e-5)


def test_loop_index_plays_back_and_forth(rng):
    n = int(rng.integers(3, 9))
    idx = loop_index(5 * n, n)
    assert idx.min() == 0 and idx.max() == n - 1
    assert np.all(np.abs(np.diff(idx)) <= 1)  # never jumps
    np.testing.assert_array_equal(idx[:n], np.arange(n))
    np.testing.assert_array_equal(loop_index(4, 1), np.zeros(4))


def test_speech_audio_needs_one_source(tmp_path):
    with pytest.raises(InputError, match="--audio FILE or as --text"):
        speech_audio(None, None)
    with pytest.raises(InputError, match="--audio FILE or as --text"):
        speech_audio(tmp_path / "a.wav", "hello")
    with pytest.raises(InputError, match="no such file|not found|missing"):
        speech_audio(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="voice"):
        speech_audio(text="hello", voice="no-such-voice")


def test_upsample_map_keeps_the_delta(rng):
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.models.gaussian_head import upsample_map
    from ggtalker_jax.render.head import make_head_template

    model = load_flame(None)
    coarse, fine = make_head_template(model, 16), make_head_template(model, 32)
    # The base map moves to the base map; the same grid is the identity.
    np.testing.assert_allclose(upsample_map(coarse.base_map, coarse, fine), fine.base_map)
    delta = rng.normal(size=coarse.base_map.shape).astype(np.float32)
    raw = (coarse.base_map + delta) * coarse.layout.mask[..., None]
    np.testing.assert_allclose(upsample_map(raw, coarse, coarse), raw, atol=1e-6)
    # A constant delta stays constant on every covered texel of the finer grid.
    raw = (coarse.base_map + 0.25) * coarse.layout.mask[..., None]
    moved = upsample_map(raw, coarse, fine) - fine.base_map
    covered = fine.layout.mask
    assert np.allclose(moved[covered & (np.abs(moved).sum(-1) > 0)], 0.25, atol=1e-5)


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    """Two tiny clips of one person at different resolutions, and one without masks."""
    from ggtalker_jax.data.clip import write_clip
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.world.person import ClipSpec, person_clips

    model = load_flame(None)
    root = tmp_path_factory.mktemp("clips")
    (a,) = person_clips(model, [ClipSpec("a", 0.8)], 32, seed=3)
    (b,) = person_clips(model, [ClipSpec("b", 0.8, index=1)], 48, seed=3)
    write_clip(root / "a", a)
    write_clip(root / "b", b)
    import dataclasses

    write_clip(root / "nomask", dataclasses.replace(a, head_mask=None, torso_mask=None))
    return model, root


def test_adapt_clips_refuse_bad_input(two_clips):
    from ggtalker_jax.data.adapt import load_adapt_clips

    model, root = two_clips
    with pytest.raises(InputError, match="one resolution"):
        load_adapt_clips([root / "a", root / "b"], model, 4)
    with pytest.raises(InputError, match="no masks.npz"):
        load_adapt_clips([root / "nomask"], model, 4)
    with pytest.raises(InputError, match="no such clip folder"):
        load_adapt_clips([root / "missing"], model, 4)
    with pytest.raises(InputError, match="no clips given"):
        load_adapt_clips([], model, 4)
    with pytest.raises(InputError, match="at least 40"):
        load_adapt_clips([root / "a"], model, 20)
    clips = load_adapt_clips([root / "a"], model, 4)
    assert clips.n_frames == 20 and len(clips.heldout) == 5
    assert not set(clips.heldout) & set(clips.train)


def test_identity_folder_refusals(tmp_path):
    from ggtalker_jax.identity import claim_identity_dir, read_identity_info

    with pytest.raises(InputError, match="no such folder"):
        read_identity_info(tmp_path / "none")
    (tmp_path / "half" / "phases").mkdir(parents=True)
    with pytest.raises(InputError, match="rerun the same `ggtalker adapt`"):
        read_identity_info(tmp_path / "half")
    done = tmp_path / "done"
    done.mkdir()
    (done / "identity.json").write_text(json.dumps({"kind": "ggtalker-identity", "format": 99}))
    with pytest.raises(InputError, match="format 99"):
        read_identity_info(done)
    with pytest.raises(InputError, match="pass --force"):
        claim_identity_dir(done, force=False)
    (done / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        claim_identity_dir(done, force=True)
    (done / "notes.txt").unlink()
    claim_identity_dir(done, force=True)
    assert not (done / "identity.json").exists()


def test_cli_refuses_bad_infer_input(tmp_path, capsys):
    from ggtalker_jax.cli import main

    out = tmp_path / "x.mp4"
    out.write_bytes(b"")
    rc = main(["infer", "--identity", str(tmp_path), "--text", "hi", "--out", str(out)])
    assert rc == 2 and "pass --force" in capsys.readouterr().err
    rc = main(["infer", "--identity", str(tmp_path / "none"), "--text", "hi", "--out",
               str(tmp_path / "y.mp4"), "--camera", "yaw=1000"])  # fmt: skip
    assert rc == 2 and "within ±90" in capsys.readouterr().err
    rc = main(["infer", "--identity", str(tmp_path / "none"), "--text", "hi", "--voice", "zz-qq",
               "--out", str(tmp_path / "y.mp4")])  # fmt: skip
    assert rc == 2 and "zz-qq" in capsys.readouterr().err
    rc = main(["infer", "--identity", str(tmp_path / "none"), "--text", "hi", "--out",
               str(tmp_path / "y.mp4")])  # fmt: skip
    assert rc == 2 and "no such folder" in capsys.readouterr().err


def test_adapt_refuses_a_clip_without_audio(two_clips, tmp_path):
    import shutil

    from ggtalker_jax.data.adapt import load_adapt_clips

    model, root = two_clips
    clip = tmp_path / "silent"
    shutil.copytree(root / "a", clip)
    (clip / "audio.wav").unlink()
    with pytest.raises(InputError, match="audio.wav"):
        load_adapt_clips([clip], model, 4)
