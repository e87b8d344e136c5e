"""Wav2Vec2 / HuBERT: parity with transformers' PyTorch models on the fixtures (every hidden
state, three layouts), ``layer=`` indexing, frame counts, the 25 fps pooling, the safetensors
reader's dtypes and key variants, and one-line errors for bad folders, files and configs.

The fixtures (``tests/fixtures/wav2vec2/``) come from ``tools/make_wav2vec2_fixtures.py``,
which says how to rebuild them; these tests need no torch.
"""

import dataclasses
import json
import shutil
import struct
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax.errors import InputError
from ggtalker_jax.models.wav2vec2 import (
    Wav2Vec2Config,
    Wav2Vec2Encoder,
    frames_at_fps,
    load_wav2vec2,
    normalize_audio,
)
from ggtalker_jax.models.wav2vec2_safetensors import SafetensorsFile

FIXTURES = Path(__file__).parent.parent / "fixtures" / "wav2vec2"
NAMES = ("wav2vec2_base", "wav2vec2_stable", "hubert")
PARITY_RTOL = 1e-4  # relative L2, float32 against torch's float32 CPU run
DO_NORMALIZE = {"wav2vec2_base": False, "wav2vec2_stable": True, "hubert": None}


@nnx.jit(static_argnames=("layer",))
def _run(encoder, audio, layer=None):
    return encoder(audio, layer=layer)


