#!/usr/bin/env bash
# The splatting check for one device call (a bare GPU machine, no network):
#   install the project over the image's jax, build gsplat's CUDA in the background from the
#   carried wheel, run the GPU parity tests, the stage profile and the benchmark against
#   gsplat. Results go to $OUT (or ./out/gpu_check).
#
#   bash tools/gpu_splat_check.sh [--no-tests] [--no-bench]
#
# Carry the gsplat wheel in .whl/ (pip download --no-deps gsplat==1.5.3 -d .whl).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/gpu_check}"
mkdir -p "$out"
tests=1 bench=1
for arg in "$@"; do
    case "$arg" in
        --no-tests) tests=0 ;;
        --no-bench) bench=0 ;;
        *) echo "gpu_splat_check.sh: unknown argument $arg (use --no-tests or --no-bench)"; exit 2 ;;
    esac
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || {
    echo "gpu_splat_check.sh: no GPU here (nvidia-smi failed); run it on the device machine"
    exit 2
}
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 ||
    { tail -5 "$out/install.log"; exit 1; }
if [ "$bench" = 1 ]; then
    if ! ls .whl/gsplat-*.whl >/dev/null 2>&1; then
        echo "gpu_splat_check.sh: no gsplat wheel in .whl/; carry it or pass --no-bench"
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gsplat_site \
        .whl/gsplat-*.whl >>"$out/install.log" 2>&1
    export PYTHONPATH="/tmp/gsplat_site${PYTHONPATH:+:$PYTHONPATH}"
    # The same settings for the build and for the benchmark's import, or torch's extension
    # loader sees other compile flags and builds again.
    export MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
    # gsplat compiles its CUDA on first import (80-100 s): overlap it with the tests.
    python3 -c "from gsplat.cuda._backend import _C; assert _C is not None; print('gsplat built')" \
        >"$out/gsplat_build.log" 2>&1 &
    build_pid=$!
fi
status=0
if [ "$tests" = 1 ]; then
    python3 -m pytest -m gpu tests/kernels -q -p no:cacheprovider -rA --durations=0 2>&1 |
        tee "$out/gpu_tests.log" | grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed|skipped|s call"
    status=${PIPESTATUS[0]}
    # Every gpu test skips where JAX sees no GPU: that is a failure here.
    grep -q "[0-9] passed" "$out/gpu_tests.log" || { echo "no GPU test ran"; status=1; }
fi
if [ "$bench" = 1 ]; then
    python3 tools/profile_splat.py --cases 512x100000x1,512x100000x8,1024x300000x1 \
        >"$out/profile.txt" 2>&1
    [ $? = 0 ] || status=1
    grep -v -i warn "$out/profile.txt"
    if wait "$build_pid"; then  # the build's exit status
        python3 tools/bench_splat.py --iters 30 --out "$out/bench.json" >"$out/bench.txt" 2>&1
        [ $? = 0 ] || status=1
        tail -5 "$out/bench.txt"
    else
        echo "gsplat did not build; its log ends:"; tail -5 "$out/gsplat_build.log"; status=1
    fi
fi
exit "$status"
