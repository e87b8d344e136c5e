"""The ``ggtalker`` command line: parse arguments, load a config, call one library function.

User mistakes (:class:`ggtalker_jax.errors.InputError`) print one line and exit with status
2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
import time
from pathlib import Path

from ggtalker_jax.cli_args import (
    add_config_args,
    add_eval_parser,
    add_export_parser,
    add_train_parser,
    check_eval_out,
    export_run_prior,
    time_limit,
)
from ggtalker_jax.config import (
    MAX_CLIPS,
    MAX_CLIPS_PER_IDENTITY,
    MAX_IDENTITIES,
    MAX_RESOLUTION,
    MAX_SECONDS,
    MAX_SEED,
    MAX_VIEWS,
    WorldConfig,
)
from ggtalker_jax.errors import InputError, Preempted


def _load_model(path: str | None):
    from ggtalker_jax.flame import load_flame

    return load_flame(path or None)


def cmd_flame_convert(args) -> None:
    from ggtalker_jax.flame import convert_flame

    model = convert_flame(
        args.model,
        args.out,
        uv=args.uv,
        landmarks=args.landmarks,
        masks=args.masks,
        force=args.force,
    )
    parts = [
        p
        for p, ok in (
            ("uv", model.vt.shape[0] > 0),
            ("landmarks", model.lmk_faces_idx.shape[0] > 0),
            ("masks", bool(model.masks)),
        )
        if ok
    ]
    print(
        f"wrote {args.out}: {model.n_vertices} vertices, {model.faces.shape[0]} faces, "
        f"{model.n_shape} shape + {model.n_exp} expression components; optional parts: "
        f"{', '.join(parts) or 'none'}"
    )


def cmd_flame_preview(args) -> None:
    from ggtalker_jax.config import load_config
    from ggtalker_jax.outputs import atomic_file, output_file
    from ggtalker_jax.render.preview import default_cells, render_preview_grid

    out = output_file(args.out, args.force, what="--out", suffixes=(".png",))
    config = load_config(args.config, args.set)
    model = _load_model(args.model or config.flame_model)
    cells = default_cells(model, config.preview.expression_strength)
    image = render_preview_grid(model, cells, config.preview.cell_size)
    with atomic_file(out) as tmp:
        image.save(tmp)
    print(
        f"wrote {out} ({image.width}x{image.height}, {len(cells)} expressions x "
        f"{len(cells[0])} poses of {model.source})"
    )


def cmd_demo(args) -> None:
    from ggtalker_jax.config import load_config
    from ggtalker_jax.demo import run_demo, summary_lines

    config = load_config(args.config, args.set)
    metrics = run_demo(args.out, config, force=args.force)
    print("\n".join(summary_lines(args.out, metrics)))


def _e2v_eval_source(model, e2v):
    from ggtalker_jax.data.e2v import ProceduralE2V, split_identities

    data = dataclasses.replace(e2v.data, source="procedural")
    return ProceduralE2V(model, data, 1, split_identities(data, "heldout"))


def _print_eval(report: dict, out) -> None:
    from ggtalker_jax.eval.e2v import summary_table

    print("\n".join(summary_table(report)))
    print(f"wrote {out}/metrics.json and {len(report['cases'])} grids")


def cmd_e2v_train(args) -> None:
    from ggtalker_jax.config import load_config
    from ggtalker_jax.eval.e2v import evaluate_e2v
    from ggtalker_jax.train.checkpoint import EVAL
    from ggtalker_jax.train.e2v import train_e2v

    config = load_config(args.config, args.set)
    model = _load_model(args.model or config.flame_model)
    run = train_e2v(config, args.workdir, model, force=args.force, time_limit=time_limit(args))
    last = run.result.history[-1] if run.result.history else {}
    print(
        f"trained {args.workdir}: step {int(run.result.state.step)}, loss "
        f"{last.get('train/loss', float('nan')):.4f}, head PSNR "
        f"{last.get('train/head_psnr', float('nan')):.2f} dB (train batch), "
        f"{run.samples_per_second:.1f} samples/s over {run.seconds:.0f} s"
    )
    if args.no_eval or config.e2v.data.heldout == 0:
        return
    out = Path(args.workdir) / EVAL
    report = evaluate_e2v(run.generator, _e2v_eval_source(model, config.e2v), config.e2v, out)
    _print_eval(report, out)


def cmd_e2v_eval(args) -> None:
    from ggtalker_jax.eval.e2v import evaluate_e2v
    from ggtalker_jax.train.checkpoint import EVAL

    model = _load_model(args.model) if args.model else None
    if args.workdir:
        from ggtalker_jax.train.e2v import restore_e2v_run

        generator, e2v, _, _ = restore_e2v_run(args.workdir, model)
        out = Path(args.out or Path(args.workdir) / EVAL)
    else:
        from ggtalker_jax.priors.e2v import load_e2v_prior

        if not args.out:
            raise InputError("e2v eval --prior: pass --out DIR for the metrics and grids")
        generator, e2v, _ = load_e2v_prior(args.prior if args.prior != "shipped" else None, model)
        out = Path(args.out)
    check_eval_out(out, args.force)
    source = _e2v_eval_source(model or generator.template.model, e2v)
    _print_eval(evaluate_e2v(generator, source, e2v, out), out)


def cmd_e2v_export(args) -> None:
    from ggtalker_jax.priors.e2v import export_e2v_prior
    from ggtalker_jax.train.e2v import restore_e2v_run

    generator, e2v, run_config, step = restore_e2v_run(args.workdir)
    export_run_prior(
        args,
        run_config,
        step,
        lambda provenance: export_e2v_prior(
            generator, e2v, args.out, provenance, args.dtype, args.force
        ),
    )


# ``ggtalker world`` flags that are shortcuts for fields of the config's world section.
WORLD_FLAGS = (
    "identities",
    "clips_per_identity",
    "seconds",
    "resolution",
    "seed",
    "languages",
    "views",
)


def world_config(args):
    """The world section of ``--config``/``--set``, with the flags given on top of it."""
    from ggtalker_jax.config import load_config

    for item in args.set:
        if item.partition("=")[0].strip() == "seed":
            raise InputError(
                f"--set {item}: ggtalker world takes its seed from world.seed (or --seed); "
                "the top-level seed is the demo's"
            )
    config = load_config(args.config, args.set)
    given = {field: getattr(args, field) for field in WORLD_FLAGS}
    given = {k: v for k, v in given.items() if v is not None}
    if "languages" in given:
        given["languages"] = tuple(v.strip() for v in given["languages"].split(",") if v.strip())
    if args.no_video:
        given["video"] = False
    return config, dataclasses.replace(config.world, **given)


def cmd_world(args) -> None:
    from ggtalker_jax.world.folder import write_world

    out = args.out  # checked by write_world before any work
    config, world = world_config(args)
    model = _load_model(args.model or config.flame_model)
    start = time.perf_counter()
    written = write_world(out, model, world, force=args.force)
    total = world.identities * world.clips_per_identity
    print(
        f"world {out}: {total} clips ({len(written)} new, {total - len(written)} kept) "
        f"of {world.seconds:g} s at {world.resolution}x{world.resolution}"
        f"{'' if world.video else ' (audio + FLAME only)'} in "
        f"{time.perf_counter() - start:.1f} s"
    )


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (its default prints the whole usage)."""

    def error(self, message: str):
        command = self.prog.removeprefix("ggtalker").strip()
        where = f"{command}: " if command else ""
        print(f"ggtalker: error: {where}{message}; see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ggtalker",
        description="Speech-driven 3D Gaussian talking heads in JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    flame = sub.add_parser("flame", help="FLAME models: convert a real .pkl, preview a model")
    flame_sub = flame.add_subparsers(dest="flame_command", metavar="SUBCOMMAND", required=True)
    conv = flame_sub.add_parser("convert", help="real FLAME .pkl (+ UV, landmarks, masks) -> .npz")
    conv.add_argument("model", help="FLAME generic_model.pkl (2017/2020/2023) or an .npz")
    conv.add_argument("out", help="output .npz")
    conv.add_argument("--uv", help="head_template.obj with the UV layout")
    conv.add_argument("--landmarks", help="landmark embedding (.pkl, .npy or .npz)")
    conv.add_argument("--masks", help="FLAME_masks.pkl with region vertex indices")
    conv.add_argument("--force", action="store_true", help="overwrite an existing output")
    conv.set_defaults(func=cmd_flame_convert)
    prev = flame_sub.add_parser("preview", help="PNG grid of expressions and poses of a model")
    prev.add_argument("--model", help="FLAME .pkl/.npz (default: the shipped procedural head)")
    prev.add_argument("--out", required=True, help="output PNG")
    prev.add_argument("--force", action="store_true", help="overwrite an existing output")
    add_config_args(prev, "preview.cell_size=256")
    prev.set_defaults(func=cmd_flame_preview)

    d = WorldConfig()  # the defaults of the world section (named configs may change them)
    world = sub.add_parser("world", help="synthetic clips: speech, FLAME motion, exact frames")
    world.add_argument("--out", required=True, help="output folder (resumable)")
    world.add_argument(
        "--identities", type=int, help=f"people, 1 to {MAX_IDENTITIES} (default {d.identities})"
    )
    world.add_argument(
        "--clips-per-identity",
        type=int,
        help=f"clips per person, 1 to {MAX_CLIPS_PER_IDENTITY}, at most {MAX_CLIPS} clips in "
        f"all (default {d.clips_per_identity})",
    )
    world.add_argument(
        "--seconds", type=float, help=f"clip length, 0.4 to {MAX_SECONDS} (default {d.seconds:g})"
    )
    world.add_argument(
        "--resolution",
        type=int,
        help=f"frame side, even, 32 to {MAX_RESOLUTION} (default {d.resolution})",
    )
    world.add_argument("--seed", type=int, help=f"world seed, 0 to {MAX_SEED} (default {d.seed})")
    world.add_argument(
        "--languages",
        help="comma-separated espeak voices, one per identity in turn "
        f"(default {','.join(d.languages)}; e.g. en,de,fr,es)",
    )
    world.add_argument(
        "--views",
        type=int,
        help=f"extra cameras per clip (novel-view ground truth), 0 to {MAX_VIEWS} "
        f"(default {d.views})",
    )
    world.add_argument(
        "--no-video", action="store_true", help="audio + FLAME only (audio-prior data)"
    )
    world.add_argument("--model", help="FLAME .pkl/.npz with UVs (default: the shipped head)")
    world.add_argument(
        "--force",
        action="store_true",
        help="replace a world of other settings (start afresh); never removes files that "
        "ggtalker did not write",
    )
    add_config_args(world, "world.texture_size=512 (the flags above set world.* fields)")
    world.set_defaults(func=cmd_world)

    e2v = sub.add_parser("e2v", help="the Expression-Visual prior: train, evaluate, export")
    e2v_sub = e2v.add_subparsers(dest="e2v_command", metavar="SUBCOMMAND", required=True)
    add_train_parser(
        e2v_sub,
        "E2V",
        "FLAME .pkl/.npz with UVs (default: the shipped head)",
        "e2v.steps=500",
        cmd_e2v_train,
    )
    add_eval_parser(
        e2v_sub,
        "score a run or a prior on held-out identities",
        "FLAME .pkl/.npz with UVs (default: the run's)",
        cmd_e2v_eval,
    )
    add_export_parser(e2v_sub, cmd_e2v_export)

    from ggtalker_jax.commands_a2e import add_a2e_parser

    add_a2e_parser(sub)

    from ggtalker_jax.commands_inpainter import add_inpainter_parser

    add_inpainter_parser(sub)

    from ggtalker_jax.commands_talk import add_talk_parsers

    add_talk_parsers(sub)

    demo = sub.add_parser("demo", help="the main job on the embedded default (writes DIR/...)")
    demo.add_argument("--out", default="out", help="output folder (default: out)")
    demo.add_argument(
        "--force", action="store_true", help="overwrite the outputs of an earlier demo"
    )
    add_config_args(demo, "demo.adapt_seconds=30")
    demo.set_defaults(func=cmd_demo)
    return parser


# Failures of the file system that a user causes or fixes (a full disk, a read-only mount,
# a permission): one line like any other user mistake, not a traceback.
_USER_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def user_mistake(error: BaseException) -> str | None:
    """The one line to print for a user mistake, or ``None`` for a bug (keeps its traceback).

    The kernels' ``SplatInputError`` counts too; it is looked up only if the kernels were
    imported, so ``--help`` does not pay for importing JAX.
    """
    splat = sys.modules.get("ggtalker_jax.kernels.splat.checks")
    if isinstance(error, InputError) or (splat and isinstance(error, splat.SplatInputError)):
        return str(error)
    if isinstance(error, OSError) and error.errno in _USER_ERRNOS:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror} (while writing the outputs; nothing finished was lost)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ggtalker`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("ggtalker: interrupted", file=sys.stderr)
        return 130
    except Preempted as e:
        print(f"ggtalker: {e}", file=sys.stderr)
        return e.exit_status
    except Exception as e:
        line = user_mistake(e)
        if line is None:
            raise
        print(f"ggtalker: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
