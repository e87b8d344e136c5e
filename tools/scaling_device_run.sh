#!/usr/bin/env bash
# Training at scale on one GPU device call (a bare machine, no network): tools/bench_scaling.py
# for each prior's step on every GPU count the machine has (steps/s, samples/s per GPU,
# scaling efficiency, the share of a step spent outside compute). Results go to $OUT (or
# ./out/scaling_device): scaling_<prior>.json and run.log.
#
#   bash tools/scaling_device_run.sh [--config gpu|prior_multi] [--steps N] [--repeats R]
#       [--priors a2e,e2v] [--strong] [--curves K] [--set KEY=VALUE ...]
#
# Defaults: --config gpu --steps 50 --repeats 3, all three priors. --strong keeps the
# config's global batch on every GPU count (1 GPU against all of them: the scaling-efficiency
# run), --curves K adds each count's K-step loss curve.
#
# Carry .whl/ (dm-pix, tensorboardX, espeakng-loader). NVLink multicast stays off on the lent
# machines (NCCL_NVLS_ENABLE=0 is set here too, for the multi-GPU kinds).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/scaling_device}"
mkdir -p "$out"
config=gpu steps=50 repeats=3 priors=a2e,inpainter,e2v extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config="$2"; shift ;;
        --steps) steps="$2"; shift ;;
        --priors) priors="$2"; shift ;;
        --repeats) repeats="$2"; shift ;;
        --strong) extra+=(--strong) ;;
        --curves) extra+=(--curves "$2"); shift ;;
        --set) extra+=(--set "$2"); shift ;;
        *) echo "scaling_device_run.sh: unknown argument $1"; exit 2 ;;
    esac
    shift
done
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
source tools/device_setup.sh
# One process per prior: a prior's pool, world or caches never share the host with another's.
for prior in ${priors//,/ }; do
    python3 tools/bench_scaling.py --config "$config" --priors "$prior" --steps "$steps" \
        --repeats "$repeats" --json "$out/scaling_$prior.json" "${extra[@]}" 2>&1 | grep -v cuda_timer | quiet
done
date -u +"%Y-%m-%dT%H:%M:%SZ end" | tee -a "$out/run.log"
