"""Data: the clip format (reader/writer, mp4 and wav I/O), the synthetic talking-head world
(identities, speech-driven motion, exact frames) and a TFDS builder over clip folders.

Submodules import their heavy dependencies (ffmpeg, espeak-ng, TFDS) only when used.
"""
