"""A2E data: procedural splits (deterministic, the same in worker processes, disjoint people,
the right languages), clip folders split by language and speaker, training windows that are
exact slices of their clips, and the normalisation statistics.

Sizes are tiny: 2 s clips, 1-3 identities; windows come from synthetic clips built here.
"""

import os

import numpy as np
import pytest

from ggtalker_jax.config import A2EDataConfig
from ggtalker_jax.data.a2e import (
    SpeechClip,
    WindowSource,
    feature_statistics,
    folder_clips,
    motion_statistics,
    procedural_clips,
    world_for_split,
)
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame import load_flame
from ggtalker_jax.models.a2e import STD_FLOOR, MotionLayout
from ggtalker_jax.world.folder import write_world

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 fps


@pytest.fixture(scope="module")
def model():
    return load_flame(None)


@pytest.fixture(scope="module")
def seed():
    # Module fixtures cannot use `rng`; the run seed still varies the worlds per run.
    return int(os.environ["GGTALKER_TEST_SEED"]) % 1000


def _same_clips(a: list[SpeechClip], b: list[SpeechClip]) -> None:
    assert [c.name for c in a] == [c.name for c in b]
    assert [c.identity for c in a] == [c.identity for c in b]
    for x, y in zip(a, b, strict=True):
        assert x.language == y.language
        for field in ("audio", "shape", "expression", "jaw_pose", "global_pose"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)


# -- procedural splits ---------------------------------------------------------------------


def test_procedural_clips_are_deterministic_and_the_same_in_workers(model, seed):
    config = A2EDataConfig(
        identities=2, clips_per_identity=1, seconds=2.0, languages=("en", "de"), seed=seed
    )
    first = procedural_clips(model, config, "train", workers=1)
    assert len(first) == 2
    assert all(c.audio.shape == (c.n_frames * SAMPLES_PER_FRAME,) for c in first)
    assert all(np.abs(c.expression).max() > 0 and c.jaw_pose[:, 0].max() > 0 for c in first)
    _same_clips(first, procedural_clips(model, config, "train", workers=1))
    _same_clips(first, procedural_clips(model, config, "train", workers=2))


def test_splits_are_disjoint_people_speaking_their_languages(model, seed):
    config = A2EDataConfig(
        identities=2,
        clips_per_identity=1,
        seconds=2.0,
        languages=("en", "de"),
        heldout_identities=1,
        heldout_languages=("it", "fr"),
        heldout_clips=1,
        seed=seed,
    )
    splits = {s: procedural_clips(model, config, s) for s in ("train", "voices", "languages")}
    assert [len(splits[s]) for s in ("train", "voices", "languages")] == [2, 1, 2]
    assert [c.language for c in splits["train"]] == ["en", "de"]  # identity i: languages[i % 2]
    assert {c.language for c in splits["voices"]} <= set(config.languages)
    assert sorted(c.language for c in splits["languages"]) == ["fr", "it"]

    names = {s: {c.identity for c in clips} for s, clips in splits.items()}
    assert not names["train"] & names["voices"]
    assert not names["train"] & names["languages"]
    assert not names["voices"] & names["languages"]
    # Different people, not only different labels: no two clips of different splits share
    # a face shape.
    shapes = [(s, c.shape) for s, clips in splits.items() for c in clips]
    for i, (s1, a) in enumerate(shapes):
        for s2, b in shapes[i + 1 :]:
            if s1 != s2:
                assert not np.allclose(a, b), (s1, s2)

    no_voices = A2EDataConfig(
        identities=1, clips_per_identity=1, seconds=1.0, heldout_identities=0, seed=seed
    )
    assert procedural_clips(model, no_voices, "voices") == []
    with pytest.raises(InputError, match="'test'"):
        world_for_split(config, "test")


def test_procedural_split_equals_the_world_written_to_disk(model, seed, tmp_path):
    """The docstring's promise: the same clips ``ggtalker world --no-video`` writes."""
    config = A2EDataConfig(
        identities=1, clips_per_identity=1, seconds=2.0, heldout_identities=1, seed=seed
    )
    made = procedural_clips(model, config, "voices")
    write_world(tmp_path / "w", model, world_for_split(config, "voices"), progress=False)
    read = folder_clips(tmp_path / "w", A2EDataConfig(languages=config.languages))["train"]
    assert len(made) == len(read) == 1
    np.testing.assert_array_equal(made[0].expression, read[0].expression)
    np.testing.assert_array_equal(made[0].jaw_pose, read[0].jaw_pose)
    np.testing.assert_array_equal(made[0].shape, read[0].shape)
    np.testing.assert_allclose(made[0].audio, read[0].audio, atol=1.01 / 32767)  # 16-bit wav


