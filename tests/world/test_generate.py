"""The synthetic world end to end: clip files and durations, lips against the sound, novel views
of the same instant, languages, determinism, resume, bad input, and the TFDS read path.

Worlds here are tiny (64 px, about a second) so the whole file runs in seconds; audio-only
worlds (``video=False``) stand in wherever frames are not needed.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.data.clip import read_clip
from ggtalker_jax.data.video import probe_media
from ggtalker_jax.errors import InputError
from ggtalker_jax.eval import inner_lip_distance, landmarks_on_mask, lip_energy_report
from ggtalker_jax.flame import flame_forward, load_flame
from ggtalker_jax.types import FPS, SAMPLE_RATE
from ggtalker_jax.world.folder import write_world
from ggtalker_jax.world.generate import clip_name, iter_world
from ggtalker_jax.world.speech import Phoneme
from ggtalker_jax.world.visemes import phonemes_to_visemes

SIZE = 64  # one frame size for every rendering test here: one compilation


@pytest.fixture(scope="module")
def model():
    return load_flame()


@pytest.fixture(scope="module")
def world_seed():
    return int(os.environ["GGTALKER_TEST_SEED"]) % 1000


@pytest.fixture(scope="module")
def video_world(tmp_path_factory, model, world_seed):
    """Two identities (en, de) x one clip of 1.2 s at 64 px, one extra camera."""
    config = WorldConfig(
        identities=2,
        clips_per_identity=1,
        seconds=1.2,
        resolution=SIZE,
        seed=world_seed,
        languages=("en", "de"),
        views=1,
    )
    out = tmp_path_factory.mktemp("world") / "w"
    written = write_world(out, model, config, progress=False)
    return out, config, written


def _landmarks(model, clip):
    return np.asarray(flame_forward(model, clip.flame).landmarks)


def test_clip_files_exist_and_durations_agree(video_world):
    out, config, written = video_world
    assert [p.relative_to(out).as_posix() for p in written] == ["id000/clip000", "id001/clip000"]
    stamp = json.loads((out / "world.json").read_text())
    assert stamp["config"]["seconds"] == config.seconds
    for folder in written:
        for name in (
            "frames.mp4",
            "audio.wav",
            "flame.npz",
            "masks.npz",
            "bg.png",
            "meta.json",
            "views/0/frames.mp4",
            "views/0/camera.npz",
            "views/0/masks.npz",
        ):
            assert (folder / name).is_file(), folder / name
        assert not list(out.rglob("*.partial"))
        video, audio = probe_media(folder / "frames.mp4"), probe_media(folder / "audio.wav")
        assert video["video"] and video["fps"] == FPS
        assert audio["audio"] and audio["audio_rate"] == SAMPLE_RATE
        assert abs(video["duration"] - audio["duration"]) <= 1.0 / FPS, (video, audio)
        assert abs(video["duration"] - config.seconds) <= 1.0 / FPS
        view = probe_media(folder / "views/0/frames.mp4")
        assert abs(view["duration"] - audio["duration"]) <= 1.0 / FPS
        clip = read_clip(folder)  # validates frame/audio/FLAME/mask consistency
        assert clip.frames.shape == (config.n_frames, SIZE, SIZE, 3)
        assert clip.meta["language"] in ("en", "de") and clip.meta["fps"] == FPS
        # The head and the torso are drawn over the background, in every frame.
        assert clip.head_mask.reshape(config.n_frames, -1).mean(1).min() > 0.05
        assert clip.torso_mask.reshape(config.n_frames, -1).mean(1).min() > 0.02
        head, torso = clip.head_mask.astype(bool), clip.torso_mask.astype(bool)
        diff = np.abs(clip.frames.astype(int) - clip.background.astype(int)).sum(-1)
        assert np.median(diff[head]) > 30 and np.median(diff[~head & ~torso]) < 12


def test_novel_view_shows_the_same_head(video_world, model):
    out, _, written = video_world
    for folder in written:
        clip = read_clip(folder)
        landmarks = _landmarks(model, clip)  # [T, 68, 3]
        view = clip.views[0]
        assert not np.allclose(view.viewmat, clip.viewmat)  # a different camera
        for viewmat, K, mask, frames in (
            (clip.viewmat, clip.K, clip.head_mask, clip.frames),
            (view.viewmat, view.K, view.head_mask, view.frames),
        ):
            # One pixel (6 mm here) of tolerance: silhouette landmarks (nose, brows in
            # profile) may round to the pixel beside the head.
            on_head = landmarks_on_mask(landmarks, viewmat, K, mask, radius=1)
            assert on_head.mean() >= 0.9, on_head.mean()
            # ...and in the decoded video those pixels differ from the background (a head
            # pixel may match the backdrop's colour by chance, hence 85%).
            drawn = np.abs(frames.astype(int) - clip.background.astype(int)).sum(-1) > 10
            on_drawn = landmarks_on_mask(landmarks, viewmat, K, drawn, radius=1)
            assert on_drawn.mean() >= 0.85, on_drawn.mean()
            # Control: the same landmarks 20 cm to the side miss the head.
            moved = landmarks + np.array([0.2, 0.0, 0.0], np.float32)
            assert landmarks_on_mask(moved, viewmat, K, mask, radius=1).mean() < 0.5


@pytest.fixture(scope="module")
def audio_world(model, world_seed):
    """Four speakers (en, de, fr, es), one 3 s clip each, audio and FLAME only (no frames)."""
    config = WorldConfig(
        identities=4,
        clips_per_identity=1,
        seconds=3.0,
        seed=world_seed,
        languages=("en", "de", "fr", "es"),
        video=False,
    )
    return dict(iter_world(model, config))


def test_lips_follow_speech(audio_world, model):
    reports = {}
    for clip in audio_world.values():
        assert clip.frames is None and clip.n_frames == 75
        opening = inner_lip_distance(_landmarks(model, clip))  # metres, [T]
        reports[clip.meta["language"]] = lip_energy_report(opening, clip.audio)
    print("mouth opening vs energy:", {k: round(v["r"], 3) for k, v in reports.items()})
    rs = [rep["r"] for rep in reports.values()]
    # Over 60 seeds: mean r 0.59-0.74, the worst single clip 0.46.
    assert np.mean(rs) > 0.5 and min(rs) > 0.3, reports
    # Open in loud speech, near closed in silence (at rest the inner lips are 0.3 mm apart).
    for language, rep in reports.items():
        assert rep["speech_mm"] > 4.0, (language, rep)
    # Silence is pooled over the four clips: a clip may hold only one or two silent frames,
    # where a closing mouth can still be 2-3.6 mm open (2% of clips over 400 seeds). Pooled,
    # the worst of 400 seeds was 0.81 mm, 8% of the loud-speech opening.
    silent = sum(rep["silent_frames"] for rep in reports.values())
    assert silent >= 4, reports
    silence_mm = (
        sum(
            rep["silence_mm"] * rep["silent_frames"]
            for rep in reports.values()
            if rep["silent_frames"]
        )
        / silent
    )
    speech_mm = np.mean([rep["speech_mm"] for rep in reports.values()])
    assert silence_mm < 2.0 and silence_mm < 0.25 * speech_mm, (silence_mm, speech_mm, reports)


def test_languages_give_different_visemes(audio_world, model, world_seed):
    def visemes(clip):
        phonemes = [Phoneme(s, a, b) for s, a, b in clip.meta["phonemes"]]
        return [span.name for span in phonemes_to_visemes(phonemes) if span.name != "sil"]

    sequences = {clip.meta["language"]: visemes(clip) for clip in audio_world.values()}
    assert len(sequences) == 4 and all(len(s) > 10 for s in sequences.values())
    assert len({tuple(s) for s in sequences.values()}) == 4
    # The same person (same seed, same identity) speaking German instead of English.
    config = WorldConfig(identities=1, clips_per_identity=1, seconds=3.0, seed=world_seed)
    english = dict(iter_world(model, dataclasses.replace(config, video=False)))
    german = dict(iter_world(model, dataclasses.replace(config, video=False, languages=("de",))))
    (en_clip,), (de_clip,) = english.values(), german.values()
    assert en_clip.meta["language"] == "en" and de_clip.meta["language"] == "de"
    assert visemes(en_clip) != visemes(de_clip)
    np.testing.assert_array_equal(en_clip.flame.shape, de_clip.flame.shape)  # same person


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_world_is_deterministic(video_world, model, tmp_path):
    out, config, _ = video_world
    again = tmp_path / "again"
    write_world(again, model, config, progress=False)
    first, second = _files(out), _files(again)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name  # flame.npz, audio.wav, even the mp4s


def test_resume_redoes_missing_and_partial_clips(model, tmp_path, world_seed):
    config = WorldConfig(
        identities=2, clips_per_identity=2, seconds=1.0, seed=world_seed, video=False
    )
    out = tmp_path / "w"
    write_world(out, model, config, progress=False)
    before = _files(out)
    kept = out / clip_name(1, 1) / "flame.npz"
    kept_mtime = kept.stat().st_mtime_ns
    # An interrupted run: one clip gone, another half written (only its .partial exists).
    shutil.rmtree(out / clip_name(0, 1))
    shutil.rmtree(out / clip_name(1, 0))
    partial = out / "id001" / "clip000.partial"
    partial.mkdir()
    (partial / "audio.wav").write_bytes(b"truncated")
    written = write_world(out, model, config, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        clip_name(0, 1),
        clip_name(1, 0),
    ]
    assert not partial.exists()
    assert kept.stat().st_mtime_ns == kept_mtime  # finished clips are not touched
    assert _files(out) == before  # and the redone ones are identical
    # Nothing left to do: a rerun writes nothing.
    assert write_world(out, model, config, progress=False) == []


def test_refuses_a_folder_holding_something_else(model, tmp_path):
    config = WorldConfig(identities=1, clips_per_identity=1, seconds=0.6, video=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for force in (False, True):  # --force never removes what ggtalker did not write
        with pytest.raises(InputError, match="holds notes.txt, which ggtalker did not write"):
            write_world(other, model, config, force=force, progress=False)
    assert (other / "notes.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    world = tmp_path / "world"
    write_world(world, model, config, progress=False)
    changed = dataclasses.replace(config, seed=config.seed + 1)
    with pytest.raises(InputError, match="already holds a different world .*; pass --force"):
        write_world(world, model, changed, progress=False)
    write_world(world, model, changed, force=True, progress=False)
    assert json.loads((world / "world.json").read_text())["config"]["seed"] == config.seed + 1
    # A user's file inside a world makes it more than a world: refused, --force or not.
    (world / "id000" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds id000, which ggtalker did not write"):
        write_world(world, model, config, force=True, progress=False)
    assert (world / "id000" / "notes.txt").read_text() == "mine"
    (world / "id000" / "notes.txt").unlink()
    (world / "id000" / "clip000" / "notes.txt").write_text("mine")  # even deep inside a clip
    with pytest.raises(InputError, match="holds id000, which ggtalker did not write"):
        write_world(world, model, config, force=True, progress=False)
    assert (world / "id000" / "clip000" / "notes.txt").read_text() == "mine"


def test_a_stamp_without_finished_clips_does_not_need_force(model, tmp_path):
    """A run that failed or was killed before its first clip finished leaves world.json and
    perhaps a .partial clip: a corrected rerun with other settings just starts over."""
    config = WorldConfig(identities=1, clips_per_identity=1, seconds=0.6, video=False)
    out = tmp_path / "w"
    write_world(out, model, config, progress=False)
    shutil.rmtree(out / clip_name(0, 0))
    (out / "id000" / "clip000.partial").mkdir()
    changed = dataclasses.replace(config, seconds=0.8)
    assert len(write_world(out, model, changed, progress=False)) == 1
    assert json.loads((out / "world.json").read_text())["config"]["seconds"] == 0.8
    assert not (out / "id000" / "clip000.partial").exists()


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ggtalker_jax.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--languages", "en,zz"], "unknown espeak voice 'zz'"),
        (["--resolution", "65"], "resolution=65 is invalid"),
        (["--seconds", "0"], "seconds=0.0 is invalid"),
        (["--views", "99"], "views=99 is invalid"),
    ],
)
def test_world_cli_bad_input_is_one_line(tmp_path, args, message):
    out = _cli("world", "--out", "w", "--no-video", "--seconds", "1", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_world_cli_refuses_other_folder_even_with_force(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "keep.txt").write_text("x")
    args = ("world", "--out", "w", "--no-video", "--identities", "1", "--seconds", "0.6")
    for extra in ((), ("--force",)):
        out = _cli(*args, *extra, cwd=tmp_path)
        assert out.returncode == 2 and "which ggtalker did not write" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert (tmp_path / "w" / "keep.txt").read_text() == "x"
    (tmp_path / "w" / "keep.txt").unlink()
    out = _cli(*args, "--clips-per-identity", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "1 clips (1 new, 0 kept)" in out.stdout
    assert (tmp_path / "w" / "id000" / "clip000" / "flame.npz").is_file()
    out = _cli(*args, "--clips-per-identity", "1", "--seed", "5", "--force", cwd=tmp_path)
    assert out.returncode == 0 and "1 clips (1 new, 0 kept)" in out.stdout, out.stderr


def test_tfds_build_and_read_without_tensorflow(video_world, tmp_path):
    pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is not installed")
    pytest.importorskip("array_record", reason="array-record is not installed")
    from ggtalker_jax.data.tfds_builder import build_clip_dataset

    out, config, written = video_world
    source = build_clip_dataset(out, tmp_path / "tfds")["train"]
    assert len(source) == len(written)
    examples = sorted((source[i] for i in range(len(source))), key=lambda e: e["identity"])
    for folder, example in zip(written, examples, strict=True):
        clip = read_clip(folder)
        assert example["identity"] in (b"id000", b"id001", "id000", "id001")
        np.testing.assert_array_equal(example["frames"], clip.frames)
        np.testing.assert_array_equal(example["head_mask"], clip.head_mask)
        np.testing.assert_allclose(example["expression"], clip.flame.expression)
        np.testing.assert_allclose(example["viewmat"], clip.viewmat)
        assert example["audio"].shape == clip.audio.shape
    assert "tensorflow" not in sys.modules  # read through array_record, no TensorFlow
    # Built once: opening it again reads the same data without rebuilding.
    again = build_clip_dataset(out, tmp_path / "tfds")["train"]
    assert len(again) == len(source)


def test_world_cli_reads_the_config_tree_and_flags_win(tmp_path):
    """``ggtalker world`` takes --config/--set like every command; its flags are shortcuts
    for world.* fields and override --set."""
    args = ["world", "--out", "w", "--set", "world.video=false", "--set", "world.seconds=2"]
    args += ["--set", "world.identities=3", "--identities", "1", "--clips-per-identity", "1"]
    out = _cli(*args, "--seconds", "0.6", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "1 clips (1 new, 0 kept) of 0.6 s" in out.stdout and "audio + FLAME only" in out.stdout
    stamp = json.loads((tmp_path / "w" / "world.json").read_text())["config"]
    assert (stamp["identities"], stamp["seconds"], stamp["video"]) == (1, 0.6, False)
    bad = _cli("world", "--out", "w2", "--set", "world.views=99", cwd=tmp_path)
    assert bad.returncode == 2 and "world.views=99 is invalid" in bad.stderr


def test_kill_windows_of_the_stamp_and_of_a_clip_rename(model, tmp_path):
    """A first run killed while writing world.json (only its temporary file left), or right
    before a clip's rename (a complete clip000.partial): a rerun with other settings needs no
    --force; a user's own world.json alone in a folder is still refused."""
    config = WorldConfig(identities=1, clips_per_identity=1, seconds=0.6, video=False)
    out = tmp_path / "w"
    out.mkdir()
    (out / ".world.abc123.partial.json").write_text("{")
    assert len(write_world(out, model, config, progress=False)) == 1
    shutil.rmtree(out / "id000" / "clip000")
    write_world(tmp_path / "w2", model, config, progress=False)
    shutil.copytree(tmp_path / "w2" / "id000" / "clip000", out / "id000" / "clip000.partial")
    changed = dataclasses.replace(config, seconds=0.8)
    assert len(write_world(out, model, changed, progress=False)) == 1
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "world.json").write_text('{"my": "notes"}')
    with pytest.raises(InputError, match="holds world.json, which ggtalker did not write"):
        write_world(mine, model, config, force=True, progress=False)
    assert (mine / "world.json").read_text() == '{"my": "notes"}'
