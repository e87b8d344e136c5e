"""ggtalker-jax: speech-driven 3D Gaussian talking heads in JAX.

Nothing runs on import; the subpackages are imported where used:
``ggtalker_jax.flame`` (FLAME loading and skinning), ``ggtalker_jax.geometry``
(rotations), ``ggtalker_jax.render`` (mesh preview), ``ggtalker_jax.kernels``
(splatting kernels).
"""

__version__ = "0.1.0"
