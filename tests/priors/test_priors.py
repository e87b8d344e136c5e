"""Prior folders: save -> load round trips (float32 exactly, bfloat16 to its rounding), and
every bad folder is one clear line."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax.errors import InputError
from ggtalker_jax.priors import (
    INFO_FILE,
    PARAMS_FILE,
    load_prior_params,
    read_prior_info,
    save_prior,
    shipped_prior,
)


def _net(seed: int, width: int = 4) -> nnx.Module:
    return nnx.Sequential(
        nnx.Linear(3, width, rngs=nnx.Rngs(seed)), nnx.Linear(width, 2, rngs=nnx.Rngs(seed + 1))
    )


def _params(net) -> dict:
    return {
        "/".join(map(str, k)): np.asarray(v.get_value())
        for k, v in nnx.to_flat_state(nnx.state(net, nnx.Param))
    }


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_save_load_round_trip(tmp_path, rng, dtype):
    seed = int(rng.integers(1000))
    net = _net(seed)
    save_prior(tmp_path / "p", nnx.state(net, nnx.Param), {"kind": "test"}, dtype=dtype)
    fresh = _net(seed + 7)
    nnx.update(fresh, load_prior_params(tmp_path / "p", nnx.state(fresh, nnx.Param)))
    want, got = _params(net), _params(fresh)
    for key, value in want.items():
        if dtype == "float32":
            np.testing.assert_array_equal(got[key], value)
        else:
            rounded = np.asarray(jnp.asarray(jnp.asarray(value, jnp.bfloat16), jnp.float32))
            np.testing.assert_array_equal(got[key], rounded)
    x = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    if dtype == "float32":
        np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(net(x)))
    info = read_prior_info(tmp_path / "p")
    assert info["kind"] == "test"
    assert set(info["dtypes"]) == (set(want) if dtype == "bfloat16" else set())


def test_refuses_overwrite_foreign_files_and_mismatch(tmp_path):
    net = _net(0)
    state = nnx.state(net, nnx.Param)
    out = save_prior(tmp_path / "p", state, {"kind": "test"})
    with pytest.raises(InputError, match="already holds a prior; pass --force"):
        save_prior(out, state, {"kind": "test"})
    save_prior(out, state, {"kind": "again"}, force=True)
    assert read_prior_info(out)["kind"] == "again"
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt, which ggtalker did not write"):
        save_prior(out, state, {"kind": "test"}, force=True)
    wider = _net(0, width=6)
    with pytest.raises(InputError, match="has shape .* another config"):
        load_prior_params(out, nnx.state(wider, nnx.Param))
    with pytest.raises(InputError, match="dtype 'float16'"):
        save_prior(tmp_path / "q", state, {}, dtype="float16")


def test_bad_folders(tmp_path):
    with pytest.raises(InputError, match="not a prior folder"):
        read_prior_info(tmp_path)
    (tmp_path / INFO_FILE).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_prior_info(tmp_path)
    (tmp_path / INFO_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a ggtalker prior"):
        read_prior_info(tmp_path)
    net = _net(0)
    out = save_prior(tmp_path / "p", nnx.state(net, nnx.Param), {"kind": "test"})
    (out / PARAMS_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="unreadable"):
        load_prior_params(out, nnx.state(net, nnx.Param))
    with pytest.raises(InputError, match="no shipped prior 'nope'"):
        shipped_prior("nope")


def test_shipped_priors_load_and_the_tiny_one_still_renders_heads():
    """Both shipped priors fit today's head template (their base-map digests match), and the
    tiny one still draws held-out heads well (a template or decoding change that silently
    broke the shipped weights fails here)."""
    from ggtalker_jax.data.e2v import ProceduralE2V
    from ggtalker_jax.eval import masked_psnr
    from ggtalker_jax.priors.e2v import load_e2v_prior
    from ggtalker_jax.train.e2v import predict_batch

    generator, config, info = load_e2v_prior()
    assert info["run_config"] == "gpu" and config.uv_size == 128
    assert generator.template.n > 14000
    tiny, tiny_config, _ = load_e2v_prior(shipped_prior("e2v_tiny"))
    data = tiny_config.data
    source = ProceduralE2V(
        tiny.template.model, data, 1, range(data.identities, data.identities + 2)
    )
    batch = source.views(source.identities, [0.0], position=3)
    render = predict_batch(tiny, batch, tiny_config)
    psnr = np.asarray(masked_psnr(render.rgb, batch.target_image, batch.target_mask))
    # Held-out same-camera head PSNR of this prior is about 22 dB (BENCHMARKS.md).
    assert np.all(psnr > 17.0), psnr


def test_shipped_a2e_priors_load_and_the_tiny_one_still_follows_speech():
    """Both A2E priors fit today's network (the parameters match the config they record,
    statistics stay float32), and the tiny one still opens the mouth with held-out speech
    (a network or feature change that silently broke the shipped weights fails here)."""
    import jax

    from ggtalker_jax.data.a2e import procedural_clips
    from ggtalker_jax.eval.a2e import correlation, lip_geometry
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.priors.a2e import load_a2e_prior

    speaker, config, info = load_a2e_prior()
    assert info["run_config"] == "gpu" and config.layers == 8 and len(speaker.identities) == 240
    assert speaker.prior.motion_std.get_value().dtype == np.float32
    tiny, tiny_config, _ = load_a2e_prior(shipped_prior("a2e_tiny"))
    model = load_flame()
    clip = procedural_clips(model, tiny_config.data, "voices")[0]
    fields = tiny.speak(clip.audio, jax.random.key(0))
    _, pred = lip_geometry(model, clip.shape, fields["expression"], fields["jaw_pose"])
    _, true = lip_geometry(model, clip.shape, clip.expression, clip.jaw_pose)
    # Held-out opening correlation of this prior is about 0.96 (BENCHMARKS.md).
    assert correlation(pred, true) > 0.8
