"""The clip format: round trip, durations, and one-line errors for every bad input."""

import json

import numpy as np
import pytest

from ggtalker_jax.audio.wav import write_wav
from ggtalker_jax.data.clip import Clip, View, read_clip, write_clip
from ggtalker_jax.data.video import probe_media
from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FlameParams


def random_clip(rng, t=10, size=32, n_shape=4, n_exp=3, views=1) -> Clip:
    g = lambda *s: rng.normal(size=s).astype(np.float32) * 0.1
    # Smooth frames (noise would be blurred by H.264 and make round-trip checks loose).
    yy, xx = np.mgrid[0:size, 0:size]
    base = rng.uniform(0, 255, 3)
    frames = np.stack(
        [np.clip(base + 60 * np.sin(xx / 5 + i)[..., None], 0, 255) for i in range(t)]
    ).astype(np.uint8)
    viewmat = np.repeat(np.eye(4, dtype=np.float32)[None], t, 0)
    K = np.repeat(np.eye(3, dtype=np.float32)[None], t, 0)
    masks = (rng.random((t, size, size)) > 0.5).astype(np.uint8)
    return Clip(
        frames=frames,
        audio=(rng.normal(size=t * 640) * 0.1).astype(np.float32),
        flame=FlameParams(
            shape=g(n_shape),
            expression=g(t, n_exp),
            global_pose=g(t, 3),
            neck_pose=g(t, 3),
            jaw_pose=g(t, 3),
            eye_pose=g(t, 6),
            translation=g(t, 3),
        ),
        viewmat=viewmat,
        K=K,
        head_mask=masks,
        torso_mask=1 - masks,
        background=frames[0],
        views=tuple(View(frames[::-1].copy(), viewmat, K) for _ in range(views)),
        meta={
            "fps": 25,
            "width": size,
            "height": size,
            "identity": "id000",
            "language": "en",
            "voice": "en",
            "seed": 1,
            "source": "test",
        },
    )


def test_round_trip(tmp_path, rng):
    clip = random_clip(rng)
    folder = write_clip(tmp_path / "clip", clip)
    back = read_clip(folder)
    assert back.n_frames == clip.n_frames and back.frames.shape == clip.frames.shape
    assert np.abs(back.frames.astype(int) - clip.frames).mean() < 3.0  # near-lossless H.264
    np.testing.assert_allclose(back.audio, clip.audio, atol=1 / 32767 + 1e-6)
    np.testing.assert_array_equal(back.flame.expression, clip.flame.expression)
    np.testing.assert_array_equal(back.head_mask, clip.head_mask)
    np.testing.assert_array_equal(back.background, clip.background)
    assert len(back.views) == 1 and back.views[0].frames.shape == clip.frames.shape
    assert back.meta["identity"] == "id000"
    media = probe_media(folder / "frames.mp4")
    audio = probe_media(folder / "audio.wav")
    assert media["fps"] == 25 and audio["audio_rate"] == 16000
    assert abs(media["duration"] - audio["duration"]) <= 1 / 25 + 1e-6
    audio_only = read_clip(folder, load_video=False)
    assert audio_only.frames is None and audio_only.n_frames == clip.n_frames


def test_refuses_to_overwrite(tmp_path, rng):
    clip = random_clip(rng, views=0)
    write_clip(tmp_path / "clip", clip)
    with pytest.raises(InputError, match="already exists; pass --force"):
        write_clip(tmp_path / "clip", clip)
    write_clip(tmp_path / "clip", clip, force=True)
    assert not (tmp_path / "clip.partial").exists()


