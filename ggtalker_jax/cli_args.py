"""Argument groups the ``ggtalker`` commands share: the config flags, a prior trainer's
run flags, the export command, and ``--minutes`` as a time limit."""

from __future__ import annotations

import argparse

from ggtalker_jax.errors import InputError


def add_config_args(p: argparse.ArgumentParser, example: str) -> None:
    """``--config NAME`` and repeated ``--set KEY=VALUE``."""
    from ggtalker_jax.config import config_names

    p.add_argument(
        "--config",
        default="tiny",
        help=f"named config: {', '.join(config_names())} (default tiny)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field, e.g. --set {example}",
    )


def add_train_parser(sub, prior: str, model_help: str, example: str, func):
    """``<prior> train``: a prior trainer's flags (run folder, model, evaluation, time limit,
    --force, config)."""
    tr = sub.add_parser("train", help=f"train (or resume) the {prior} prior in --workdir")
    tr.add_argument("--workdir", required=True, help="run folder (resumed if it holds the run)")
    tr.add_argument("--model", help=model_help)
    tr.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    tr.add_argument(
        "--minutes",
        type=float,
        help="stop after this many minutes of training with a checkpoint (rerun to continue)",
    )
    tr.add_argument(
        "--force", action="store_true", help="start over (removes only the run's own files)"
    )
    add_config_args(tr, example)
    tr.set_defaults(func=_on_every_process(func))
    return tr


def _on_every_process(func):
    """``func`` after starting JAX's distributed runtime when the launcher asks for one
    (:func:`ggtalker_jax.train.parallel.initialize_distributed`): before the config is
    loaded, since ``prior_multi`` sizes its batch by the device count of all hosts."""

    def run(args):
        from ggtalker_jax.train.parallel import initialize_distributed

        initialize_distributed()
        return func(args)

    return run


def add_export_parser(sub, func):
    """``<prior> export``: a run's newest checkpoint as a prior folder."""
    ex = sub.add_parser("export", help="a run's newest checkpoint -> a prior folder")
    ex.add_argument("--workdir", required=True, help="the run folder")
    ex.add_argument("--out", required=True, help="prior folder to write")
    ex.add_argument(
        "--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="parameter storage"
    )
    ex.add_argument("--force", action="store_true", help="replace an existing prior there")
    ex.set_defaults(func=func)
    return ex


def time_limit(args) -> float | None:
    """``--minutes`` in seconds (``None``: no limit).

    Raises:
      InputError: not a positive number.
    """
    if args.minutes is None:
        return None
    if not args.minutes > 0:
        raise InputError(f"--minutes {args.minutes}: give a positive number of minutes")
    return 60.0 * args.minutes


def add_eval_parser(sub, help: str, model_help: str, func):
    """``<prior> eval``: a run (``--workdir``) or a prior (``--prior DIR|shipped``), the
    output folder, the FLAME model and --force; returns the parser for a stage's own flags."""
    ev = sub.add_parser("eval", help=help)
    which = ev.add_mutually_exclusive_group(required=True)
    which.add_argument("--workdir", help="a run folder (its newest checkpoint)")
    which.add_argument("--prior", help="a prior folder, or 'shipped' for the packaged one")
    ev.add_argument("--out", help="output folder (default: WORKDIR/eval)")
    ev.add_argument("--model", help=model_help)
    ev.add_argument("--force", action="store_true", help="replace an earlier evaluation")
    ev.set_defaults(func=func)
    return ev


def check_eval_out(out, force: bool) -> None:
    """An eval command's ``--out``: a folder of ours, with no metrics unless ``--force``.

    Raises:
      InputError: a folder that is not ours, or earlier metrics without ``--force``.
    """
    from ggtalker_jax.outputs import output_dir

    output_dir(out, what="--out")
    if (out / "metrics.json").exists() and not force:
        raise InputError(f"{out}/metrics.json: already exists; pass --force to replace it")


def export_run_prior(args, run_config: dict, step: int, export, places: int = 1) -> None:
    """An export command's body: the run's provenance (its FLAME model, config name, step and
    eval metrics) handed to ``export(provenance) -> folder``, then the written prior's line.

    Args:
      args: the command's arguments (``workdir``, ``dtype``).
      run_config: the run's config dict.
      step: the exported checkpoint's step.
      export: writes the prior with the provenance; returns its folder.
      places: decimals of the printed size in MB.
    """
    import json
    from pathlib import Path

    from ggtalker_jax.train.checkpoint import EVAL

    metrics_path = Path(args.workdir) / EVAL / "metrics.json"
    provenance = {
        "flame_model": run_config.get("flame_model", ""),
        "run_config": run_config.get("name"),
        "steps": step,
        "eval": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
    }
    folder = export(provenance)
    size = sum(f.stat().st_size for f in Path(folder).iterdir())
    print(f"wrote prior {folder} ({size / 1e6:.{places}f} MB, {args.dtype}, step {step})")
