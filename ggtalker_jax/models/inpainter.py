"""The Body Inpainter: the rendered head and the original frame -> the final frame.

Inputs (:func:`ggtalker_jax.render.compose.inpainter_inputs`, 8 channels): the rendered head
(premultiplied RGB and alpha), the original frame with the *hole* blacked out (the head
region grown by a radius, :func:`~ggtalker_jax.render.compose.hole_mask`) and the hole.
Every published talking head takes torso and background from the original frame; the
network only repaints the hole: neck, jaw line, collar and the background the old head
covered, and the seam where they meet the rendered head.

Network: a U-Net at frame resolution (:class:`InpaintUNet`): a stem conv, one residual block
per level, ``len(widths) - 1`` stride-2 downsamplings, a middle block, nearest-neighbour
upsampling with skip connections by concatenation, and a last pre-activation conv to RGB.
It predicts a residual over the head composited on the holed frame,
``base = head_rgb + (1 - alpha) · frame_holed`` (:func:`~ggtalker_jax.render.compose.over`),
from a zero-initialised last conv: a fresh network outputs ``base`` (the rendered head where
its alpha is high, black in the rest of the hole), so even a lightly trained one keeps the
head it is given. Output = ``composite(clip(base + delta, 0, 1), frame, hole)``: the
original frame, bit for bit, wherever ``hole == 0``.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx

from ggtalker_jax.config.inpainter import InpainterConfig, InpainterDataConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.models.layers import ConvBlock, Downsample, ResBlock, Upsample, compute_dtype
from ggtalker_jax.render.compose import composite, inpainter_inputs, over

__all__ = ["INPUT_CHANNELS", "BodyInpainter", "InpaintUNet", "hole_radius"]

INPUT_CHANNELS = 8  # head RGB 3, alpha 1, holed frame 3, hole 1


class InpaintUNet(nnx.Module):
    """``[B, H, W, 8] -> [B, H, W, 3]`` residual (``H``, ``W`` multiples of
    ``2 ** (len(widths) - 1)``); level ``i`` runs at ``H / 2^i`` with ``widths[i]`` channels.
    The last conv starts at zero."""

    def __init__(self, widths: tuple[int, ...], rngs: nnx.Rngs, *, dtype):
        self.dtype = dtype
        self.stem = nnx.Conv(INPUT_CHANNELS, widths[0], (3, 3), dtype=dtype, rngs=rngs)
        self.enc = nnx.List([ResBlock(w, w, rngs, dtype=dtype) for w in widths])
        pairs = list(itertools.pairwise(widths))  # (level l, level l + 1) widths
        self.downs = nnx.List([Downsample(i, o, rngs, dtype=dtype) for i, o in pairs])
        self.middle = ResBlock(widths[-1], widths[-1], rngs, dtype=dtype)
        self.ups = nnx.List([Upsample(o, i, rngs, dtype=dtype) for i, o in pairs])
        self.dec = nnx.List([ResBlock(2 * i, i, rngs, dtype=dtype) for i, _ in pairs])
        zeros = nnx.initializers.zeros_init()
        self.out = ConvBlock(widths[0], 3, rngs, dtype=dtype, kernel_init=zeros)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem((x * 2.0 - 1.0).astype(self.dtype))  # [B, H, W, w0]
        skips = []
        for level, block in enumerate(self.enc):
            if level:
                x = self.downs[level - 1](x)  # [B, H/2^l, W/2^l, w_l]
            x = block(x)
            skips.append(x)
        x = self.middle(x)  # [B, H/2^L, W/2^L, w_L]
        for level in reversed(range(len(self.ups))):
            x = self.dec[level](jnp.concatenate([self.ups[level](x), skips[level]], axis=-1))
        return self.out(x).astype(jnp.float32)  # [B, H, W, 3]


def _check_inputs(head_rgb, head_alpha, frame, hole, levels: int) -> None:
    """Trace-time shape checks of :meth:`BodyInpainter.__call__` (one line each)."""
    shapes = {
        "head_rgb": tuple(head_rgb.shape),
        "head_alpha": tuple(head_alpha.shape),
        "frame": tuple(frame.shape),
        "hole": tuple(hole.shape),
    }
    rgb = shapes["frame"]
    if len(rgb) != 4 or rgb[-1] != 3:
        raise InputError(f"BodyInpainter: frame has shape {rgb}; give [B, H, W, 3] images")
    b, h, w, _ = rgb
    want = {"head_rgb": (b, h, w, 3), "head_alpha": (b, h, w), "hole": (b, h, w)}
    for name, shape in want.items():
        if shapes[name] != shape:
            raise InputError(
                f"BodyInpainter: {name} has shape {shapes[name]}, but the frame is {rgb}; "
                f"give {name} as {list(shape)}"
            )
    step = 2**levels
    if h % step or w % step:
        raise InputError(
            f"BodyInpainter: frames of {w}x{h} pixels; this {levels + 1}-level U-Net needs "
            f"both sides to be multiples of {step}: pad or resize the frame (e.g. to "
            f"{max(step, w // step * step)}x{max(step, h // step * step)})"
        )


class BodyInpainter(nnx.Module):
    """Rendered head + original frame -> final frame (module docstring).

    Args:
      config: the inpainter section (``widths``, ``compute_dtype``).
      rngs: parameter initialisation keys.
    """

    def __init__(self, config: InpainterConfig, rngs: nnx.Rngs):
        self.levels = len(config.widths) - 1
        self.unet = InpaintUNet(
            tuple(config.widths), rngs, dtype=compute_dtype(config.compute_dtype)
        )

    def __call__(
        self,
        head_rgb: jax.Array,  # [B, H, W, 3] premultiplied (over black)
        head_alpha: jax.Array,  # [B, H, W]
        frame: jax.Array,  # [B, H, W, 3] the original frame, 0..1
        hole: jax.Array,  # [B, H, W] 0/1, render.compose.hole_mask
    ) -> jax.Array:
        """Returns the final frames ``[B, H, W, 3]`` float32 in 0..1, equal to ``frame``
        wherever ``hole == 0``.

        Raises:
          InputError: (trace time) shapes that disagree, or sides not divisible by
            ``2 ** (len(widths) - 1)``.
        """
        _check_inputs(head_rgb, head_alpha, frame, hole, self.levels)
        x = inpainter_inputs(head_rgb, head_alpha, frame, hole)  # [B, H, W, 8]
        base = over(head_rgb, head_alpha, x[..., 4:7])  # the head over the holed frame
        pred = jnp.clip(base + self.unet(x), 0.0, 1.0)
        return composite(pred, frame, hole)


def hole_radius(config: InpainterDataConfig, height: int) -> float:
    """The dilation radius, in pixels, to cut the hole of a frame of ``height`` rows with
    (:func:`~ggtalker_jax.render.compose.hole_mask`) at inference and adaptation: the middle
    of the training range (``min_dilation..max_dilation`` of the side)."""
    return 0.5 * (config.min_dilation + config.max_dilation) * height
