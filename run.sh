#!/usr/bin/env bash
# Set up (idempotently) and run ggtalker-jax from a fresh clone.
#   bash run.sh demo [ggtalker demo options]   the main job: writes out/...
#   bash run.sh test [pytest options]          ruff, then the whole test suite
# Needs only python >= 3.12 (plain or through pyenv) and pip; installs into .venv/.
set -euo pipefail
cd "$(dirname "$0")"

usage() { echo "usage: bash run.sh demo|test [options]" >&2; exit 2; }
[ $# -ge 1 ] || usage
task=$1; shift

ok_python() { "$@" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find_python() {
  local cand v
  for cand in python3.12 python3.13 python3 python; do
    if command -v "$cand" >/dev/null && ok_python "$cand"; then echo "$cand"; return; fi
  done
  if command -v pyenv >/dev/null; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(12|13)(\.|$)' | sort -V); do
      if PYENV_VERSION=$v ok_python pyenv exec python; then echo "PYENV_VERSION=$v pyenv exec python"; return; fi
    done
  fi
  return 1
}

if [ ! -x .venv/bin/python ] || ! ok_python .venv/bin/python; then
  py=$(find_python) || { echo "run.sh: no python >= 3.12 found (tried python3.12, python3.13, python3, pyenv); install python 3.12 and retry" >&2; exit 1; }
  rm -rf .venv
  echo "run.sh: creating .venv with $py" >&2
  env $py -m venv .venv
fi

extra=""
[ "$task" = test ] && extra="[test]"
stamp="$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)$extra"
have=$(cat .venv/.setup-stamp 2>/dev/null || true)
# A test install holds everything the demo needs.
if [ "$have" != "$stamp" ] && [ "$have" != "$stamp[test]" ]; then
  echo "run.sh: installing ggtalker-jax$extra into .venv (first run takes a few minutes)" >&2
  # pip's own chatter (and setuptools' note on every editable install) goes to a log that is
  # shown only if the install fails.
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -e ".$extra"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "run.sh: the install failed (log above, also in $log)" >&2
    exit 1
  fi
  echo "$stamp" > .venv/.setup-stamp
fi

case "$task" in
  demo) exec .venv/bin/ggtalker demo "$@" ;;
  test)
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    exec .venv/bin/python -m pytest -n 2 --durations=25 "$@" ;;
  *) usage ;;
esac
