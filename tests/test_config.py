"""Named configs and --set overrides."""

import json

import pytest

from ggtalker_jax.config import CONFIG_NAMES, load_config
from ggtalker_jax.errors import InputError


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_named_configs_load_and_serialise(name):
    config = load_config(name)
    assert config.name == name
    assert json.loads(config.to_json())["preview"]["cell_size"] == config.preview.cell_size


def test_overrides_convert_types(rng):
    size = int(rng.integers(32, 400))
    config = load_config(
        "tiny", [f"preview.cell_size={size}", "seed=7", "preview.expression_strength=1.5"]
    )
    assert (config.preview.cell_size, config.seed, config.preview.expression_strength) == (
        size,
        7,
        1.5,
    )
    with pytest.raises(AttributeError):
        config.seed = 3  # frozen


@pytest.mark.parametrize(
    "override,message",
    [
        ("preview.size=3", "unknown key 'size'"),
        ("preview.cell_size=big", "not a valid int"),
        ("preview.cell_size=8", r"preview.cell_size=8 is invalid; expected 32 to 1024"),
        ("seed", "expected key=value"),
        ("seed.x=1", "'seed' has no sub-keys"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(InputError, match=message):
        load_config("tiny", [override])


def test_unknown_config():
    with pytest.raises(InputError, match="unknown config 'huge'; choose one of tiny"):
        load_config("huge")
