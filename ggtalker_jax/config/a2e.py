"""The Audio-Expression prior's section: audio features, the diffusion denoiser, its data and
its training run (``ggtalker a2e train|eval|sample``).

Defaults follow the paper where it is specific (512-d audio features, a 64-d identity
embedding, an 8-layer decoder with self-attention, FiLM of the diffusion time and
cross-attention to the audio, 10% condition drop) and DiffPoseTalk, the closest public
model, where it is not (windows of 100 frames with 10 frames of context, 8 heads, FFN 4x, a
500-step cosine schedule, x0 prediction, audio guidance about 1.15).
"""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check, section_from_dict, training_checks
from ggtalker_jax.config.world import MAX_IDENTITIES, MAX_SECONDS, MAX_SEED

ENCODERS = ("logmel", "wav2vec2")
OBJECTIVES = ("diffusion", "regression")


@dataclasses.dataclass(frozen=True)
class A2EDataConfig:
    """Where A2E clips come from: speech with its exact FLAME motion.

    The procedural source makes audio-only worlds in memory with the world library (the same
    people and voices ``ggtalker world --no-video --seed S`` writes); a folder source reads
    such worlds from disk. Three disjoint sets of people: the training identities (speaking
    ``languages``), held-out voices of the same languages (another world seed), and speakers
    of ``heldout_languages``, which training never hears.

    Attributes:
      source: ``"procedural"`` or a folder of clips (searched recursively); a folder trains on
        every clip whose language is in ``languages`` and evaluates on the rest.
      identities: training identities (procedural).
      clips_per_identity: clips each training identity speaks.
      seconds: clip length.
      languages: espeak voices of training; identity ``i`` speaks ``languages[i % len]``.
      heldout_identities: held-out voices of the training languages (evaluation).
      heldout_languages: languages never used in training (evaluation).
      heldout_clips: clips per held-out identity.
      seed: world seed of the training identities (held-out voices use ``seed + 1``, held-out
        languages ``seed + 2``).
    """

    source: str = "procedural"
    identities: int = 16
    clips_per_identity: int = 2
    seconds: float = 8.0
    languages: tuple[str, ...] = ("en", "de", "fr", "es")
    heldout_identities: int = 4
    heldout_languages: tuple[str, ...] = ("it",)
    heldout_clips: int = 1
    seed: int = 1

    def __post_init__(self):
        overlap = set(self.languages) & set(self.heldout_languages)
        checks = [
            (bool(self.source.strip()), "source", "'procedural' or a folder of clips"),
            (1 <= self.identities <= MAX_IDENTITIES, "identities", f"1 to {MAX_IDENTITIES}"),
            (1 <= self.clips_per_identity <= 1000, "clips_per_identity", "1 to 1000"),
            (1.0 <= self.seconds <= MAX_SECONDS, "seconds", f"1 to {MAX_SECONDS}"),
            (len(self.languages) >= 1, "languages", "at least one espeak voice"),
            (0 <= self.heldout_identities <= 1000, "heldout_identities", "0 to 1000"),
            (not overlap, "heldout_languages", "languages that training does not use"),
            (1 <= self.heldout_clips <= 100, "heldout_clips", "1 to 100"),
            (0 <= self.seed <= MAX_SEED - 2, "seed", f"an integer from 0 to {MAX_SEED - 2}"),
        ]
        for ok, name, want in checks:
            check(ok, f"a2e.data.{name}", getattr(self, name), want)