def test_bad_clips(tmp_path, rng):
    clip = random_clip(rng, views=0)
    folder = write_clip(tmp_path / "clip", clip)
    with pytest.raises(InputError, match="no such clip folder"):
        read_clip(tmp_path / "nope")
    # Wrong sample rate.
    write_wav(folder / "audio.wav", clip.audio, 22050, force=True)
    with pytest.raises(InputError, match="sample rate is 22050 Hz, expected 16000"):
        read_clip(folder)
    # Frame/audio mismatch: 3 frames' worth of audio missing.
    write_wav(folder / "audio.wav", clip.audio[: -3 * 640], 16000, force=True)
    with pytest.raises(InputError, match=r"10 frames but the audio lasts 7.0 frames"):
        read_clip(folder)
    write_wav(folder / "audio.wav", clip.audio, 16000, force=True)
    # NaN in flame.npz.
    with np.load(folder / "flame.npz") as z:
        data = dict(z)
    data["jaw_pose"][2, 0] = np.nan
    np.savez(folder / "flame.npz", **data)
    with pytest.raises(InputError, match=r"flame.npz: 'jaw_pose' holds 1 NaN"):
        read_clip(folder)
    data["jaw_pose"][2, 0] = 0.0
    data["eye_pose"] = data["eye_pose"][:, :3]
    np.savez(folder / "flame.npz", **data)
    with pytest.raises(InputError, match=r"'eye_pose' has shape \(10, 3\), expected \(10, 6\)"):
        read_clip(folder)
    data["eye_pose"] = np.zeros((10, 6), np.float32)
    np.savez(folder / "flame.npz", **data)
    read_clip(folder)
    # Missing and corrupt media.
    (folder / "frames.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="frames.mp4: not a readable video"):
        read_clip(folder)
    (folder / "frames.mp4").unlink()
    with pytest.raises(InputError, match="frames.mp4: no such file"):
        read_clip(folder)
    (folder / "meta.json").write_text(json.dumps({"video": False}))
    assert read_clip(folder).frames is None
    (folder / "meta.json").write_text("{broken")
    with pytest.raises(InputError, match="meta.json: not valid JSON"):
        read_clip(folder)


def _rewrite_npz(path, **changes):
    with np.load(path) as z:
        data = dict(z)
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    np.savez(path, **data)


@pytest.fixture
def clip_folder(tmp_path, rng):
    """A valid clip with one extra camera, and its in-memory original."""
    clip = random_clip(rng, views=1)
    return write_clip(tmp_path / "clip", clip), clip


def test_corrupt_files_are_one_line(clip_folder, rng):
    """Truncated or garbage files of every kind name the file, never a traceback."""
    folder, _ = clip_folder
    cases = [
        ("flame.npz", lambda b: b[: len(b) // 2], "flame.npz: not readable as a FLAME"),
        ("flame.npz", lambda b: rng.bytes(len(b)), "flame.npz: not readable as a FLAME"),
        ("masks.npz", lambda b: b[: len(b) - 40], "masks.npz: not readable as a masks file"),
        ("views/0/camera.npz", lambda b: b[:30], "camera.npz: not readable as a camera file"),
        ("meta.json", lambda b: b"[1, 2, 3]", "meta.json: holds a JSON list, expected an object"),
        ("meta.json", lambda b: b'"text"', "meta.json: holds a JSON str"),
        ("meta.json", lambda b: b'{"fps": 25, "name": "\xff\xfe"}', "meta.json: not UTF-8"),
        ("bg.png", lambda b: rng.bytes(200), "bg.png: not a readable image"),
        ("bg.png", lambda b: b[:60], "bg.png: not a readable image"),
    ]
    for name, damage, message in cases:
        original = (folder / name).read_bytes()
        (folder / name).write_bytes(damage(original))
        with pytest.raises(InputError, match=message) as err:
            read_clip(folder)
        assert "\n" not in str(err.value)
        (folder / name).write_bytes(original)
        read_clip(folder)  # repaired


def test_extra_camera_data_is_checked(clip_folder):
    folder, clip = clip_folder
    camera = folder / "views" / "0" / "camera.npz"
    bad_view = clip.viewmat.copy()
    bad_view[3, 1, 2] = np.nan
    cases = [
        ({"K": None}, r"camera.npz: missing arrays \['K'\]"),
        ({"viewmat": bad_view}, r"camera.npz: 'viewmat' holds 1 NaN"),
        ({"K": clip.K[:4]}, r"camera.npz: 'K' has shape \(4, 3, 3\), expected \(10, 3, 3\)"),
        ({"viewmat": clip.viewmat[:, :3]}, r"'viewmat' has shape \(10, 3, 4\)"),
        ({"K": clip.K.astype(str)}, r"'K' has dtype <U"),
    ]
    original = camera.read_bytes()
    for changes, message in cases:
        _rewrite_npz(camera, **changes)
        with pytest.raises(InputError, match=message):
            read_clip(folder)
        camera.write_bytes(original)
    read_clip(folder)


def test_views_of_another_size_and_meta_that_contradicts_the_files(clip_folder, rng):
    from ggtalker_jax.data.video import write_mp4

    folder, clip = clip_folder
    view_video = folder / "views" / "0" / "frames.mp4"
    original = view_video.read_bytes()
    write_mp4(view_video, np.zeros((10, 48, 32, 3), np.uint8))
    with pytest.raises(InputError, match=r"views/0/frames.mp4: frames are 32x48, but the clip"):
        read_clip(folder)
    view_video.write_bytes(original)
    meta = json.loads((folder / "meta.json").read_text())
    side = int(rng.integers(33, 200))
    for key, value, message in [
        ("fps", 30, "fps is 30, but the clip format is 25 fps"),
        ("fps", "25", "fps is '25'"),
        ("width", side, f"width is {side}, but frames.mp4 is 32x32"),
        ("height", 32.0, "height is 32.0"),
    ]:
        (folder / "meta.json").write_text(json.dumps({**meta, key: value}))
        with pytest.raises(InputError, match=message):
            read_clip(folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    from PIL import Image

    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(folder / "bg.png")
    with pytest.raises(InputError, match="bg.png: is 32x16, but the frames are 32x32"):
        read_clip(folder)


def test_contradictions_found_in_review(clip_folder):
    """A 30 fps video, a view folder that is not numbered, masks that are not 0/1, complex
    FLAME arrays and a meta.json nested beyond reason: one line each."""
    from ggtalker_jax.data.video import read_mp4, write_mp4

    folder, clip = clip_folder
    video = folder / "frames.mp4"
    original = video.read_bytes()
    write_mp4(video, read_mp4(video)[0], fps=30)
    with pytest.raises(InputError, match=r"frames.mp4: plays at 30 fps, but the clip format is 25"):
        read_clip(folder)
    video.write_bytes(original)
    (folder / "views" / "abc").mkdir()
    with pytest.raises(InputError, match=r"views/abc: not a view folder"):
        read_clip(folder)
    (folder / "views" / "abc").rmdir()
    masks = folder / "masks.npz"
    with np.load(masks) as z:
        head, torso = z["head"].copy(), z["torso"]
    head[0, 0, 0] = 7
    np.savez_compressed(masks, head=head, torso=torso)
    with pytest.raises(InputError, match=r"masks.npz: 'head' holds 7; masks hold only 0 and 1"):
        read_clip(folder)
    np.savez_compressed(masks, head=np.minimum(head, 1), torso=torso)
    flame = folder / "flame.npz"
    with np.load(flame) as z:
        data = dict(z)
    np.savez(flame, **{**data, "jaw_pose": data["jaw_pose"].astype(np.complex64)})
    with pytest.raises(InputError, match=r"'jaw_pose' has dtype complex64, expected real numbers"):
        read_clip(folder)
    np.savez(flame, **data)
    (folder / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="meta.json: nested too deeply"):
        read_clip(folder)
