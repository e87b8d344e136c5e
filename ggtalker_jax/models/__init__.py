"""Networks (Flax NNX): the Identity-Gaussian Generator, the color MLP and their layers, the
A2E denoiser and its audio features (log-mel or an imported Wav2Vec2/HuBERT).

Modules hold parameters; the math they call lives in geometry/, render/ and flame/.
"""

from ggtalker_jax.models.a2e import AudioExpressionPrior, DataStats, MotionLayout
from ggtalker_jax.models.audio_encoder import FeatureExtractor, make_feature_extractor
from ggtalker_jax.models.color_mlp import ColorMLP, head_local_view_dirs, rotation_6d
from ggtalker_jax.models.identity_generator import IdentityGenerator, TexelLift, lift_texels
from ggtalker_jax.models.layers import sample_bilinear
from ggtalker_jax.models.variables import IDENTITY, PRIOR, IdentityParam

__all__ = [
    "IDENTITY",
    "PRIOR",
    "AudioExpressionPrior",
    "ColorMLP",
    "DataStats",
    "FeatureExtractor",
    "IdentityGenerator",
    "IdentityParam",
    "MotionLayout",
    "TexelLift",
    "head_local_view_dirs",
    "lift_texels",
    "make_feature_extractor",
    "rotation_6d",
    "sample_bilinear",
]
