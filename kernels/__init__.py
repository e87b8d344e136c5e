"""Accelerator kernels, installed as ``ggtalker_jax.kernels``.

Import them as ``ggtalker_jax.kernels...`` (never by the top-level folder name). They import
nothing from the talking-head stack, so they can be lifted into other JAX code as they are.
"""
