"""Geometry test scenes shared by the UV-layout and rigging tests."""

import numpy as np
import pytest


def make_sheet(rng: np.random.Generator, n: int = 3):
    """A bumpy n x n-cell sheet and a jittered UV layout over [0.1, 0.9]² (two triangles per
    cell, the same corners in 3D and in UV): ``(vertices [V, 3], faces [F, 3], vt [V, 2])``
    (``ft`` = ``faces``)."""
    g = np.linspace(0.1, 0.9, n + 1)
    vt = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    inner = (vt > 0.11).all(-1) & (vt < 0.89).all(-1)
    vt[inner] += rng.uniform(-0.03, 0.03, (int(inner.sum()), 2))
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c = i * (n + 1) + j, (i + 1) * (n + 1) + j, i * (n + 1) + j + 1
            d = (i + 1) * (n + 1) + j + 1
            faces += [[a, b, d], [a, d, c]]
    faces = np.asarray(faces, np.int32)
    verts = np.concatenate([0.2 * vt, 0.03 * rng.normal(size=(len(vt), 1))], -1)
    return verts, faces, vt


@pytest.fixture
def sheet(rng):
    """:func:`make_sheet` drawing from the test's seeded generator: ``sheet(n=3)``."""
    return lambda n=3: make_sheet(rng, n)
