"""Networks (Flax NNX): the Identity-Gaussian Generator, the color MLP and their layers.

Modules hold parameters; the math they call lives in geometry/, render/ and flame/.
"""

from ggtalker_jax.models.color_mlp import ColorMLP, head_local_view_dirs, rotation_6d
from ggtalker_jax.models.identity_generator import IdentityGenerator, TexelLift, lift_texels
from ggtalker_jax.models.layers import sample_bilinear
from ggtalker_jax.models.variables import IDENTITY, PRIOR, IdentityParam

__all__ = [
    "IDENTITY",
    "PRIOR",
    "ColorMLP",
    "IdentityGenerator",
    "IdentityParam",
    "TexelLift",
    "head_local_view_dirs",
    "lift_texels",
    "rotation_6d",
    "sample_bilinear",
]
