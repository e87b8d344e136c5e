"""The Body Inpainter's data and prior on CPU: examples made from frames (the drawn head, the
hole, the target), the sources (world in memory, clip folders), a few steps that lower the
loss on a fixed batch without retracing, a sharded step equal to the one-device step, a
resumed run equal to an uninterrupted one, ``ggtalker inpainter train | eval | export``
through its parser (export -> load gives the run's outputs), one-line refusals, and the
shipped tiny prior."""

import argparse
import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ggtalker_jax.commands_inpainter import add_inpainter_parser
from ggtalker_jax.config import load_config
from ggtalker_jax.data.inpainter import (
    ClipInpainter,
    FrameBatch,
    ProceduralInpainter,
    draw_example_randomness,
    examples_from_draws,
    make_examples,
    make_inpainter_source,
)
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame import load_flame
from ggtalker_jax.render.compose import dilate_mask, hole_mask, shift_image
from ggtalker_jax.train import TrainState, make_data_mesh, make_train_step, replicate, shard_batch
from ggtalker_jax.train.inpainter import (
    build_inpainter,
    make_loss_fn,
    predict,
    restore_inpainter_run,
    train_inpainter,
)
from ggtalker_jax.train.optim import section_optimizer

# The smallest inpainter: 3 levels of 4-8 channels on 32-pixel frames of 2 people (10 frames
# each), batch 8 (one example per simulated device), 5 steps at a rate high enough to show in
# them. Every test's training step is this config's, so they share one compile.
SMALL = [
    "inpainter.widths=4,8,8",
    "inpainter.batch_size=8",
    "inpainter.steps=5",
    "inpainter.learning_rate=0.005",
    "inpainter.warmup_steps=0",
    "inpainter.log_every=1",
    "inpainter.checkpoint_every=5",
    "inpainter.data.identities=2",
    "inpainter.data.heldout=1",
    "inpainter.data.seconds=0.4",
    "inpainter.data.image_size=32",
]


@pytest.fixture(scope="module")
def small():
    config = load_config("tiny", SMALL)
    model = load_flame()
    source = ProceduralInpainter(model, config.inpainter.data, config.inpainter.batch_size)
    return config, model, source


# --------------------------------------------------------------------------- data


def test_examples_draw_the_head_cut_the_hole_and_keep_the_target(small, key):
    config, _, source = small
    data = config.inpainter.data
    frames = source.batch(3)
    assert frames.frames.dtype == np.uint8 and frames.frames.shape == (8, 32, 32, 3)
    assert frames.head_mask.shape == (8, 32, 32) and frames.head_mask.max() == 1
    image = frames.frames.astype(np.float32) / 255.0
    mask = frames.head_mask.astype(np.float32)
    ex = make_examples(frames.frames, frames.head_mask, key, data)
    np.testing.assert_allclose(np.asarray(ex.target), image, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(ex.frame), np.asarray(ex.target))
    alpha, head, hole = (np.asarray(x) for x in (ex.head_alpha, ex.head_rgb, ex.hole))
    assert (head <= alpha[..., None] + 1e-6).all() and (alpha <= 1.0).all()
    # The hole covers the frame's head and the drawn one, and no more than the largest disk.
    assert (hole[mask > 0.5] == 1).all() and (hole[alpha > 0.1] == 1).all()
    widest = np.asarray(dilate_mask(np.maximum(mask, alpha > 0.1), data.max_dilation * 32))
    assert (hole <= widest).all() and hole.sum() > mask.sum()
    # Deterministic in the key, different with another.
    again = make_examples(frames.frames, frames.head_mask, key, data)
    np.testing.assert_array_equal(np.asarray(again.hole), hole)
    other = make_examples(frames.frames, frames.head_mask, jax.random.fold_in(key, 1), data)
    assert not np.array_equal(np.asarray(other.head_rgb), head)

    # With no jitter, softness or colour change, the drawn head is the frame's head exactly,
    # and the hole is the head grown by the drawn radius.
    draws = draw_example_randomness(key, 8, 32, data)
    draws = {**draws, "dx": 0 * draws["dx"], "dy": 0 * draws["dy"]}
    draws = {**draws, "softness": 0 * draws["softness"]}
    draws = {**draws, "gain": 1 + 0 * draws["gain"], "offset": 0 * draws["offset"]}
    plain = examples_from_draws(frames.frames, frames.head_mask, draws, data)
    np.testing.assert_array_equal(np.asarray(plain.head_alpha), mask)
    np.testing.assert_allclose(np.asarray(plain.head_rgb), image * mask[..., None], atol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(plain.hole), np.asarray(hole_mask(mask, mask, draws["radius"], 2))
    )
    # A pure jitter moves the mask (softness 0: alpha is the shifted mask).
    moved = {**draws, "dx": jnp.full((8,), 1.0), "dy": jnp.full((8,), -1.0)}
    shifted = examples_from_draws(frames.frames, frames.head_mask, moved, data)
    np.testing.assert_array_equal(
        np.asarray(shifted.head_alpha), np.asarray(shift_image(mask[..., None], 1.0, -1.0))[..., 0]
    )