@dataclasses.dataclass(frozen=True)
class A2EConfig:
    """The audio-to-expression prior.

    Attributes:
      encoder: audio features: ``logmel`` (a jnp log-mel, 4 mel frames per video frame, and a
        learned temporal conv front end; needs no pretrained weights) or ``wav2vec2`` (a
        Hugging Face Wav2Vec2/HuBERT checkpoint in a local folder, frozen, 50 Hz features
        pooled to 25 fps).
      wav2vec2_path: the checkpoint folder (``config.json`` + ``model.safetensors``).
      wav2vec2_layer: its hidden state used (-1: the last layer).
      audio_dim: width the audio features are projected to.
      audio_layers: layers of the shallow audio transformer.
      d_model, layers, heads, ffn_ratio: the denoiser's transformer decoder.
      identity_dim: size of the identity embedding (a table over training identities plus
        one learned "unknown identity" row).
      n_expression: FLAME expression coefficients predicted (0: all of the model's).
      head_pose: predict the head rotation (global pose) too.
      window: frames denoised at once; longer audio runs window by window.
      context: clean frames of the previous window each window is conditioned on.
      overlap: frames two consecutive windows share at sampling time; the second window's
        prediction fades in over them (linearly), so a border shows no jump (0: no overlap).
      cross_radius: a motion frame attends audio frames within this many frames of its own
        (DiffPoseTalk's alignment mask is radius 0; the audio transformer adds context).
      dropout: attention-free dropout inside the transformer blocks (training only).
      objective: ``diffusion`` (the prior) or ``regression`` (the same network, no noise,
        one pass: the deterministic baseline).
      diffusion_steps: length of the cosine noise schedule.
      sample_steps: DDIM steps at sampling time.
      cond_drop: probability of dropping the audio (and, independently, the identity) in
        training, for classifier-free guidance.
      audio_guidance: guidance scale on the audio condition.
      identity_guidance: guidance scale on the identity condition (a known identity only).
      velocity_weight: weight of the Huber loss on frame-to-frame differences.
      huber_delta: the Huber loss's transition point (normalised motion units).
      batch_size, steps, learning_rate, warmup_steps, weight_decay, grad_clip: training.
      log_every, checkpoint_every, eval_every: intervals in steps (eval 0: at the end only).
      keep_checkpoints: how many of the newest checkpoints a run keeps.
      compute_dtype: ``float32`` or ``bfloat16`` activations (parameters stay float32).
      data: :class:`A2EDataConfig`.
    """

    encoder: str = "logmel"
    wav2vec2_path: str = ""
    wav2vec2_layer: int = -1
    audio_dim: int = 512
    audio_layers: int = 2
    d_model: int = 512
    layers: int = 8
    heads: int = 8
    ffn_ratio: int = 4
    identity_dim: int = 64
    n_expression: int = 0
    head_pose: bool = False
    window: int = 100
    context: int = 10
    overlap: int = 10
    cross_radius: int = 0
    dropout: float = 0.1
    objective: str = "diffusion"
    diffusion_steps: int = 500
    sample_steps: int = 50
    cond_drop: float = 0.1
    audio_guidance: float = 1.15
    identity_guidance: float = 1.0
    velocity_weight: float = 1.0
    huber_delta: float = 0.1
    batch_size: int = 16
    steps: int = 200
    learning_rate: float = 3e-4
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 0
    compute_dtype: str = "float32"
    data: A2EDataConfig = dataclasses.field(default_factory=A2EDataConfig)

    def __post_init__(self):
        checks = [
            (self.encoder in ENCODERS, "encoder", "one of " + ", ".join(ENCODERS)),
            (
                self.encoder != "wav2vec2" or bool(self.wav2vec2_path),
                "wav2vec2_path",
                "a local Wav2Vec2/HuBERT folder (config.json + model.safetensors) when "
                "encoder=wav2vec2",
            ),
            (self.wav2vec2_layer >= -1, "wav2vec2_layer", "-1 (last) or a layer number"),
            (8 <= self.audio_dim <= 4096, "audio_dim", "8 to 4096"),
            (0 <= self.audio_layers <= 24, "audio_layers", "0 to 24"),
            (
                8 <= self.d_model <= 4096 and self.d_model % self.heads == 0,
                "d_model",
                f"8 to 4096 and a multiple of heads ({self.heads})",
            ),
            (1 <= self.layers <= 48, "layers", "1 to 48"),
            (1 <= self.heads <= 64, "heads", "1 to 64"),
            (1 <= self.ffn_ratio <= 16, "ffn_ratio", "1 to 16"),
            (1 <= self.identity_dim <= 1024, "identity_dim", "1 to 1024"),
            (0 <= self.n_expression <= 400, "n_expression", "0 (all) to 400"),
            (8 <= self.window <= 1000, "window", "8 to 1000 frames"),
            (
                1 <= self.context < self.window,
                "context",
                f"1 or more and fewer than window ({self.window})",
            ),
            (
                0 <= self.overlap <= self.window - self.context,
                "overlap",
                f"0 to window - context ({self.window - self.context}) frames",
            ),
            (0 <= self.cross_radius <= 50, "cross_radius", "0 to 50 frames"),
            (0 <= self.dropout < 1, "dropout", "0 or more, below 1"),
            (self.objective in OBJECTIVES, "objective", "one of " + ", ".join(OBJECTIVES)),
            (10 <= self.diffusion_steps <= 10000, "diffusion_steps", "10 to 10000"),
            (
                1 <= self.sample_steps <= self.diffusion_steps,
                "sample_steps",
                f"1 to diffusion_steps ({self.diffusion_steps})",
            ),
            (0 <= self.cond_drop < 1, "cond_drop", "0 or more, below 1"),
            (0 <= self.audio_guidance <= 20, "audio_guidance", "0 to 20"),
            (0 <= self.identity_guidance <= 20, "identity_guidance", "0 to 20"),
            (0 <= self.velocity_weight <= 100, "velocity_weight", "0 to 100"),
            (0 < self.huber_delta <= 100, "huber_delta", "above 0, at most 100"),
        ]
        for ok, name, want in checks + training_checks(self):
            check(ok, f"a2e.{name}", getattr(self, name), want)

    @property
    def frames(self) -> int:
        """Frames the network sees at once: the context, then the window."""
        return self.context + self.window


def a2e_config_from_dict(values: dict) -> A2EConfig:
    """Rebuild an :class:`A2EConfig` from ``dataclasses.asdict`` output (a prior's
    ``prior.json`` or a run's ``config.json``), validated again.

    Raises:
      InputError: unknown or invalid fields (one line naming the first).
    """
    return section_from_dict(A2EConfig, values, "a2e", {"data": A2EDataConfig})
