#!/usr/bin/env bash
# Create .venv/ (if missing) and install the pinned dependencies from
# requirements.lock plus the project itself (editable). Idempotent: when the
# lock file is unchanged since the last successful run (stamp in .venv) and
# .venv/bin/fsc exists, it does nothing.
#
#   PYTHON=/path/to/python3.11 scripts/bootstrap.sh   # choose the interpreter
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV="$ROOT/.venv"
LOCK="$ROOT/requirements.lock"
STAMP="$VENV/.fsc-lock.sha256"
PYTHON=${PYTHON:-python3}

lock_hash=$( { sha256sum "$LOCK" pyproject.toml; } | sha256sum | cut -d' ' -f1)

if [[ -x "$VENV/bin/python" && -x "$VENV/bin/fsc" && -f "$STAMP" ]] \
   && [[ "$(cat "$STAMP")" == "$lock_hash" ]]; then
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "bootstrap: $PYTHON not found (need Python >= 3.11; set PYTHON=...)" >&2
    exit 1
  fi
  if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "bootstrap: $PYTHON is $("$PYTHON" -V 2>&1); need Python >= 3.11 (set PYTHON=...)" >&2
    exit 1
  fi
  echo "bootstrap: creating .venv with $("$PYTHON" -V 2>&1)" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "bootstrap: '$PYTHON -m venv' failed (on Debian's python3: apt-get install python3-venv)" >&2
    exit 1
  fi
fi

rm -f "$STAMP"
pip_log=$(mktemp /tmp/fsc-bootstrap.XXXXXX.log)
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check --no-input "$@"; }
echo "bootstrap: installing requirements.lock" >&2
# setuptools is pinned in the lock, so the editable build runs without build
# isolation: nothing unpinned gets fetched.
if ! { pip install -q --require-hashes -r "$LOCK" \
       && pip install -q --no-deps --no-build-isolation -e "$ROOT"; } >"$pip_log" 2>&1; then
  grep -v "WARNING: Location 'file:" "$pip_log" | tail -n 40 >&2
  if grep -q "libvirt" "$pip_log" && ! pkg-config --exists libvirt 2>/dev/null; then
    echo "bootstrap: libvirt-python needs the Debian packages libvirt-dev, pkg-config and gcc: run 'make system-deps' as root" >&2
  fi
  echo "bootstrap: pip failed (full log: $pip_log)" >&2
  exit 1
fi
rm -f "$pip_log"

if [[ ! -x "$VENV/bin/fsc" ]]; then
  echo "bootstrap: .venv/bin/fsc missing after install" >&2
  exit 1
fi
echo "$lock_hash" >"$STAMP"
echo "bootstrap: done" >&2
