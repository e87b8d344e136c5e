"""The synthetic talking-head world: exact ground truth with nothing downloaded.

- :mod:`~ggtalker_jax.world.generate`: identities and clips as arrays (``iter_world``) or in
  the clip format (``write_world``, what ``ggtalker world`` calls); deterministic from a seed.
- :mod:`~ggtalker_jax.world.scene`: torso, background, head motion, portrait cameras.
- :mod:`~ggtalker_jax.world.texture`: procedural UV textures with texel-scale detail.
- :mod:`~ggtalker_jax.world.speech` (espeak-ng), :mod:`~ggtalker_jax.world.corpus`
  (sentences per language), :mod:`~ggtalker_jax.world.visemes` (phonemes to FLAME mouth
  trajectories).
- :mod:`~ggtalker_jax.world.head`: the procedural FLAME-format head the package ships.

Submodules import their heavy dependencies (JAX, espeak-ng, ffmpeg) only when imported.
"""
