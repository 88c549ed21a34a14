#!/usr/bin/env bash
# Set up lmc on a fresh Debian 12 machine (or re-check an existing one) and run it.
#   bash scripts/bootstrap.sh run    # install, then compile the example model and print its IR
#   bash scripts/bootstrap.sh test   # install, then ruff + the whole pytest suite
# Extra arguments after `test` go to pytest (e.g. `test tests/ir -k parser`).
# Idempotent: apt runs only when a tool is missing; pip only when requirements changed.
set -euo pipefail

mode="${1:-}"
case "$mode" in
  run | test) shift ;;
  *) echo "usage: bash scripts/bootstrap.sh {run|test} [pytest args...]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
say() { echo "bootstrap: $*" >&2; }

# -- system packages ---------------------------------------------------------------------------
pick_python() {
  local p
  for p in python3 python3.13 python3.12 python3.11; do
    if command -v "$p" >/dev/null 2>&1 &&
      "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

missing=()
py="$(pick_python || true)"
if [[ -z "$py" ]]; then
  missing+=(python3 python3-venv python3-dev)
else
  "$py" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  "$py" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    missing+=(python3-dev)
fi
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
# pip reaches PyPI over TLS with the system's CA bundle.
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
# The test suite also builds and runs the cross targets: arm64 (cross gcc, qemu-aarch64) and
# wasm32 (clang + wasm-ld + wasi-libc and its compiler runtime, run in wasmtime, node and
# headless Chromium). `run` needs only the host compiler.
if [[ "$mode" == test ]]; then
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
  [[ -f /usr/aarch64-linux-gnu/include/stdio.h ]] || missing+=(libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  command -v wasm-ld >/dev/null 2>&1 || missing+=(lld)
  [[ -f /usr/include/wasm32-wasi/stdio.h ]] || missing+=(wasi-libc)
  compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' >/dev/null ||
    missing+=(libclang-rt-14-dev-wasm32)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi

if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { say "need root (or sudo) for apt-get"; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  py="$(pick_python)" || { say "no Python >= 3.11 after installing python3"; exit 1; }
fi

# -- virtual environment -----------------------------------------------------------------------
if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "creating $venv with $("$py" --version)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi

stamp="$venv/.lmc-bootstrap-$mode"
want="$(cat requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] ||
  ! "$venv/bin/python" -c 'import lmc' 2>/dev/null; then
  say "installing requirements/$mode.txt"
  reqs=(-r "requirements/$mode.txt")
  [[ "$mode" == run ]] && reqs+=(-r requirements/build.txt)
  "$venv/bin/python" -m pip install -q "${reqs[@]}"
  "$venv/bin/python" -m pip install -q -e . --no-deps --no-build-isolation
  echo "$want" >"$stamp"
else
  say "requirements/$mode.txt already installed"
fi

# -- the job -----------------------------------------------------------------------------------
export PATH="$venv/bin:$PATH"
if [[ "$mode" == run ]]; then
  say "lmc ir examples/mlp.lmc --passes default"
  lmc ir examples/mlp.lmc --passes default --stats
  say "python examples/quickstart.py"
  python examples/quickstart.py
else
  say "ruff check ."
  ruff check .
  say "python -m pytest -q $*"
  status=0
  python -m pytest -q "$@" || status=$?
  if ((status == 5)); then
    say "pytest collected no tests: that is a failure"
    exit 1
  fi
  exit "$status"
fi
