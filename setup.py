"""Package discovery: ``kernels/`` and ``configs/`` install as ``ggtalker_jax.kernels`` and
``ggtalker_jax.configs`` (a package named plain ``kernels`` already exists on PyPI).
Everything else is declared in pyproject.toml."""

from setuptools import find_packages, setup

MAPPED = {"ggtalker_jax.kernels": "kernels", "ggtalker_jax.configs": "configs"}


def _mapped_packages() -> list[str]:
    found = []
    for name, folder in MAPPED.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


# Folders of data files that python could import as namespace packages; listed so that
# setuptools ships them without a warning (their files: package-data in pyproject.toml).
DATA_PACKAGES = [
    "ggtalker_jax.flame.assets",
    "ggtalker_jax.priors.shipped",
    "ggtalker_jax.priors.shipped.a2e",
    "ggtalker_jax.priors.shipped.a2e_tiny",
    "ggtalker_jax.priors.shipped.e2v",
    "ggtalker_jax.priors.shipped.e2v_tiny",
    "ggtalker_jax.priors.shipped.inpainter",
    "ggtalker_jax.priors.shipped.inpainter_tiny",
]

setup(
    packages=find_packages(include=["ggtalker_jax", "ggtalker_jax.*"])
    + DATA_PACKAGES
    + _mapped_packages(),
    package_dir=MAPPED,
    license="Apache-2.0",
)
