"""Data: the clip format (reader/writer, mp4 and wav I/O) and a TFDS builder over clip
folders. The synthetic world that writes clips lives in :mod:`ggtalker_jax.world`.

Submodules import their heavy dependencies (ffmpeg, TFDS) only when used.
"""
