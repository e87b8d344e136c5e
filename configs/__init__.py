"""Named configurations (installed as ``ggtalker_jax.configs``); see ``ggtalker_jax.config``."""
