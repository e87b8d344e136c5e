"""The synthetic talking-head world: exact ground truth with nothing downloaded.

- :mod:`~ggtalker_jax.world.generate`: identities and clips as arrays (``iter_world``);
  deterministic from a seed.
- :mod:`~ggtalker_jax.world.folder`: a world on disk in the clip format (``write_world``,
  what ``ggtalker world`` calls), resumable, never confused with a user's folder.
- :mod:`~ggtalker_jax.world.scene`: torso, background, head motion, portrait cameras.
- :mod:`~ggtalker_jax.world.texture`: procedural UV textures with texel-scale detail.
- :mod:`~ggtalker_jax.world.speech` (espeak-ng), :mod:`~ggtalker_jax.world.corpus`
  (sentences per language), :mod:`~ggtalker_jax.world.visemes` (phonemes to FLAME mouth
  trajectories).
- :mod:`~ggtalker_jax.world.head`: the procedural FLAME-format head the package ships.

Submodules import their heavy dependencies (JAX, espeak-ng, ffmpeg) only when imported.
"""
