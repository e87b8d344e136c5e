"""``ggtalker a2e train|eval|sample|export``: the Audio-Expression prior's commands (thin:
parse, load, call the library). :mod:`ggtalker_jax.cli` adds them to its parser."""

from __future__ import annotations

import sys
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


def load_speaker(spec: str | None, model=None):
    """A :class:`~ggtalker_jax.motion.Speaker` from a run folder, a prior folder or
    ``shipped``/``None`` (the packaged prior). Returns ``(speaker, A2EConfig, label)``."""
    from ggtalker_jax.train.checkpoint import CONFIG_NAME

    if spec and (Path(spec) / CONFIG_NAME).is_file():
        from ggtalker_jax.train.a2e import restore_a2e_speaker

        speaker, a2e, step = restore_a2e_speaker(spec, model)
        return speaker, a2e, f"run {spec} (step {step})"
    from ggtalker_jax.priors.a2e import load_a2e_prior

    folder = None if spec in (None, "shipped") else spec
    speaker, a2e, _ = load_a2e_prior(folder, model)
    return speaker, a2e, f"prior {spec or 'shipped'}"


def _heldout_sets(model, a2e) -> dict:
    from ggtalker_jax.data.a2e import load_split

    return {s: load_split(model, a2e.data, s) for s in ("voices", "languages")}


def _print_eval(report: dict, out: Path) -> None:
    from ggtalker_jax.eval.a2e import summary_table

    print("\n".join(summary_table(report)))
    print(f"wrote {out}/metrics.json and {out}/opening.png")


def _evaluate(speakers: dict, a2e, model, out: Path, seed: int) -> None:
    import jax

    from ggtalker_jax.eval.a2e import evaluate_a2e

    report = evaluate_a2e(speakers, _heldout_sets(model, a2e), model, jax.random.key(seed), out)
    _print_eval(report, out)


def cmd_a2e_train(args) -> None:
    from ggtalker_jax.config import load_config
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.motion import Speaker
    from ggtalker_jax.train.a2e import train_a2e
    from ggtalker_jax.train.checkpoint import EVAL

    config = load_config(args.config, args.set)
    model = load_flame(args.model or config.flame_model or None)
    run = train_a2e(config, args.workdir, model, force=args.force, time_limit=time_limit(args))
    last = run.result.history[-1] if run.result.history else {}
    print(
        f"trained {args.workdir}: step {int(run.result.state.step)}, loss "
        f"{last.get('train/loss', float('nan')):.4f} ({config.a2e.objective}), "
        f"{run.samples_per_second:.1f} windows/s over {run.seconds:.0f} s"
    )
    if args.no_eval:
        return
    speaker = Speaker(run.prior, run.data.extractor, run.data.identities, model.n_exp)
    _evaluate({"prior": speaker}, config.a2e, model, Path(args.workdir) / EVAL, config.seed)


def cmd_a2e_eval(args) -> None:
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.train.checkpoint import EVAL

    model = load_flame(args.model) if args.model else None
    if not args.workdir and not args.out:
        raise InputError("a2e eval --prior: pass --out DIR for the metrics and the plot")
    out = Path(args.out or Path(args.workdir) / EVAL)
    check_eval_out(out, args.force)
    speaker, a2e, _ = load_speaker(args.workdir or args.prior, model)
    if model is None:
        model = load_flame(None)
    speakers = {"prior": speaker}
    if args.baseline:
        speakers["baseline"] = load_speaker(args.baseline, model)[0]
    _evaluate(speakers, a2e, model, out, args.seed)


def cmd_a2e_sample(args) -> None:
    import jax
    import numpy as np

    from ggtalker_jax.audio.load import load_audio
    from ggtalker_jax.data.clip import write_flame_npz
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.geometry.camera import portrait_camera
    from ggtalker_jax.types import FPS, FlameParams

    out = Path(args.out)
    if out.exists() and not args.force:
        raise InputError(f"{out}: already exists; pass --force to overwrite it")
    if out.suffix != ".npz":
        raise InputError(f"--out {out}: give a .npz file name (the clip format's flame.npz)")
    model = load_flame(args.model or None)
    speaker, _, label = load_speaker(args.prior, model)
    speaker.identity_index(args.identity)  # refuse an unknown name before reading anything
    audio = load_audio(args.audio, notify=lambda line: print(line, file=sys.stderr))
    fields = speaker.speak(audio, jax.random.key(args.seed), identity=args.identity)
    t = fields["expression"].shape[0]
    params = FlameParams.zeros(model.n_shape, model.n_exp, (t,)).replace(**fields)
    params = params.replace(shape=np.zeros((model.n_shape,), np.float32))
    rest = np.asarray(model.v_template)
    target = np.array([0.0, np.percentile(rest[:, 1], 35), 0.0], np.float32)
    viewmat, K = portrait_camera(target, args.size)
    write_flame_npz(
        out, params, np.repeat(viewmat[None], t, 0), np.repeat(K[None], t, 0), force=args.force
    )
    jaw = fields["jaw_pose"][:, 0]
    who = args.identity or "an unknown speaker"
    print(
        f"wrote {out}: {t} frames ({t / FPS:.2f} s) of expression and jaw for {who} from "
        f"{label}; jaw opening {np.degrees(jaw.min()):.1f} to {np.degrees(jaw.max()):.1f} deg"
    )


def cmd_a2e_export(args) -> None:
    from ggtalker_jax.priors.a2e import export_a2e_prior
    from ggtalker_jax.train.a2e import restore_a2e_run

    prior, a2e, identities, run_config, step = restore_a2e_run(args.workdir)
    export_run_prior(
        args,
        run_config,
        step,
        lambda provenance: export_a2e_prior(
            prior, a2e, identities, args.out, provenance, args.dtype, args.force
        ),
    )


def add_a2e_parser(sub) -> None:
    """The ``a2e`` command group on the top-level subparsers ``sub``."""
    a2e = sub.add_parser("a2e", help="the Audio-Expression prior: train, evaluate, sample, export")
    a2e_sub = a2e.add_subparsers(dest="a2e_command", metavar="SUBCOMMAND", required=True)
    add_train_parser(
        a2e_sub,
        "A2E",
        "FLAME .pkl/.npz (default: the shipped head)",
        "a2e.objective=regression",
        cmd_a2e_train,
    )

    ev = add_eval_parser(
        a2e_sub,
        "lip sync on held-out voices and unseen languages",
        "FLAME .pkl/.npz (default: the shipped head)",
        cmd_a2e_eval,
    )
    ev.add_argument("--baseline", help="a run or prior folder to compare against")
    ev.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")

    sa = a2e_sub.add_parser("sample", help="speech -> a clip-format flame.npz")
    sa.add_argument("--audio", required=True, help="speech: wav, flac, mp3, ogg, m4a, ...")
    sa.add_argument("--out", required=True, help="the flame.npz to write")
    sa.add_argument(
        "--identity", help="a training identity's speaking style (default: an unknown speaker)"
    )
    sa.add_argument("--prior", help="a prior or run folder (default: the shipped prior)")
    sa.add_argument("--model", help="FLAME .pkl/.npz (default: the shipped head)")
    sa.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sa.add_argument("--size", type=int, default=512, help="image side of the camera written")
    sa.add_argument("--force", action="store_true", help="overwrite --out")
    sa.set_defaults(func=cmd_a2e_sample)

    add_export_parser(a2e_sub, cmd_a2e_export)