def test_sources_are_deterministic_and_refuse_bad_input(small, tmp_path):
    config, model, source = small
    data = config.inpainter.data
    a, b = source.batch(5), source.batch(5)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(source.batch(6).frames, a.frames)
    held = make_inpainter_source(model, data, 2, "heldout")
    assert len(held.frames) == 1 and held.frames[0].shape == (10, 32, 32, 3)
    assert not np.array_equal(held.frames[0], source.frames[0])  # other people
    ev = source.evaluation_frames(3)
    assert isinstance(ev, FrameBatch) and ev.frames.shape[0] == 6
    # What a worker process of a large world writes (run here, in this process).
    from ggtalker_jax.data.inpainter import _worker_main, world_for_split

    np.savez(tmp_path / "model.npz", **model.to_arrays())
    world = json.dumps(dataclasses.asdict(world_for_split(data, "train")))
    _worker_main([str(tmp_path / "model.npz"), model.source, world, "1", str(tmp_path / "w.npz")])
    with np.load(tmp_path / "w.npz") as part:
        np.testing.assert_array_equal(part["frames0"], source.frames[1])
        np.testing.assert_array_equal(part["head0"], source.masks[1])

    # A clip folder: the frames (H.264, lossy) and the exact head masks.
    from ggtalker_jax.config import WorldConfig
    from ggtalker_jax.world.folder import write_world

    world = WorldConfig(identities=1, clips_per_identity=1, seconds=0.4, resolution=32, seed=3)
    write_world(tmp_path / "world", model, world)
    clips = ClipInpainter(tmp_path / "world", data, 4)
    np.testing.assert_array_equal(clips.masks[0], source.masks[0])
    assert np.abs(clips.frames[0].astype(float) - source.frames[0]).mean() < 8
    np.testing.assert_array_equal(clips.batch(2).frames, clips.batch(2).frames)

    cases = [
        (lambda: ClipInpainter(tmp_path / "nope", data, 4), "no such folder"),
        (lambda: ClipInpainter(tmp_path, dataclasses.replace(data, image_size=64), 4), "64"),
        (
            lambda: make_inpainter_source(
                model, dataclasses.replace(data, heldout=0), 1, "heldout"
            ),
            "heldout=2",
        ),
        (
            lambda: make_inpainter_source(
                model, dataclasses.replace(data, source=str(tmp_path)), 1, "heldout"
            ),
            "no held-out split",
        ),
    ]
    (tmp_path / "empty").mkdir()
    cases.append((lambda: ClipInpainter(tmp_path / "empty", data, 4), "holds no clip folders"))
    for make, message in cases:
        with pytest.raises(InputError) as err:
            make()
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


# --------------------------------------------------------------------------- step


