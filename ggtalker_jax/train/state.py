"""The training state: a pytree of arrays (what is jitted, donated and checkpointed) plus the
model's static graph.

A model is split once, outside jit, into its graph (static), the parameters that train
(selected by a filter: ``PRIOR`` for a prior, ``IDENTITY`` for adaptation) and the rest
(frozen: other parameters, constants). The step differentiates ``params`` only and rebuilds
the module with ``nnx.merge`` inside the trace, which is valid in NNX's tree mode as well
(no Variable is shared between the pieces, nothing mutates the graph under jit).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ggtalker_jax.models.variables import PRIOR


def split_model(model: nnx.Module, wrt=PRIOR) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """``(graphdef, params, frozen)``: the parameters selected by the filter ``wrt`` train,
    everything else in ``model`` is carried unchanged."""
    graphdef, params, frozen = nnx.split(model, wrt, ...)
    return graphdef, params, frozen


class TrainState(flax.struct.PyTreeNode):
    """What a training step reads and returns.

    Attributes:
      step: optimizer steps taken, int32 scalar.
      params: the trained parameters (``nnx.State``).
      opt_state: the optimizer's state for ``params``.
      frozen: the model's other state (``nnx.State``; may be empty), never differentiated.
      graphdef: the model's static graph (not a pytree leaf).
    """

    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState
    frozen: nnx.State
    graphdef: nnx.GraphDef = flax.struct.field(pytree_node=False)

    @classmethod
    def create(
        cls,
        graphdef: nnx.GraphDef,
        params: nnx.State,
        optimizer: optax.GradientTransformation,
        frozen: nnx.State | None = None,
    ) -> TrainState:
        """A state at step 0 with a fresh optimizer state for ``params``."""
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            frozen=nnx.State({}) if frozen is None else frozen,
            graphdef=graphdef,
        )

    @classmethod
    def from_model(
        cls, model: nnx.Module, optimizer: optax.GradientTransformation, wrt=PRIOR
    ) -> TrainState:
        """:meth:`create` from a module, training the parameters selected by ``wrt``."""
        graphdef, params, frozen = split_model(model, wrt)
        return cls.create(graphdef, params, optimizer, frozen)

    def model(self, params: nnx.State | None = None) -> nnx.Module:
        """The module with ``params`` (default: the state's own) and the frozen state."""
        return nnx.merge(self.graphdef, self.params if params is None else params, self.frozen)

    def apply_gradients(self, grads: nnx.State, optimizer: optax.GradientTransformation):
        """One optimizer update of ``params`` with ``grads`` (same structure)."""
        # optax's Adam bias correction raises a float to an int32 step count, which strict
        # dtype promotion (the test suite's setting) refuses; the library code is fine as is.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            opt_state=opt_state,
        )

    def arrays(self) -> dict:
        """The state's arrays as a plain dict (what a checkpoint holds)."""
        return {
            "step": self.step,
            "params": self.params,
            "opt_state": self.opt_state,
            "frozen": self.frozen,
        }
