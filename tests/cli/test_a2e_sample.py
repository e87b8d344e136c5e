"""``ggtalker a2e sample``: speech files in any common format -> a clip-format flame.npz from
the shipped prior, with one line for every bad input."""

import subprocess

import numpy as np
import pytest

from ggtalker_jax.audio.wav import write_wav
from ggtalker_jax.cli import main
from ggtalker_jax.data.clip import read_flame_npz
from ggtalker_jax.priors import shipped_prior

TINY = str(shipped_prior("a2e_tiny"))


def _speechlike(rng, seconds, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return 0.2 * envelope * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.normal(size=t.shape)


def _stereo_wav(path, audio, rate):
    import wave

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.stack([pcm, pcm], -1).tobytes())


def test_sample_writes_a_clip_format_flame_npz(tmp_path, rng, capsys):
    wav = tmp_path / "speech.wav"
    write_wav(wav, _speechlike(rng, 2.0).astype(np.float32))
    out = tmp_path / "flame.npz"
    assert main(["a2e", "sample", "--audio", str(wav), "--out", str(out), "--prior", TINY]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "50 frames" in captured.out
    assert captured.err == ""  # a 16 kHz mono file needs no conversion notice
    params, viewmat, K = read_flame_npz(out)
    assert params.expression.shape == (50, 10) and viewmat.shape == (50, 4, 4)
    # No overwrite without --force, then with it.
    assert main(["a2e", "sample", "--audio", str(wav), "--out", str(out), "--prior", TINY]) == 2
    assert "--force" in capsys.readouterr().err
    assert (
        main(
            [
                "a2e",
                "sample",
                "--audio",
                str(wav),
                "--out",
                str(out),
                "--prior",
                TINY,
                "--force",
                "--seed",
                "3",
            ]
        )
        == 0
    )


def test_stereo_44k_is_converted_and_said_once(tmp_path, rng, capsys):
    wav = tmp_path / "stereo.wav"
    _stereo_wav(wav, _speechlike(rng, 1.0, 44100), 44100)
    out = tmp_path / "f.npz"
    assert main(["a2e", "sample", "--audio", str(wav), "--out", str(out), "--prior", TINY]) == 0
    err = capsys.readouterr().err
    assert err.count("converted to mono") == 1 and "44100" in err and "2 channels" in err
    assert read_flame_npz(out)[0].expression.shape[0] == 25


def test_compressed_formats_are_read(tmp_path, rng):
    import imageio_ffmpeg

    wav = tmp_path / "a.wav"
    write_wav(wav, _speechlike(rng, 1.0).astype(np.float32))
    flac = tmp_path / "a.flac"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(wav)]
    subprocess.run([*cmd, str(flac)], check=True)
    out = tmp_path / "f.npz"
    assert main(["a2e", "sample", "--audio", str(flac), "--out", str(out), "--prior", TINY]) == 0
    assert read_flame_npz(out)[0].expression.shape[0] == 25


@pytest.mark.parametrize(
    "case,expect",
    [
        ("missing", "no such file"),
        ("corrupt", "corrupt.mp3"),
        ("identity", "not one of the prior's"),
        ("suffix", ".npz"),
    ],
)
def test_bad_inputs_get_one_line(tmp_path, rng, capsys, case, expect):
    wav = tmp_path / "ok.wav"
    write_wav(wav, _speechlike(rng, 0.5).astype(np.float32))
    audio, extra, out = str(wav), [], str(tmp_path / "f.npz")
    if case == "missing":
        audio = str(tmp_path / "nothing.wav")
    elif case == "corrupt":
        bad = tmp_path / "corrupt.mp3"
        bad.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
        audio = str(bad)
    elif case == "identity":
        extra = ["--identity", "nobody"]
    elif case == "suffix":
        out = str(tmp_path / "f.txt")
    code = main(["a2e", "sample", "--audio", audio, "--out", out, "--prior", TINY, *extra])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1, err
