"""The procedural FLAME-format head: built once by ``tools/make_procedural_head.py`` into
``ggtalker_jax/flame/assets/procedural_head.npz``, which ``load_flame()`` reads by default.

:mod:`~ggtalker_jax.world.head.build` assembles it from the surface
(:mod:`~ggtalker_jax.world.head.surface`, :mod:`~ggtalker_jax.world.head.patches`,
:mod:`~ggtalker_jax.world.head.mesh`), the rig (:mod:`~ggtalker_jax.world.head.rig`), the
blendshapes (:mod:`~ggtalker_jax.world.head.blendshapes`) and the UVs, landmarks and masks
(:mod:`~ggtalker_jax.world.head.annotations`).
"""
