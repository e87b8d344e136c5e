"""``ggtalker inpainter train|eval|export``: the Body Inpainter's commands (thin: parse, load,
call the library). :mod:`ggtalker_jax.cli` adds them to its parser."""

from __future__ import annotations

from pathlib import Path

from ggtalker_jax.cli_args import (
    add_eval_parser,
    add_export_parser,
    add_train_parser,
    check_eval_out,
    export_run_prior,
    time_limit,
)
from ggtalker_jax.errors import InputError

MODEL_HELP = "FLAME .pkl/.npz with UVs for the world's heads (default: the shipped head)"


def _print_eval(report: dict, out: Path) -> None:
    from ggtalker_jax.train.inpainter import summary_table

    print("\n".join(summary_table(report)))
    print(f"wrote {out}/metrics.json and {out}/grid.png")


def cmd_inpainter_train(args) -> None:
    from ggtalker_jax.config import load_config
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.train.checkpoint import EVAL
    from ggtalker_jax.train.inpainter import evaluate_run, train_inpainter

    config = load_config(args.config, args.set)
    model = load_flame(args.model or config.flame_model or None)
    run = train_inpainter(
        config, args.workdir, force=args.force, time_limit=time_limit(args), model=model
    )
    last = run.result.history[-1] if run.result.history else {}
    print(
        f"trained {args.workdir}: step {int(run.result.state.step)}, loss "
        f"{last.get('train/loss', float('nan')):.4f}, hole PSNR "
        f"{last.get('train/hole_psnr', float('nan')):.2f} dB (train batch), "
        f"{run.samples_per_second:.1f} samples/s over {run.seconds:.0f} s"
    )
    if args.no_eval or config.inpainter.data.heldout == 0:
        return
    out = Path(args.workdir) / EVAL
    report = evaluate_run(run.inpainter, config.inpainter, out, model)
    _print_eval(report, out)


def cmd_inpainter_eval(args) -> None:
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.train.checkpoint import EVAL
    from ggtalker_jax.train.inpainter import evaluate_run

    if args.workdir:
        from ggtalker_jax.train.inpainter import restore_inpainter_run

        inpainter, config, run_config, _ = restore_inpainter_run(args.workdir)
        out = Path(args.out or Path(args.workdir) / EVAL)
        flame = run_config.get("flame_model") or None
    else:
        from ggtalker_jax.priors.inpainter import load_inpainter_prior

        if not args.out:
            raise InputError("inpainter eval --prior: pass --out DIR for the metrics and grid")
        folder = None if args.prior == "shipped" else args.prior
        inpainter, config, info = load_inpainter_prior(folder)
        out, flame = Path(args.out), info.get("flame_model") or None
    check_eval_out(out, args.force)
    model = load_flame(args.model or flame)
    _print_eval(evaluate_run(inpainter, config, out, model), out)


def cmd_inpainter_export(args) -> None:
    from ggtalker_jax.priors.inpainter import export_inpainter_prior
    from ggtalker_jax.train.inpainter import restore_inpainter_run

    inpainter, config, run_config, step = restore_inpainter_run(args.workdir)
    export_run_prior(
        args,
        run_config,
        step,
        lambda provenance: export_inpainter_prior(
            inpainter, config, args.out, provenance, args.dtype, args.force
        ),
        places=2,
    )


def add_inpainter_parser(sub) -> None:
    """The ``inpainter`` command group on the top-level subparsers ``sub``."""
    group = sub.add_parser("inpainter", help="the Body Inpainter's prior: train, evaluate, export")
    group_sub = group.add_subparsers(dest="inpainter_command", metavar="SUBCOMMAND", required=True)
    add_train_parser(
        group_sub, "Body Inpainter", MODEL_HELP, "inpainter.steps=800", cmd_inpainter_train
    )
    add_eval_parser(
        group_sub,
        "score a run or a prior on held-out people against the composited drawn head",
        MODEL_HELP,
        cmd_inpainter_eval,
    )
    add_export_parser(group_sub, cmd_inpainter_export)
