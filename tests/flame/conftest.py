"""A small random model in the converted FLAME layout, fresh per test."""

import numpy as np
import pytest


def make_toy_flame(
    rng: np.random.Generator, n_v: int = 60, n_shape: int = 6, n_exp: int = 4
) -> dict[str, np.ndarray]:
    """Random FLAME-layout arrays: 5 joints (root, neck, jaw, eyes), a third of the vertices
    with zero jaw weight, landmarks on random faces."""
    faces = np.stack([rng.permutation(n_v)[:3] for _ in range(2 * n_v)]).astype(np.int32)
    weights = rng.dirichlet(np.ones(5), n_v)
    weights[: n_v // 3, 2] = 0.0
    weights /= weights.sum(1, keepdims=True)
    posedirs = rng.normal(size=(n_v, 3, 36)) * 1e-3
    posedirs[: n_v // 3, :, 9:18] = 0.0  # jaw correctives only where the jaw has weight
    return {
        "v_template": rng.normal(size=(n_v, 3)) * 0.1,
        "f": faces,
        "shapedirs": rng.normal(size=(n_v, 3, n_shape + n_exp)) * 1e-2,
        "posedirs": posedirs,
        "J_regressor": rng.dirichlet(np.ones(n_v) * 0.3, 5),
        "weights": weights,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "n_shape": np.int32(n_shape),
        "n_exp": np.int32(n_exp),
        "lmk_faces_idx": rng.integers(0, 2 * n_v, 10).astype(np.int32),
        "lmk_bary_coords": rng.dirichlet(np.ones(3), 10),
    }


@pytest.fixture
def toy_flame(rng):
    return make_toy_flame(rng)
