"""Named configs and --set overrides."""

import dataclasses
import json

import pytest

from ggtalker_jax.config import config_names, load_config
from ggtalker_jax.errors import InputError


@pytest.mark.parametrize("name", config_names())
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
    with pytest.raises(
        InputError, match="unknown config 'huge'; choose one of gpu, prior_multi, tiny"
    ):
        load_config("huge")


def test_config_names_are_the_modules_of_configs():
    """A new ``configs/NAME.py`` is a config: names are discovered, not listed."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "configs"
    on_disk = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert list(config_names()) == on_disk and "gpu" in on_disk


def test_world_section_takes_set_overrides_and_validates(rng):
    seed = int(rng.integers(2**31))
    config = load_config("tiny", [f"world.seed={seed}", "world.languages=en, de,fr"])
    assert config.world.seed == seed and config.world.languages == ("en", "de", "fr")
    assert config.world.video and config.world.identities == 2
    with pytest.raises(InputError, match=r"world.resolution=65 is invalid"):
        load_config("tiny", ["world.resolution=65"])
    with pytest.raises(InputError, match=r"world.video='maybe': not a valid bool"):
        load_config("tiny", ["world.video=maybe"])


def test_e2v_section_round_trips_and_takes_integer_tuples():
    import dataclasses
    import json

    from ggtalker_jax.config.e2v import BACKENDS, e2v_config_from_dict
    from ggtalker_jax.kernels.splat.checks import BACKENDS as KERNEL_BACKENDS

    assert BACKENDS == KERNEL_BACKENDS  # the config repeats the kernels' list (see e2v.py)
    config = load_config("gpu", ["e2v.uv_widths=16,32,64", "e2v.data.identities=7"]).e2v
    assert config.uv_widths == (16, 32, 64) and config.data.identities == 7
    assert e2v_config_from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config
    with pytest.raises(InputError, match=r"e2v.uv_widths='16,x': expected comma-separated"):
        load_config("tiny", ["e2v.uv_widths=16,x"])
    with pytest.raises(InputError, match=r"e2v: unknown field 'colour'"):
        e2v_config_from_dict({"colour": 1})


def test_a2e_section_round_trips_and_checks_its_window():
    from ggtalker_jax.config.a2e import a2e_config_from_dict

    config = load_config("gpu", ["a2e.data.languages=en,de", "a2e.layers=3"]).a2e
    assert config.data.languages == ("en", "de") and config.layers == 3
    assert a2e_config_from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config
    with pytest.raises(InputError, match=r"a2e.overlap=95 is invalid; expected 0 to window"):
        load_config("tiny", ["a2e.overlap=95", "a2e.window=100"])
    with pytest.raises(InputError, match=r"a2e.data.heldout_languages"):
        load_config("tiny", ["a2e.data.heldout_languages=en"])
    with pytest.raises(InputError, match=r"a2e: unknown field 'depth'"):
        a2e_config_from_dict({"depth": 1})
    with pytest.raises(InputError, match=r"a2e.wav2vec2_path"):
        load_config("tiny", ["a2e.encoder=wav2vec2"])


def test_prior_multi_scales_each_global_batch_with_the_device_count():
    import jax

    multi, one = load_config("prior_multi"), load_config("gpu")
    n = jax.device_count()
    assert n == 8 and multi.name == "prior_multi"
    for section in ("e2v", "a2e", "inpainter"):
        assert getattr(multi, section).batch_size == n * getattr(one, section).batch_size
        assert getattr(multi, section).learning_rate == getattr(one, section).learning_rate
