"""The optimizer every prior uses: AdamW on a warm-up + cosine schedule, global-norm clipping.

Weight decay applies to matrices and convolution kernels only (arrays of rank >= 2): decaying
biases and norm scales towards zero only fights the normalisation, as in most vision
trainers. Which parameters train at all is decided before the optimizer sees them, by the
filter passed to :func:`ggtalker_jax.train.state.split_model` (``PRIOR`` for a prior).
"""

from __future__ import annotations

import jax
import optax

from ggtalker_jax.errors import InputError


def make_schedule(learning_rate: float, steps: int, warmup_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then cosine decay to
    0 at ``steps``.

    Raises:
      InputError: a non-positive rate or step count, or a warm-up not shorter than the run.
    """
    if not learning_rate > 0:
        raise InputError(f"learning rate {learning_rate}: expected a positive number")
    if steps < 1 or not 0 <= warmup_steps < steps:
        raise InputError(
            f"steps {steps}, warmup_steps {warmup_steps}: expected steps >= 1 and "
            "0 <= warmup_steps < steps"
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=learning_rate, warmup_steps=warmup_steps, decay_steps=steps
    )


def _decay_mask(params):
    return jax.tree.map(lambda x: x.ndim >= 2, params)


def make_optimizer(
    learning_rate: float,
    steps: int,
    warmup_steps: int,
    weight_decay: float,
    grad_clip: float,
) -> optax.GradientTransformation:
    """AdamW (decoupled weight decay on rank >= 2 arrays) on :func:`make_schedule`, after
    clipping the gradient's global norm to ``grad_clip`` (0 turns clipping off).

    Raises:
      InputError: as :func:`make_schedule`, or a negative weight decay or clip.
    """
    if weight_decay < 0 or grad_clip < 0:
        raise InputError(
            f"weight_decay {weight_decay}, grad_clip {grad_clip}: expected numbers >= 0"
        )
    adamw = optax.adamw(
        make_schedule(learning_rate, steps, warmup_steps),
        weight_decay=weight_decay,
        mask=_decay_mask,
    )
    if grad_clip == 0:
        return adamw
    return optax.chain(optax.clip_by_global_norm(grad_clip), adamw)


def section_optimizer(section) -> optax.GradientTransformation:
    """:func:`make_optimizer` from a prior's config section (the training fields every
    section shares: ``learning_rate``, ``steps``, ``warmup_steps``, ``weight_decay``,
    ``grad_clip``)."""
    s = section
    return make_optimizer(s.learning_rate, s.steps, s.warmup_steps, s.weight_decay, s.grad_clip)


def section_schedule(section) -> optax.Schedule:
    """The learning-rate schedule of :func:`section_optimizer` (for the step's metrics)."""
    return make_schedule(section.learning_rate, section.steps, section.warmup_steps)
