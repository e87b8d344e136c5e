#!/usr/bin/env bash
# The A2E prior on one GPU device call (a bare machine, no network): install the project over
# the image's jax, train the prior (gpu config) and/or its regression baseline, evaluate on the
# held-out voices and languages, export, and optionally time the step. What must last goes to
# $OUT (or ./out/a2e_device); a prior is tarred and split into 15 MB parts (the device tool
# returns files of at most 16 MiB): `cat prior.tar.part* | tar -x` joins them.
#
#   bash tools/a2e_device_run.sh [--prior-minutes M] [--baseline-minutes M] [--bench]
#                                [--eval-prior DIR|shipped] [--config gpu] [--set KEY=VALUE ...]
#
# --prior-minutes 0 skips training the prior (the evaluation then scores --eval-prior,
# default: the shipped one); --baseline-minutes 0 skips the baseline.
# Carry the wheels the image lacks in .whl/ (dm-pix, tensorboardX, espeakng-loader).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/a2e_device}"
mkdir -p "$out"
prior_min=3 base_min=0 bench=0 config=gpu eval_prior=shipped sets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --prior-minutes) prior_min="$2"; shift ;;
        --baseline-minutes) base_min="$2"; shift ;;
        --eval-prior) eval_prior="$2"; shift ;;
        --config) config="$2"; shift ;;
        --bench) bench=1 ;;
        --set) sets+=(--set "$2"); shift ;;
        *) echo "a2e_device_run.sh: unknown argument $1"; exit 2 ;;
    esac
    shift
done
source tools/device_setup.sh
status=0
if [ "$prior_min" != 0 ]; then
    python3 -m ggtalker_jax.cli a2e train --config "$config" --workdir /tmp/a2e_prior \
        --minutes "$prior_min" "${sets[@]}" 2>&1 | quiet
    status=${PIPESTATUS[0]}
    if [ "$status" = 0 ]; then
        python3 -m ggtalker_jax.cli a2e export --workdir /tmp/a2e_prior --out /tmp/prior/a2e 2>&1 |
            tee -a "$out/run.log"
        pack prior /tmp/prior/a2e
        tar -C /tmp/a2e_prior -czf "$out/prior_run.tar.gz" eval tensorboard config.json identities.json
        eval_prior=/tmp/a2e_prior
    fi
fi
if [ "$status" = 0 ] && [ "$base_min" != 0 ]; then
    python3 -m ggtalker_jax.cli a2e train --config "$config" --workdir /tmp/a2e_baseline \
        --minutes "$base_min" --no-eval --set a2e.objective=regression "${sets[@]}" 2>&1 | quiet
    status=${PIPESTATUS[0]}
    if [ "$status" = 0 ]; then
        python3 -m ggtalker_jax.cli a2e eval --prior "$eval_prior" --baseline /tmp/a2e_baseline \
            --out /tmp/a2e_eval --force 2>&1 | tee -a "$out/run.log"
        tar -C /tmp -czf "$out/eval.tar.gz" a2e_eval
        tar -C /tmp/a2e_baseline -czf "$out/baseline_run.tar.gz" tensorboard config.json
    fi
fi
if [ "$bench" = 1 ]; then
    python3 tools/bench_a2e.py --config "$config" "${sets[@]}" --json "$out/bench.json" 2>&1 |
        tee -a "$out/run.log"
fi
date -u +"%Y-%m-%dT%H:%M:%SZ end" | tee -a "$out/run.log"
exit "$status"
