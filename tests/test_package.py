"""Packaging: a normal (non-editable) install carries the mapped subpackages and assets, and
setuptools has nothing to warn about."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_installed_copy_imports_kernels_configs_and_head(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("ggtalker_jax", "kernels", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    # No warning of the project's making (license metadata, data folders, ...); the
    # machine's own pip configuration may add lines of its own, which are not ours.
    for marker in ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "would be ignored"):
        assert marker not in install.stdout + install.stderr, install.stderr
    shutil.rmtree(src)  # the installed copy must stand on its own
    code = (
        "import ggtalker_jax.kernels as k, ggtalker_jax.configs.tiny as t\n"
        "from ggtalker_jax.flame import load_flame\n"
        "from ggtalker_jax.config import load_config\n"
        "print(k.__file__); print(t.__file__)\n"
        "print(load_config('gpu').preview.cell_size, load_flame().n_vertices)\n"
        # Every subpackage the demo needs made it into the installed copy (an editable
        # install of the checkout could otherwise serve a missing one).
        "import ggtalker_jax.world.generate as w, ggtalker_jax.eval as e, ggtalker_jax.demo as d\n"
        "import ggtalker_jax.render.mesh.shading as r, ggtalker_jax.world.visemes as a\n"
        "print(' '.join(m.__file__ for m in (w, e, d, r, a)))\n"
        # The shipped priors (data files) and the stages that load them.
        "import ggtalker_jax.train.e2v, ggtalker_jax.models, ggtalker_jax.priors.e2v\n"
        "import ggtalker_jax.train.a2e, ggtalker_jax.priors.a2e\n"
        "from ggtalker_jax.priors import shipped_prior, read_prior_info\n"
        "print(read_prior_info(shipped_prior('e2v'))['kind'], shipped_prior('e2v_tiny'))\n"
        "print(read_prior_info(shipped_prior('a2e'))['kind'], shipped_prior('a2e_tiny'))\n"
        "import ggtalker_jax.priors.inpainter, ggtalker_jax.train.adapt, ggtalker_jax.infer\n"
        "print(read_prior_info(shipped_prior('inpainter'))['kind'], "
        "shipped_prior('inpainter_tiny'))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    kernels_file, configs_file, sizes, modules = out.stdout.split("\n")[:4]
    assert kernels_file.startswith(str(target)) and configs_file.startswith(str(target))
    for module_file in modules.split():
        assert module_file.startswith(str(target)), module_file
    cell_size, n_vertices = map(int, sizes.split())
    assert cell_size == 512 and n_vertices > 1000
    kind, tiny = out.stdout.split("\n")[4].split()
    assert kind == "e2v" and tiny.startswith(str(target))
    kind, tiny = out.stdout.split("\n")[5].split()
    assert kind == "a2e" and tiny.startswith(str(target))
    kind, tiny = out.stdout.split("\n")[6].split()
    assert kind == "inpainter" and tiny.startswith(str(target))