@functools.cache
def _step(devices: int):
    """``(mesh, optimizer, train_step)`` of :data:`SMALL` on the first ``devices`` devices:
    the step ``train_inpainter`` builds for it (one compile shared by the tests)."""
    section = load_config("tiny", SMALL).inpainter
    mesh = make_data_mesh(jax.devices()[:devices])
    optimizer = section_optimizer(section)
    return mesh, optimizer, make_train_step(make_loss_fn(section, mesh), optimizer, mesh)


def _state(config, mesh, optimizer, seed=0):
    return replicate(TrainState.from_model(build_inpainter(config, seed), optimizer), mesh)


def test_steps_lower_the_loss_on_a_fixed_batch_without_retracing(small, key, count_traces):
    config, _, source = small
    mesh, optimizer, _ = _step(len(jax.devices()))
    # The step folds its step count into the run's key (train.step); this loss draws its
    # holes with one fixed key instead, so every step solves the same problem.
    loss_fn = make_loss_fn(config.inpainter, mesh)
    step = make_train_step(lambda model, batch, _: loss_fn(model, batch, key), optimizer, mesh)
    state = _state(config.inpainter, mesh, optimizer)
    batch = shard_batch(source.batch(0), mesh)
    state, first = step(state, batch, key)
    losses = [float(first["loss"])]
    # A fresh network outputs the baseline exactly.
    np.testing.assert_allclose(
        float(first["hole_psnr"]), float(first["baseline_hole_psnr"]), rtol=1e-5
    )
    with count_traces() as traces:
        for _ in range(config.inpainter.steps - 1):
            state, metrics = step(state, batch, key)
            losses.append(float(metrics["loss"]))
    assert traces() == 0
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.95 * losses[0], losses
    assert float(metrics["hole_psnr"]) > float(metrics["baseline_hole_psnr"]) + 0.5


