"""Static settings of the Pallas splatting kernels."""

from __future__ import annotations

import dataclasses

# Channels at which ``chunk`` is unrolled in full. The unrolled body grows with chunk x
# channels and Triton's compile time grows faster still: on an H100, D = 32 at chunk 16
# took 52 s to compile the forward alone (D = 3: 4 s), so wide colours unroll fewer slots.
UNROLL_CHANNELS = 4


def padded_channels(n_channels: int) -> int:
    """Triton blocks are powers of two: the channel count rounded up."""
    return 1 << max(0, (n_channels - 1).bit_length())


class SplatInputError(ValueError):
    """Bad arguments to :func:`~ggtalker_jax.kernels.splat.api.rasterization` or
    :class:`KernelConfig`: one line naming the argument and the fix."""


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Kernel tuning knobs (all static: a change recompiles).

    Attributes:
      tile_size: tile side in pixels (power of two; 16 = 256 pixels per program).
      chunk: Gaussians per loop iteration, unrolled in the kernel body, for up to
        :data:`UNROLL_CHANNELS` colour channels; wider colours divide it (see
        :meth:`unroll`).
      num_warps: warps per forward program (Triton); 0 = 4 when an image batch has at most
        2048 tiles (fewer, longer programs), else 2.
      backward_num_warps: warps per backward program (its block reductions are warp
        shuffles alone with one warp, and need shared memory with more).
      interpret: run the kernels in the Pallas interpreter (CPU tests).
      heavy_first: launch the tiles with the longest lists first.
      backward_segments: split each tile list into this many parts that the backward
        processes in parallel from checkpoints the forward saves (0 = 8 when an image batch
        has at most 2048 tiles, else 2).
      prefetch: load the next chunk's Gaussian scalars while compositing the current one.
        Off by default: on an H100 it left batch 1 unchanged and made batch 8 1.7x slower
        (the carried scalars cost registers, hence occupancy).
      fast_math: approximate ``exp`` through PTX ``ex2.approx`` (GPU only; ignored when
        interpreting, which has no PTX).
    """

    tile_size: int = 16
    chunk: int = 16
    num_warps: int = 0
    backward_num_warps: int = 2
    interpret: bool = False
    heavy_first: bool = True
    backward_segments: int = 0
    fast_math: bool = True
    prefetch: bool = False

    def __post_init__(self):
        for name in ("tile_size", "chunk", "num_warps", "backward_num_warps"):
            value = getattr(self, name)
            if name == "num_warps" and value == 0:
                continue
            if not isinstance(value, int) or value < 1 or value & (value - 1):
                raise SplatInputError(f"KernelConfig.{name}={value!r} must be a power of two")

    def unroll(self, n_channels: int) -> int:
        """Slots per kernel loop iteration for ``n_channels`` colour channels: ``chunk``
        up to :data:`UNROLL_CHANNELS` channels, divided by the padded channel count's
        ratio to it above (at least 1). Forward and backward use the same value, since
        the backward segments start at the forward's chunk boundaries."""
        padded = padded_channels(n_channels)
        return max(1, self.chunk * UNROLL_CHANNELS // max(UNROLL_CHANNELS, padded))
