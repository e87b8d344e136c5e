"""What a training run shows: TensorBoard event files and a progress bar.

Scalars and images go to ``workdir/tensorboard`` through tensorboardX (imported on first use:
``flax.metrics.tensorboard`` would import TensorFlow). The progress bar is always shown, tty
or not, so a log file of a long run still shows where it got to.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ggtalker_jax.train.checkpoint import TENSORBOARD


class TrainLogger:
    """TensorBoard scalars and images for the run in ``workdir`` (``workdir/tensorboard``).

    In a multi-process run only process 0 writes (every process logs the same replicated
    numbers); the others' calls do nothing.
    """

    def __init__(self, workdir):
        import jax

        self.logdir = Path(workdir) / TENSORBOARD
        self._writer = None
        self._silent = jax.process_index() != 0

    def _get(self):
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(logdir=str(self.logdir))
        return self._writer

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One value per tag at ``step`` (host numbers: sync before calling)."""
        if self._silent:
            return
        writer = self._get()
        for tag, value in values.items():
            writer.add_scalar(tag, float(value), global_step=int(step))

    def images(self, step: int, name: str, image) -> None:
        """One image at ``step``.

        Args:
          image: ``[H, W, 3]`` uint8, or float in 0..1 (clipped).
        """
        if self._silent:
            return
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        self._get().add_image(name, image, global_step=int(step), dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ProgressBar:
    """A tqdm bar over steps with the loss, samples/s and the ETA (tqdm's own).

    Args:
      total: the last step.
      initial: the step the run starts from (a resumed run starts part-way).
      batch_size: samples per step (for samples/s).
      desc: the bar's label.
    """

    def __init__(self, total: int, initial: int, batch_size: int, desc: str = "train"):
        from tqdm import tqdm

        self.batch_size = batch_size
        self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
        self._last = (time.perf_counter(), initial)

    def update(self, step: int, loss: float | None = None) -> None:
        """Move to ``step``; with ``loss``, refresh the postfix (loss, samples/s)."""
        self._bar.update(step - self._bar.n)
        if loss is not None:
            now, since = time.perf_counter(), self._last[1]
            rate = (step - since) * self.batch_size / max(now - self._last[0], 1e-9)
            self._last = (now, step)
            self._bar.set_postfix(loss=f"{loss:.4g}", samples_s=f"{rate:.1f}")

    def close(self) -> None:
        self._bar.close()
