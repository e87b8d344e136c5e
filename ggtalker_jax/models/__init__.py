"""Networks (Flax NNX): the Identity-Gaussian Generator, the color MLP and their layers.

Modules hold parameters; the math they call lives in geometry/, render/ and flame/.
"""