# -- folder source -------------------------------------------------------------------------


def test_folder_clips_split_by_language_and_speaker(model, seed, tmp_path):
    from ggtalker_jax.config import WorldConfig

    world = WorldConfig(
        identities=3,
        clips_per_identity=1,
        seconds=2.0,
        seed=seed,
        languages=("en", "it"),
        video=False,
        resolution=32,
    )
    write_world(tmp_path / "w", model, world, progress=False)
    config = A2EDataConfig(languages=("en",), heldout_languages=("it",), heldout_identities=1)
    splits = folder_clips(tmp_path / "w", config)
    # id000 and id002 speak en (the last by name is held out), id001 speaks it.
    assert [c.name for c in splits["train"]] == [os.path.join("id000", "clip000")]
    assert [c.name for c in splits["voices"]] == [os.path.join("id002", "clip000")]
    assert [c.name for c in splits["languages"]] == [os.path.join("id001", "clip000")]
    assert [c.language for c in splits["train"] + splits["voices"]] == ["en", "en"]
    assert splits["languages"][0].language == "it"
    identities = [splits[s][0].identity for s in ("train", "voices", "languages")]
    assert len(set(identities)) == 3
    clip = splits["train"][0]
    assert clip.audio.shape == (clip.n_frames * SAMPLES_PER_FRAME,)
    assert clip.shape.shape == (model.n_shape,)
    assert clip.expression.shape == (clip.n_frames, model.n_exp)

    # No held-out voices requested: every en speaker trains.
    all_train = folder_clips(tmp_path / "w", A2EDataConfig(languages=("en",), heldout_identities=0))
    assert len(all_train["train"]) == 2 and all_train["voices"] == []


def test_folder_clips_bad_folders(tmp_path):
    config = A2EDataConfig()
    with pytest.raises(InputError, match="no such folder") as missing:
        folder_clips(tmp_path / "nowhere", config)
    assert "nowhere" in str(missing.value)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="no clips") as empty:
        folder_clips(tmp_path / "empty", config)
    assert "empty" in str(empty.value) and "ggtalker world" in str(empty.value)


# -- motion layout -------------------------------------------------------------------------


@pytest.mark.parametrize("head_pose", [False, True])
def test_motion_layout_round_trip(rng, head_pose):
    n_model, n = 10, int(rng.integers(1, 10))
    layout = MotionLayout(n, head_pose)
    lead = (2, 7)
    expression = rng.normal(size=(*lead, n_model)).astype(np.float32)
    jaw = rng.normal(size=(*lead, 3)).astype(np.float32)
    pose = rng.normal(size=(*lead, 3)).astype(np.float32)
    motion = layout.pack(expression, jaw, pose)
    assert motion.shape == (*lead, layout.dim)
    assert layout.dim == n + 3 + 3 * head_pose
    back = layout.unpack(motion, n_model)
    np.testing.assert_array_equal(back["expression"][..., :n], expression[..., :n])
    np.testing.assert_array_equal(back["expression"][..., n:], 0.0)
    np.testing.assert_array_equal(back["jaw_pose"], jaw)
    np.testing.assert_array_equal(back["global_pose"], pose if head_pose else 0.0)


# -- training windows ----------------------------------------------------------------------

F = 4  # feature width of the synthetic clips
E = 10


def _synthetic(rng, lengths, identities) -> tuple[list[SpeechClip], list[np.ndarray]]:
    clips, features = [], []
    for k, (t, who) in enumerate(zip(lengths, identities, strict=True)):
        clips.append(
            SpeechClip(
                name=f"{who}/clip{k:03d}",
                identity=who,
                language="en",
                audio=rng.normal(size=t * SAMPLES_PER_FRAME).astype(np.float32),
                shape=rng.normal(size=20).astype(np.float32),
                expression=rng.normal(size=(t, E)).astype(np.float32),
                jaw_pose=rng.normal(size=(t, 3)).astype(np.float32),
                global_pose=rng.normal(size=(t, 3)).astype(np.float32),
            )
        )
        features.append(rng.normal(size=(t, F)).astype(np.float32))
    return clips, features


