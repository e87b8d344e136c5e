"""Build the Wav2Vec2 / HuBERT parity fixtures in ``tests/fixtures/wav2vec2/`` with PyTorch.

Three tiny random models (hidden 32, 2 blocks, 2 heads, MLP 64, convs 16-16-16 with kernels
10-3-3 and strides 5-2-2), one per layout the JAX port has to match:

- ``wav2vec2_base``: group-norm conv stack, post-norm blocks, no conv bias, even (16-tap)
  positional conv; a ``preprocessor_config.json`` with ``do_normalize: false``.
- ``wav2vec2_stable``: layer-norm conv stack, pre-norm ("stable") blocks with the final
  LayerNorm, conv bias; ``do_normalize: true``.
- ``hubert``: HuBERT with group norm, post-norm, no projection LayerNorm, conv bias and an
  odd (5-tap) positional conv; no preprocessor file.

Each folder holds what ``save_pretrained`` writes that the loader reads (``config.json``,
``model.safetensors``), the feature extractor's ``preprocessor_config.json`` where noted, and
``expected.npz``: ``audio [2, 4000]`` (fixed random input), ``input_values`` (only where
``do_normalize``: the feature extractor's output, ``audio`` standardised per clip; elsewhere
the model input is ``audio`` itself), ``hidden_states [L + 1, 2, T, 32]``
(``output_hidden_states=True``) and ``last_hidden_state [2, T, 32]``, from the model in
float32 eval mode. Every
norm weight, bias and weight-norm gain is randomised too, so a parameter loaded into the
wrong place cannot hide behind torch's 1 / 0 initialisation.

Run it with python 3.11, CPU torch and transformers (the package does not need them):

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
        # (or, without that index, a local CPU wheel: pip install torch-2.13.0+cpu-...whl)
    /tmp/torchenv/bin/pip install transformers safetensors
    /tmp/torchenv/bin/python tools/make_wav2vec2_fixtures.py

The fixtures in the repository were made with torch 2.13.0+cpu and transformers 5.24.0;
about 330 kB per model (0.98 MB in all), in a few seconds.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wav2vec2"
KEEP = ("config.json", "model.safetensors", "preprocessor_config.json", "expected.npz")
AUDIO_SHAPE = (2, 4000)
SEED = 20240611

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16, 16),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)

# name -> (model class, config class, config overrides, do_normalize or None for no file)
FIXTURES = {
    "wav2vec2_base": (
        transformers.Wav2Vec2Model,
        transformers.Wav2Vec2Config,
        dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
        False,
    ),
    "wav2vec2_stable": (
        transformers.Wav2Vec2Model,
        transformers.Wav2Vec2Config,
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
        True,
    ),
    "hubert": (
        transformers.HubertModel,
        transformers.HubertConfig,
        dict(
            feat_extract_norm="group",
            do_stable_layer_norm=False,
            conv_bias=True,
            feat_proj_layer_norm=False,
            num_conv_pos_embeddings=5,
        ),
        None,
    ),
}


def randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Perturb the parameters torch initialises to constants (norm scales, biases, the weight
    norm's gain), so each one's place in the port is tested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "original0" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=generator))


def build(name: str, out: Path, rng: np.random.Generator) -> None:
    """Write one fixture folder ``out / name``."""
    model_cls, config_cls, overrides, do_normalize = FIXTURES[name]
    torch.manual_seed(int(rng.integers(2**31)))
    config = config_cls(**{**TINY, **overrides})
    model = model_cls(config).eval()
    randomise(model, torch.Generator().manual_seed(int(rng.integers(2**31))))

    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    audio = (0.3 * rng.standard_normal(AUDIO_SHAPE) + 0.05).astype(np.float32)
    input_values = audio
    if do_normalize is not None:
        extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize)
        extractor.save_pretrained(folder)
        input_values = extractor(list(audio), sampling_rate=16000, return_tensors="np")[
            "input_values"
        ].astype(np.float32)
    with torch.no_grad():
        result = model(torch.from_numpy(input_values), output_hidden_states=True)
    arrays = dict(
        audio=audio,
        hidden_states=np.stack([h.numpy() for h in result.hidden_states]),
        last_hidden_state=result.last_hidden_state.numpy(),
    )
    if do_normalize:  # otherwise the extractor passes the audio through unchanged
        arrays["input_values"] = input_values
    np.savez_compressed(folder / "expected.npz", **arrays)
    for path in folder.iterdir():
        if path.name not in KEEP:
            path.unlink()
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"{folder}: {sorted(p.name for p in folder.iterdir())}, {size / 1e3:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder ({OUT})")
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    rng = np.random.default_rng(SEED)
    for name in FIXTURES:
        build(name, args.out, rng)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
