"""FLAME: a chumpy-free loader behind an allow-list unpickler, and skinning in ``jnp``.

>>> from ggtalker_jax.flame import load_flame, flame_forward
>>> from ggtalker_jax.types import FlameParams
>>> model = load_flame()            # the default head shipped with the package
>>> out = flame_forward(model, FlameParams.zeros(model.n_shape, model.n_exp))
>>> out.vertices.shape == (model.n_vertices, 3)
True
"""

from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.loader import convert_flame, default_head_path, load_flame
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.flame.safe_pickle import read_pickle_safely

__all__ = [
    "FlameModel",
    "convert_flame",
    "default_head_path",
    "flame_forward",
    "load_flame",
    "read_pickle_safely",
]