def test_windows_are_exact_slices_of_their_clips(rng):
    window, context, batch_size = 8, 3, 16
    clips, features = _synthetic(rng, [12, 15, 20], ["bob", "ann", "bob"])
    identities = {"ann": 0, "bob": 1}
    layout = MotionLayout(6, head_pose=True)
    silence = rng.normal(size=F).astype(np.float32)
    source = WindowSource(
        clips, features, layout, identities, batch_size, window, context, silence, seed=3
    )
    motions = [layout.pack(c.expression, c.jaw_pose, c.global_pose) for c in clips]

    b0 = source.batch(0)
    assert b0.features.shape == (batch_size, context + window, F)
    assert b0.motion.shape == (batch_size, context + window, layout.dim)
    assert b0.has_context.shape == b0.identity.shape == (batch_size,)
    again = source.batch(0)
    for a, b in zip(
        (b0.features, b0.motion, b0.has_context, b0.identity),
        (again.features, again.motion, again.has_context, again.identity),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b0.features, source.batch(1).features)

    seen_context = set()
    for position in range(12):
        batch = source.batch(position)
        for f, m, ctx, who in zip(
            np.asarray(batch.features),
            np.asarray(batch.motion),
            np.asarray(batch.has_context),
            np.asarray(batch.identity),
            strict=True,
        ):
            # Find the clip and offset whose W frames the window holds (random features:
            # the match is unique).
            hits = [
                (c, o)
                for c, feats in enumerate(features)
                for o in range(len(feats) - window + 1)
                if np.array_equal(feats[o : o + window], f[context:])
            ]
            assert len(hits) == 1
            c, o = hits[0]
            np.testing.assert_array_equal(m[context:], motions[c][o : o + window])
            assert who == identities[clips[c].identity]
            assert bool(ctx) == (o >= context)
            seen_context.add(bool(ctx))
            if o >= context:
                np.testing.assert_array_equal(f[:context], features[c][o - context : o])
                np.testing.assert_array_equal(m[:context], motions[c][o - context : o])
            else:
                pad = context - o
                np.testing.assert_array_equal(f[:pad], np.broadcast_to(silence, (pad, F)))
                np.testing.assert_array_equal(
                    m[:pad], np.broadcast_to(motions[c][0], m[:pad].shape)
                )
                np.testing.assert_array_equal(f[pad:context], features[c][:o])
                np.testing.assert_array_equal(m[pad:context], motions[c][:o])
    assert seen_context == {True, False}


def test_window_source_refuses_a_clip_shorter_than_the_window(rng):
    clips, features = _synthetic(rng, [20, 7], ["a", "b"])
    with pytest.raises(InputError, match="b/clip001") as err:
        WindowSource(
            clips, features, MotionLayout(E), {"a": 0, "b": 1}, 2, 8, 2, np.zeros(F, np.float32)
        )
    assert "window (8)" in str(err.value)


# -- statistics ----------------------------------------------------------------------------


def test_statistics_match_numpy_with_a_std_floor(rng):
    clips, features = _synthetic(rng, [9, 14], ["a", "b"])
    # Jaw roll and one feature never move: their std is the floor, not 0.
    clips = [
        SpeechClip(**{**c.__dict__, "jaw_pose": c.jaw_pose * np.array([1, 1, 0], np.float32)})
        for c in clips
    ]
    features = [
        np.concatenate([f[:, :-1], np.full((len(f), 1), 2.5, np.float32)], 1) for f in features
    ]
    layout = MotionLayout(7, head_pose=False)
    motion = np.concatenate(
        [np.concatenate([c.expression[:, :7], c.jaw_pose], 1) for c in clips]
    ).astype(np.float64)

    mean, std = motion_statistics(clips, layout)
    assert mean.shape == std.shape == (layout.dim,) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, motion.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std[:-1], motion.std(0)[:-1], rtol=1e-5)
    assert std[-1] == np.float32(STD_FLOOR)

    f_all = np.concatenate(features).astype(np.float64)
    f_mean, f_std = feature_statistics(features)
    np.testing.assert_allclose(f_mean, f_all.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f_std[:-1], f_all.std(0)[:-1], rtol=1e-5)
    assert f_mean[-1] == np.float32(2.5) and f_std[-1] == np.float32(1e-3)
