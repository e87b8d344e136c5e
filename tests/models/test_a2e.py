"""The A2E network: shapes and dtypes (float32 and bfloat16 activations), the zero-initialised
output (an untrained network predicts the dataset mean), what each condition changes, the
null audio and unknown identity, and features from a Wav2Vec2 checkpoint."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax.config import A2EConfig
from ggtalker_jax.models.a2e import AudioExpressionPrior, MotionLayout, timestep_embedding
from ggtalker_jax.models.audio_encoder import make_feature_extractor

FIXTURES = Path(__file__).parent.parent / "fixtures" / "wav2vec2"
SMALL = dict(audio_dim=16, audio_layers=1, d_model=32, layers=2, heads=4, identity_dim=8)
SMALL.update(window=12, context=3, overlap=3)
F, IDS = 20, 5


def _inputs(rng, config, layout, b=3):
    m, frames = layout.dim, config.frames
    arr = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return dict(
        x_t=arr(b, config.window, m),
        t=jnp.asarray(rng.integers(0, 100, b), jnp.int32),
        context=arr(b, config.context, m),
        has_context=jnp.asarray([True, False, True][:b]),
        features=arr(b, frames, F),
        identity=jnp.asarray(rng.integers(0, IDS + 1, b), jnp.int32),
    )


def _run(prior, x, **over):
    x = {**x, **over}
    audio = prior.encode_audio(x["features"], x.get("drop"))
    return prior(x["x_t"], x["t"], x["context"], x["has_context"], audio, x["identity"])


def _trained_like(prior, rng):
    """Give every parameter random values (the output layer starts at zero)."""
    state = nnx.state(prior, nnx.Param)
    leaves = [
        jnp.asarray(rng.normal(size=v.shape) * 0.2, jnp.float32) for v in jax.tree.leaves(state)
    ]
    nnx.update(prior, jax.tree.unflatten(jax.tree.structure(state), leaves))
    return prior


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_shapes_and_dtypes(rng, dtype):
    config = A2EConfig(**SMALL, compute_dtype=dtype)
    layout = MotionLayout(10)
    prior = _trained_like(AudioExpressionPrior(config, F, layout, IDS, nnx.Rngs(0)), rng)
    x = _inputs(rng, config, layout)
    audio = prior.encode_audio(x["features"])
    assert audio.shape == (3, config.frames, config.d_model) and audio.dtype == jnp.dtype(dtype)
    out = _run(prior, x)
    assert out.shape == (3, config.window, layout.dim) and out.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(out)))


def test_untrained_network_predicts_the_dataset_mean(rng):
    config = A2EConfig(**SMALL)
    layout = MotionLayout(4, head_pose=True)
    prior = AudioExpressionPrior(config, F, layout, IDS, nnx.Rngs(1))
    mean = rng.normal(size=layout.dim).astype(np.float32)
    prior.motion_mean.set_value(jnp.asarray(mean))
    prior.motion_std.set_value(jnp.asarray(rng.uniform(0.5, 2, layout.dim), jnp.float32))
    out = np.asarray(prior.denormalize_motion(_run(prior, _inputs(rng, config, layout))))
    np.testing.assert_allclose(out, np.broadcast_to(mean, out.shape), atol=1e-6)
    motion = jnp.asarray(rng.normal(size=(2, 5, layout.dim)), jnp.float32)
    back = prior.denormalize_motion(prior.normalize_motion(motion))
    np.testing.assert_allclose(np.asarray(back), np.asarray(motion), atol=1e-5)


def test_every_condition_changes_the_prediction(rng):
    config = A2EConfig(**SMALL)
    layout = MotionLayout(10)
    prior = _trained_like(AudioExpressionPrior(config, F, layout, IDS, nnx.Rngs(2)), rng)
    x = _inputs(rng, config, layout)
    base = np.asarray(_run(prior, x))
    changes = {
        "t": dict(t=x["t"] + 7),
        "audio": dict(features=x["features"] + 1.0),
        "identity": dict(identity=(x["identity"] + 1) % (IDS + 1)),
        "context": dict(context=x["context"] + 1.0),
        "null audio": dict(drop=jnp.ones((3,), bool)),
    }
    for name, over in changes.items():
        assert np.abs(np.asarray(_run(prior, x, **over)) - base).max() > 1e-4, name
    # Without context the context values are ignored (they are zeroed before the network).
    no_ctx = dict(has_context=jnp.zeros((3,), bool))
    a = np.asarray(_run(prior, x, **no_ctx))
    b = np.asarray(_run(prior, x, **no_ctx, context=x["context"] + 5.0))
    np.testing.assert_allclose(a, b, atol=1e-6)
    # The null audio replaces the audio entirely: different features, same prediction.
    drop = dict(drop=jnp.ones((3,), bool))
    a = np.asarray(_run(prior, x, **drop))
    b = np.asarray(_run(prior, x, **drop, features=x["features"] * 3.0))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert prior.unknown_identity() == IDS


def test_dropout_is_per_example_and_off_without_keys(rng, key):
    config = A2EConfig(**SMALL, dropout=0.5)
    layout = MotionLayout(10)
    prior = _trained_like(AudioExpressionPrior(config, F, layout, IDS, nnx.Rngs(3)), rng)
    x = _inputs(rng, config, layout)
    keys = jax.random.split(key, 3)
    audio = prior.encode_audio(x["features"], keys=keys)
    full = np.asarray(
        prior(x["x_t"], x["t"], x["context"], x["has_context"], audio, x["identity"], keys=keys)
    )
    # Example 1 alone, with its own key, gives the same row as in the batch of three.
    one = {k: v[1:2] for k, v in x.items()}
    audio1 = prior.encode_audio(one["features"], keys=keys[1:2])
    row = prior(
        one["x_t"],
        one["t"],
        one["context"],
        one["has_context"],
        audio1,
        one["identity"],
        keys=keys[1:2],
    )
    np.testing.assert_allclose(np.asarray(row)[0], full[1], atol=1e-5)
    assert np.abs(full - np.asarray(_run(prior, x))).max() > 1e-3  # dropout did something


def test_timestep_embedding_is_distinct_per_step():
    emb = np.asarray(timestep_embedding(jnp.arange(500), 33))
    assert emb.shape == (500, 33) and np.all(np.abs(emb) <= 1.0)
    dist = np.linalg.norm(emb[1:] - emb[:-1], axis=-1)
    assert dist.min() > 1e-3


def test_motion_layout_round_trip(rng):
    for head_pose in (False, True):
        layout = MotionLayout(6, head_pose)
        e = rng.normal(size=(4, 10)).astype(np.float32)
        j, g = (
            rng.normal(size=(4, 3)).astype(np.float32),
            rng.normal(size=(4, 3)).astype(np.float32),
        )
        packed = layout.pack(e, j, g)
        assert packed.shape == (4, 9 + 3 * head_pose) == (4, layout.dim)
        back = layout.unpack(packed, 10)
        np.testing.assert_array_equal(back["expression"][:, :6], e[:, :6])
        np.testing.assert_array_equal(back["expression"][:, 6:], 0)
        np.testing.assert_array_equal(back["jaw_pose"], j)
        np.testing.assert_array_equal(back["global_pose"], g if head_pose else 0 * g)


@pytest.mark.parametrize("name", ["wav2vec2_base", "hubert"])
def test_wav2vec2_features_are_per_video_frame(rng, name):
    config = A2EConfig(encoder="wav2vec2", wav2vec2_path=str(FIXTURES / name))
    extractor = make_feature_extractor(config)
    for samples in (700, 16000 + 1):
        feats = extractor(rng.normal(size=samples).astype(np.float32) * 0.1)
        assert feats.shape == (-(-samples * 25 // 16000), extractor.dim)
        assert np.all(np.isfinite(feats))
    assert extractor.silence().shape == (extractor.dim,)
