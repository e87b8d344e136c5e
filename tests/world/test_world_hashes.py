"""A fixed world stays byte-identical across changes: sha256 of every file, taken before the
hardening of the output helpers (2026-12-01) and kept in ``world_sha256.txt``.

``world.json`` is compared by content instead: it names the model file by its absolute
path, which depends on where the checkout lives.
"""

import hashlib
import json
from pathlib import Path

import pytest

from ggtalker_jax.cli import main

ARGS = ["--identities", "2", "--clips-per-identity", "1", "--seconds", "2", "--resolution"]
ARGS += ["128", "--seed", "11", "--views", "1", "--languages", "en,de"]
STAMP_CONFIG = {
    "clips_per_identity": 1,
    "identities": 2,
    "languages": ["en", "de"],
    "resolution": 128,
    "seconds": 2.0,
    "seed": 11,
    "shape_scale": 0.6,
    "texture_size": 0,
    "video": True,
    "views": 1,
}


@pytest.mark.slow
def test_world_files_match_the_recorded_hashes(tmp_path):
    assert main(["world", "--out", str(tmp_path / "W"), *ARGS]) == 0
    recorded = {}
    for line in (Path(__file__).parent / "world_sha256.txt").read_text().splitlines():
        digest, name = line.split()
        recorded[name] = digest
    made = {
        p.relative_to(tmp_path / "W").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((tmp_path / "W").rglob("*"))
        if p.is_file() and p.name != "world.json"
    }
    assert made.keys() == recorded.keys()
    changed = [name for name in made if made[name] != recorded[name]]
    assert not changed, f"files differ from the recorded world: {changed}"
    stamp = json.loads((tmp_path / "W" / "world.json").read_text())
    assert stamp["config"] == STAMP_CONFIG
    assert stamp["model"].endswith("procedural_head.npz")
