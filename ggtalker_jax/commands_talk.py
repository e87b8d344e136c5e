"""``ggtalker adapt|infer|eval``: one person's talking head (thin: parse, load, call the
library). :mod:`ggtalker_jax.cli` adds them to its parser."""

from __future__ import annotations

from pathlib import Path

from ggtalker_jax.cli_args import add_config_args


def cmd_adapt(args) -> None:
    from ggtalker_jax.config import load_config
    from ggtalker_jax.train.adapt import adapt_identity

    config = load_config(args.config, args.set)
    adapted = adapt_identity(
        args.clips, args.out, config, priors=args.priors, minutes=args.minutes, force=args.force
    )
    print("\n".join(adapt_summary(args.out, adapted)))


def adapt_summary(out, adapted) -> list[str]:
    """The one-screen summary ``ggtalker adapt`` prints."""
    clips = adapted.clips
    lines = [f"identity      {out} ({clips.n_frames} frames of {len(clips.folders)} clip(s))"]
    for name, r in adapted.phases.items():
        best = "—" if r.best is None else f"{r.best:.2f}"
        score = "held-out -loss" if name == "a2e" else "held-out PSNR"
        lines.append(
            f"  {name:<10} {r.steps:>6} steps {r.seconds:>7.1f} s  stop: {r.stop:<8} "
            f"{score} {best}"
        )
    lines.append(
        f"done in {adapted.info['seconds']:.1f} s (budget {adapted.info['minutes']:g} min)"
    )
    lines.append(f"curve         {Path(out) / 'psnr_curve.png'}")
    return lines


def cmd_infer(args) -> None:
    import jax

    from ggtalker_jax.infer import TalkingHead, parse_camera, speech_audio
    from ggtalker_jax.outputs import output_file

    out = output_file(args.out, args.force, what="--out", suffixes=(".mp4",))
    camera = parse_camera(args.camera)
    audio = speech_audio(args.audio, args.text, args.voice)
    head = TalkingHead.load(args.identity)
    pose = None
    if args.pose_from:
        from ggtalker_jax.data.clip import read_clip

        pose = read_clip(args.pose_from)
    frames = head.speak(audio, camera, pose, key=jax.random.key(args.seed), progress=True)
    write_talking_video(out, frames, audio)
    print(
        f"wrote {out} ({frames.shape[0]} frames at {frames.shape[2]}x{frames.shape[1]}, with sound)"
    )


def write_talking_video(out: Path, frames, audio) -> None:
    """``frames [T, H, W, 3]`` and ``audio [A]`` (16 kHz) as one mp4, atomically."""
    import tempfile

    from ggtalker_jax.audio.wav import write_wav
    from ggtalker_jax.data.video import write_mp4
    from ggtalker_jax.outputs import atomic_file
    from ggtalker_jax.types import FPS, SAMPLE_RATE

    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "audio.wav"
        write_wav(wav, audio, SAMPLE_RATE)
        with atomic_file(out) as tmp:
            write_mp4(tmp, frames, FPS, audio_path=wav)


def cmd_eval(args) -> None:
    import jax

    from ggtalker_jax.eval.identity import evaluate_identity
    from ggtalker_jax.eval.talking import summary_table

    out = Path(args.out) if args.out else Path(args.identity) / "eval"
    report = evaluate_identity(
        args.identity, args.clips, out, force=args.force, key=jax.random.key(args.seed)
    )
    print("\n".join(summary_table(report)))
    print(f"wrote {out}/metrics.json, grids and side-by-side videos")


def add_talk_parsers(sub) -> None:
    """``adapt``, ``infer`` and ``eval`` on the top-level subparsers."""
    ad = sub.add_parser("adapt", help="fit the priors to one person's clips (identity folder)")
    ad.add_argument("--clips", nargs="+", required=True, metavar="DIR", help="clip folders")
    ad.add_argument("--out", required=True, help="identity folder (resumed if unfinished)")
    ad.add_argument("--priors", help="folder with e2v/, a2e/, inpainter/ (default: shipped)")
    ad.add_argument("--minutes", type=float, help="time budget (default: adapt.minutes)")
    ad.add_argument("--force", action="store_true", help="adapt again over a finished identity")
    add_config_args(ad, "adapt.uv_size=128")
    ad.set_defaults(func=cmd_adapt)

    inf = sub.add_parser("infer", help="speech -> video of an adapted identity (mp4 with sound)")
    inf.add_argument("--identity", required=True, help="identity folder (ggtalker adapt)")
    speech = inf.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", help="speech file (wav, flac, mp3, ...)")
    speech.add_argument("--text", help="text to speak with espeak (--voice)")
    inf.add_argument("--voice", default="en", help="espeak voice for --text (default en)")
    inf.add_argument("--out", required=True, help="output .mp4")
    inf.add_argument("--camera", help="novel view, degrees: yaw=30,pitch=0 (default: the clip's)")
    inf.add_argument("--pose-from", help="clip folder whose head pose and background to loop")
    inf.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    inf.add_argument("--force", action="store_true", help="overwrite --out")
    inf.set_defaults(func=cmd_infer)

    ev = sub.add_parser("eval", help="score an identity on held-out clips (metrics, grids, mp4)")
    ev.add_argument("--identity", required=True, help="identity folder (ggtalker adapt)")
    ev.add_argument("--clips", nargs="+", required=True, metavar="DIR", help="held-out clips")
    ev.add_argument("--out", help="output folder (default: IDENTITY/eval)")
    ev.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    ev.add_argument("--force", action="store_true", help="replace an earlier evaluation")
    ev.set_defaults(func=cmd_eval)