def test_a_sharded_step_equals_the_single_device_step(small, key):
    config, _, source = small
    batch = source.batch(1)
    results = []
    for devices in (1, len(jax.devices())):
        mesh, optimizer, step = _step(devices)
        state = _state(config.inpainter, mesh, optimizer, seed=1)
        state, first = step(state, shard_batch(batch, mesh), key)
        params = jax.device_get(state.params)
        # The second step's gradient reaches every layer (the first moved the zero last one).
        _, second = step(state, shard_batch(batch, mesh), key)
        results.append((jax.device_get(first), params, jax.device_get(second)))
    assert len(jax.devices()) == 8
    (f1, p1, s1), (f8, p8, s8) = results
    for name in f1:
        np.testing.assert_allclose(f8[name], f1[name], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(s8[name], s1[name], rtol=1e-4, err_msg=name)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- the run


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(small, tmp_path):
    config, _, source = small
    straight = train_inpainter(config, tmp_path / "a", progress=False, data=source)

    def interrupt(inpainter, step):  # Ctrl-C during the evaluation after step 3
        raise KeyboardInterrupt

    every3 = dataclasses.replace(
        config, inpainter=dataclasses.replace(config.inpainter, eval_every=3)
    )  # eval_every may change on a resume
    with pytest.raises(KeyboardInterrupt):
        train_inpainter(every3, tmp_path / "b", progress=False, data=source, eval_fn=interrupt)
    resumed = train_inpainter(config, tmp_path / "b", progress=False, data=source)
    steps = config.inpainter.steps
    assert int(straight.result.state.step) == int(resumed.result.state.step) == steps
    assert resumed.result.position == steps
    assert [h["step"] for h in resumed.result.history] == list(range(4, steps + 1))
    a = jax.tree.leaves(straight.result.state.arrays())
    b = jax.tree.leaves(resumed.result.state.arrays())
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert list((tmp_path / "a" / "tensorboard").iterdir())


def _cli(argv):
    """``ggtalker inpainter ...`` through its own parser; a user mistake is the one line."""
    parser = argparse.ArgumentParser(prog="ggtalker")
    add_inpainter_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_cli_train_eval_export_load_and_refusals(small, tmp_path, capsys):
    from ggtalker_jax.priors.inpainter import load_inpainter_prior

    work, prior = tmp_path / "run", tmp_path / "prior"
    sets = [x for s in SMALL for x in ("--set", s)]
    _cli(["inpainter", "train", "--workdir", str(work), *sets])
    out = capsys.readouterr().out
    assert "trained" in out and "step 5" in out and "held-out frames" in out
    report = json.loads((work / "eval" / "metrics.json").read_text())
    assert report["examples"] == 4 and set(report) >= {"ours", "baseline"}
    assert all(np.isfinite(v) for row in ("ours", "baseline") for v in report[row].values())
    assert (work / "eval" / "grid.png").stat().st_size > 1000

    # Another architecture in the same folder: one line naming the field.
    with pytest.raises(InputError, match=r"inpainter\.widths") as err:
        _cli(["inpainter", "train", "--workdir", str(work), *sets, "--set", "inpainter.widths=4,8"])
    assert "\n" not in str(err.value)

    # Export in float32: the prior draws exactly what the run's checkpoint draws.
    _cli(["inpainter", "export", "--workdir", str(work), "--out", str(prior), "--dtype", "float32"])
    assert "wrote prior" in capsys.readouterr().out
    with pytest.raises(InputError, match="already holds a prior; pass --force"):
        _cli(["inpainter", "export", "--workdir", str(work), "--out", str(prior)])
    run_inpainter, section, _, step = restore_inpainter_run(work)
    loaded, loaded_config, info = load_inpainter_prior(prior)
    assert step == 5 and loaded_config == section and info["steps"] == 5
    assert info["eval"]["ours"] == report["ours"]
    _, _, source = small
    frames = source.batch(9)
    examples = make_examples(frames.frames, frames.head_mask, jax.random.key(1), section.data)
    np.testing.assert_array_equal(predict(loaded, examples), predict(run_inpainter, examples))
    assert jax.tree.structure(nnx.state(loaded)) == jax.tree.structure(nnx.state(run_inpainter))

    # eval of the prior into a folder (the same examples: the same scores); again needs --force.
    ev = ["inpainter", "eval", "--prior", str(prior), "--out", str(tmp_path / "ev")]
    _cli(ev)
    assert "hole PSNR" in capsys.readouterr().out
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["ours"] == pytest.approx(report["ours"], rel=1e-5)
    with pytest.raises(InputError, match="metrics.json: already exists; pass --force"):
        _cli(ev)


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--workdir", "{tmp}"], "no training run here"),
        (["eval", "--prior", "{tmp}", "--out", "{tmp}/o"], "not a prior folder"),
        (["eval", "--prior", "{tmp}"], "pass --out DIR"),
        (["export", "--workdir", "{tmp}", "--out", "{tmp}/p"], "no training run here"),
        (
            ["train", "--workdir", "{tmp}/w", "--set", "inpainter.batch_size=12"],
            "batch size 12 is not divisible by the 8 devices",
        ),
        (
            ["train", "--workdir", "{tmp}/w", "--set", "inpainter.data.image_size=40"],
            "inpainter.widths=",
        ),
        (["train", "--workdir", "{tmp}/w", "--minutes", "0"], "--minutes 0"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    args = ["inpainter", *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    with pytest.raises(InputError) as err:
        _cli(args)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_shipped_tiny_prior_loads_and_beat_its_baseline(small, key):
    from ggtalker_jax.priors import shipped_prior
    from ggtalker_jax.priors.inpainter import load_inpainter_prior

    inpainter, section, info = load_inpainter_prior(shipped_prior("inpainter_tiny"))
    assert section == load_config("tiny").inpainter
    assert info["kind"] == "inpainter" and info["eval"]["hole_psnr_gain_db"] > 1.0
    # It runs at another size (a fully convolutional net) and keeps the outside exact.
    config, _, source = small
    frames = source.batch(2)
    examples = make_examples(frames.frames, frames.head_mask, key, config.inpainter.data)
    out = predict(inpainter, examples, chunk=8)
    outside = np.asarray(examples.hole) == 0
    np.testing.assert_array_equal(out[outside], np.asarray(examples.frame)[outside])