def _relative_l2(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def _expected(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / name / "expected.npz") as f:
        arrays = dict(f)
    # The fixture stores the model input only where the feature extractor changes the audio.
    arrays.setdefault("input_values", arrays["audio"])
    return arrays


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> None:
    """A minimal safetensors writer (the format in wav2vec2_safetensors' docstring)."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, np.float32)
        if dtype == "F32":
            raw = array.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = array.astype("<f2").tobytes()
        else:  # BF16: the top half of each float32 (truncation)
            raw = (array.view("<u4") >> np.uint32(16)).astype("<u2").tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


def _fixture_tensors(name: str) -> dict[str, np.ndarray]:
    weights = SafetensorsFile(FIXTURES / name / "model.safetensors")
    return {key: weights.read(key) for key in weights.keys()}


def _copy_fixture(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    return folder


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", NAMES)
def test_every_hidden_state_matches_transformers(name):
    encoder, config = load_wav2vec2(FIXTURES / name)
    expected = _expected(name)
    audio = jnp.asarray(expected["input_values"])
    errors = {}
    for k in range(config.num_hidden_layers + 1):
        errors[k] = _relative_l2(_run(encoder, audio, layer=k), expected["hidden_states"][k])
    errors["last"] = _relative_l2(_run(encoder, audio), expected["last_hidden_state"])
    assert max(errors.values()) < PARITY_RTOL, errors
    assert _run(encoder, audio).shape == expected["last_hidden_state"].shape


@pytest.mark.parametrize("name", NAMES)
def test_preprocessor_do_normalize_and_normalize_audio(name):
    _, config = load_wav2vec2(FIXTURES / name)
    assert config.do_normalize is DO_NORMALIZE[name]
    expected = _expected(name)
    if config.do_normalize:  # HF's feature extractor standardised each clip on its own
        got = normalize_audio(expected["audio"])
        assert _relative_l2(got, expected["input_values"]) < 1e-6
        assert not np.allclose(expected["audio"], expected["input_values"])


def test_layer_indexing():
    base, config = load_wav2vec2(FIXTURES / "wav2vec2_base")
    stable, _ = load_wav2vec2(FIXTURES / "wav2vec2_stable")
    audio = jnp.asarray(_expected("wav2vec2_base")["input_values"])
    n = config.num_hidden_layers
    # Post-norm: the last block's output is last_hidden_state; stable: that plus a final LN.
    np.testing.assert_array_equal(_run(base, audio, layer=n), _run(base, audio))
    assert _relative_l2(_run(stable, audio, layer=n), _run(stable, audio)) > 1e-2
    assert _relative_l2(_run(base, audio, layer=0), _run(base, audio, layer=1)) > 1e-2
    for bad in (-1, n + 1, 1.5, "last"):
        with pytest.raises(InputError, match=rf"layer={bad!r}.*0\.\.{n}"):
            base(audio, layer=bad)


@pytest.mark.parametrize("n_samples", [40, 41, 59, 60, 61, 4001, 6399])
def test_frame_count_matches_the_conv_arithmetic(n_samples):
    encoder, config = load_wav2vec2(FIXTURES / "hubert")
    audio = jnp.zeros((1, n_samples), jnp.float32)
    t = _run(encoder, audio).shape[1]
    field, hop = config.receptive_field, config.hop
    assert t == config.num_frames(n_samples) == (n_samples - field) // hop + 1
    assert (config.receptive_field, config.hop) == (40, 20)  # kernels 10-3-3, strides 5-2-2
    standard = Wav2Vec2Config()
    assert (standard.receptive_field, standard.hop) == (400, 320)
    assert [standard.num_frames(640 * f) for f in (1, 2, 25)] == [1, 3, 49]  # 2T - 1


def test_audio_shorter_than_one_window_is_refused():
    encoder, config = load_wav2vec2(FIXTURES / "hubert")
    with pytest.raises(InputError, match=rf"A >= {config.receptive_field} samples"):
        encoder(jnp.zeros((1, config.receptive_field - 1), jnp.float32))
    with pytest.raises(InputError, match=r"expected \[B, A\]"):
        encoder(jnp.zeros((config.receptive_field,), jnp.float32))


# ----------------------------------------------------------------------------- 25 fps


@pytest.mark.parametrize(("t50", "n_frames"), [(7, 3), (7, 4), (7, 5), (1, 1), (9, 4), (10, 5)])
def test_frames_at_fps_counts_and_values(rng, t50, n_frames):
    features = rng.normal(size=(2, t50, 3)).astype(np.float32)
    out = np.asarray(frames_at_fps(jnp.asarray(features), n_frames))
    assert out.shape == (2, n_frames, 3)
    padded = np.concatenate([features, np.repeat(features[:, -1:], 2 * n_frames, axis=1)], 1)
    np.testing.assert_allclose(
        out, 0.5 * (padded[:, 0 : 2 * n_frames : 2] + padded[:, 1 : 2 * n_frames : 2]), rtol=1e-6
    )


def test_frames_at_fps_of_a_clip_of_whole_video_frames():
    encoder, config = load_wav2vec2(FIXTURES / "wav2vec2_base")
    n_frames = 5
    hop = config.hop  # 20 samples in the tiny model (320 in real ones)
    hidden = _run(encoder, jnp.zeros((1, 640 * n_frames), jnp.float32))
    assert hidden.shape[1] == config.num_frames(640 * n_frames) == 640 * n_frames // hop - 1
    assert frames_at_fps(hidden, n_frames).shape == (1, n_frames, config.hidden_size)
    with pytest.raises(InputError, match="at least one encoder frame"):
        frames_at_fps(jnp.zeros((1, 0, 4), jnp.float32), 2)


# ----------------------------------------------------------------------------- file variants


def test_prefixed_keys_and_legacy_weight_norm_names(tmp_path):
    folder = _copy_fixture("hubert", tmp_path)
    renamed = {}
    for key, value in _fixture_tensors("hubert").items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        renamed["hubert." + key] = value
    renamed["lm_head.weight"] = np.ones((4, 32), np.float32)  # a head's tensors are ignored
    _write_safetensors(folder / "model.safetensors", renamed)
    encoder, _ = load_wav2vec2(folder)
    reference, _ = load_wav2vec2(FIXTURES / "hubert")
    audio = jnp.asarray(_expected("hubert")["input_values"])
    np.testing.assert_allclose(_run(encoder, audio), _run(reference, audio), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_half_precision_checkpoints_load(tmp_path, dtype):
    folder = _copy_fixture("wav2vec2_stable", tmp_path)
    _write_safetensors(folder / "model.safetensors", _fixture_tensors("wav2vec2_stable"), dtype)
    encoder, _ = load_wav2vec2(folder)
    expected = _expected("wav2vec2_stable")
    got = _run(encoder, jnp.asarray(expected["input_values"]))
    assert _relative_l2(got, expected["last_hidden_state"]) < (1e-2 if dtype == "F16" else 5e-2)


def test_safetensors_reader_decodes_each_dtype_exactly(tmp_path):
    values = np.array([[1.0, -2.5, 0.15625], [3.0e4, -1.0e-3, 0.0]], np.float32)
    bf16_exact = (values.view("<u4") & np.uint32(0xFFFF0000)).view(np.float32)
    for dtype, want in [("F32", values), ("F16", values.astype(np.float16)), ("BF16", bf16_exact)]:
        path = tmp_path / f"{dtype}.safetensors"
        _write_safetensors(path, {"w": values}, dtype)
        got = SafetensorsFile(path).read("w")
        assert got.dtype == np.float32 and got.shape == (2, 3)
        np.testing.assert_array_equal(got, np.asarray(want, np.float32))


# ----------------------------------------------------------------------------- bad input


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=r"nope: no such folder; pass a Hugging Face"):
        load_wav2vec2(tmp_path / "nope")


def test_missing_config_json(tmp_path):
    folder = _copy_fixture("hubert", tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(InputError, match=r"config\.json: no such file"):
        load_wav2vec2(folder)


def test_pickle_only_folder_names_the_conversion_command(tmp_path):
    folder = _copy_fixture("hubert", tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")  # content is not read
    with pytest.raises(InputError) as info:
        load_wav2vec2(folder)
    message = str(info.value)
    assert "\n" not in message and "pytorch_model.bin but no model.safetensors" in message
    assert "can run arbitrary code" in message
    assert (
        f"torch.load('{folder / 'pytorch_model.bin'}', map_location='cpu', weights_only=True)"
        in message
    )
    assert (
        f"save_file({{k: v.contiguous() for k, v in sd.items()}}, '{folder / 'model.safetensors'}')"
        in message
    )


def test_missing_weights_file(tmp_path):
    folder = _copy_fixture("hubert", tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"model\.safetensors: no such file; re-save"):
        load_wav2vec2(folder)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (0.5, r"ends at data byte \d+ but the file holds \d+ \(truncated download\?\)"),
        (4, r"not a valid safetensors file \(4 bytes, shorter than its header\)"),
        (200, r"header of \d+ bytes in a 200-byte file: truncated\?"),
    ],
)
def test_truncated_safetensors(tmp_path, cut, message):
    folder = _copy_fixture("hubert", tmp_path)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut) if cut < 1 else cut])
    with pytest.raises(InputError, match=message):
        load_wav2vec2(folder)


def test_corrupt_safetensors_header(tmp_path):
    folder = _copy_fixture("hubert", tmp_path)
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:12] = b"\xff\xfe{]"
    path.write_bytes(bytes(data))
    with pytest.raises(
        InputError, match=r"model\.safetensors: not a valid safetensors file \(its JSON header"
    ):
        load_wav2vec2(folder)


def test_missing_tensor_key(tmp_path):
    folder = _copy_fixture("wav2vec2_base", tmp_path)
    tensors = _fixture_tensors("wav2vec2_base")
    del tensors["encoder.layers.1.attention.v_proj.bias"]
    _write_safetensors(folder / "model.safetensors", tensors)
    with pytest.raises(
        InputError, match=r"no tensor 'encoder\.layers\.1\.attention\.v_proj\.bias'"
    ):
        load_wav2vec2(folder)


def test_not_a_wav2vec2_checkpoint(tmp_path):
    folder = _copy_fixture("wav2vec2_base", tmp_path)
    _write_safetensors(folder / "model.safetensors", {"bert.embeddings.weight": np.ones((2, 2))})
    with pytest.raises(
        InputError, match=r"no tensor 'feature_extractor\.conv_layers\.0\.conv\.weight'"
    ):
        load_wav2vec2(folder)


def test_wrongly_shaped_tensor(tmp_path):
    folder = _copy_fixture("wav2vec2_base", tmp_path)
    tensors = _fixture_tensors("wav2vec2_base")
    tensors["feature_projection.projection.weight"] = np.zeros((32, 8), np.float32)
    _write_safetensors(folder / "model.safetensors", tensors)
    with pytest.raises(
        InputError,
        match=r"'feature_projection\.projection\.weight' has shape \[32, 8\], but "
        r"config\.json's architecture needs \[32, 16\]",
    ):
        load_wav2vec2(folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "wavlm"}, r"model_type 'wavlm' is not supported"),
        ({"add_adapter": True}, r"add_adapter=True \(a conv adapter.*\) is not supported"),
        ({"hidden_act": "relu"}, r"hidden_act='relu' .* only hidden_act='gelu'"),
        ({"conv_pos_batch_norm": True}, r"conv_pos_batch_norm=True"),
        ({"feat_extract_norm": "batch"}, r"\{'feat_extract_norm': 'batch'\} is invalid"),
        ({"conv_kernel": [10, 3]}, r"expected three lists of one length"),
        ({"num_attention_heads": 5}, r"hidden_size a multiple of num_attention_heads"),
        ({"conv_dim": "wide"}, r"a malformed value"),
    ],
)
def test_unsupported_config_options(tmp_path, change, message):
    folder = _copy_fixture("hubert", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(InputError, match=rf"config\.json: .*{message}"):
        load_wav2vec2(folder)


def test_random_init_matches_the_loaded_structure():
    config = dataclasses.replace(
        Wav2Vec2Config(),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        conv_dim=(8, 8),
        conv_kernel=(10, 4),
        conv_stride=(5, 4),
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
    )
    encoder = Wav2Vec2Encoder(config, nnx.Rngs(0))
    out = _run(encoder, jnp.zeros((2, 1000), jnp.float32))
    assert out.shape == (2, config.num_frames(1000), 16) and out.dtype == jnp.float32
