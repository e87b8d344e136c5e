#!/usr/bin/env bash
# The E2V prior on one GPU device call (a bare machine, no network): install the project over
# the image's jax, train the gpu config, evaluate it on the held-out identities, export the
# prior, and optionally time the step. What must last goes to $OUT (or ./out/e2v_device).
#
#   bash tools/e2v_device_run.sh [--steps N] [--minutes M] [--bench] [--no-train]
#                                [--set KEY=VALUE ...]
#
# Carry the wheels the image lacks in .whl/ (dm-pix, tensorboardX: see DESIGN.md).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/e2v_device}"
mkdir -p "$out"
steps="" bench=0 train=1 sets=() limit=()
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps="$2"; shift ;;
        --minutes) limit=(--minutes "$2"); shift ;;
        --bench) bench=1 ;;
        --no-train) train=0 ;;
        --set) sets+=(--set "$2"); shift ;;
        *) echo "e2v_device_run.sh: unknown argument $1"; exit 2 ;;
    esac
    shift
done
[ -n "$steps" ] && sets+=(--set "e2v.steps=$steps")
source tools/device_setup.sh
status=0
if [ "$train" = 1 ]; then
    work=/tmp/e2v_run
    python3 -m ggtalker_jax.cli e2v train --config gpu --workdir "$work" "${sets[@]}" "${limit[@]}" 2>&1 |
        tr '\r' '\n' | grep -v '^\s*$' | awk 'NR % 20 == 1 || /trained|head PSNR|case|yaw|same|other|wrote|error/' |
        tee -a "$out/run.log"
    status=${PIPESTATUS[0]}
    if [ "$status" = 0 ]; then
        python3 -m ggtalker_jax.cli e2v export --workdir "$work" --out "$out/prior" 2>&1 |
            tee -a "$out/run.log"
        tar -C "$work" -czf "$out/eval.tar.gz" eval tensorboard config.json
        tar -C "$out" -cf "$out/prior.tar" prior && rm -rf "$out/prior"
    fi
fi
if [ "$bench" = 1 ]; then
    python3 tools/bench_e2v.py --config gpu "${sets[@]}" --json "$out/bench.json" 2>&1 |
        tee -a "$out/run.log"
fi
date -u +"%Y-%m-%dT%H:%M:%SZ end" | tee -a "$out/run.log"
exit "$status"
