#!/usr/bin/env bash
# The talking head on one GPU device call (a bare machine, no network): train and export the
# Body Inpainter prior (gpu config), adapt a held-out synthetic person from the priors at
# 512² (tools/bench_adapt.py: PSNR over time), score it on held-out clips (ggtalker eval),
# and time inference end to end (tools/bench_inference.py). What must last goes to $OUT (or
# ./out/talking_device); the inpainter prior is tarred in 15 MB parts
# (`cat inpainter.tar.part* | tar -x`).
#
#   bash tools/talking_device_run.sh [--inpainter-minutes M] [--adapt-minutes M]
#                                    [--set KEY=VALUE ...]
#
# --inpainter-minutes 0 uses the shipped inpainter prior. Carry .whl/ (dm-pix, tensorboardX,
# espeakng-loader).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/talking_device}"
mkdir -p "$out"
inp_min=2.5 adapt_min=3 sets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --inpainter-minutes) inp_min="$2"; shift ;;
        --adapt-minutes) adapt_min="$2"; shift ;;
        --set) sets+=(--set "$2"); shift ;;
        *) echo "talking_device_run.sh: unknown argument $1"; exit 2 ;;
    esac
    shift
done
quiet_every=40
source tools/device_setup.sh
shipped=ggtalker_jax/priors/shipped
mkdir -p /tmp/priors
cp -r "$shipped/e2v" "$shipped/a2e" /tmp/priors/
if [ "$inp_min" != 0 ]; then
    python3 -m ggtalker_jax.cli inpainter train --config gpu --workdir /tmp/inp \
        --minutes "$inp_min" "${sets[@]}" 2>&1 | quiet
    python3 -m ggtalker_jax.cli inpainter export --workdir /tmp/inp --out /tmp/priors/inpainter \
        2>&1 | tee -a "$out/run.log" || exit 1
    pack inpainter /tmp/priors/inpainter
    [ -d /tmp/inp/eval ] && tar -C /tmp/inp -czf "$out/inpainter_eval.tar.gz" eval config.json
else
    cp -r "$shipped/inpainter" /tmp/priors/
fi
python3 tools/bench_adapt.py --config gpu --out /tmp/bench --minutes "$adapt_min" \
    --priors /tmp/priors --eval --json "$out/adapt.json" "${sets[@]}" 2>&1 | quiet
python3 tools/bench_inference.py --identity /tmp/bench/identity --json "$out/inference.json" 2>&1 |
    tee -a "$out/run.log"
cp /tmp/bench/identity/psnr_curve.png /tmp/bench/identity/metrics.json "$out/" 2>/dev/null
tar -C /tmp/bench -czf "$out/eval.tar.gz" eval/metrics.json $(cd /tmp/bench && ls eval/*.png 2>/dev/null)
for f in /tmp/bench/eval/video_self*.mp4; do [ -f "$f" ] && cp "$f" "$out/self_driven.mp4"; break; done
date -u +"%Y-%m-%dT%H:%M:%SZ end" | tee -a "$out/run.log"
