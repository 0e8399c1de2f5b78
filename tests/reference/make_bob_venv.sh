#!/usr/bin/env bash
# Create (or reuse) the isolated virtual environment that runs bob.measure 6.1.1
# to produce tests/golden/bob_measure.json.
#
# bob.measure 6.1.1 pins numpy~=1.26, which must never enter the project's own
# .venv, so it lives in tests/reference/.venv-bob (git-ignored).
#
# Idempotent: re-running reuses the venv and only installs what is missing
# (pip skips already-satisfied requirements). Set BOB_VENV_FRESH=1 to rebuild
# from scratch. Set PYTHON=/path/to/python3 to choose the interpreter.
#
# Usage:  bash tests/reference/make_bob_venv.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-bob"
PYTHON="${PYTHON:-python3}"

if [[ "${BOB_VENV_FRESH:-0}" == "1" && -d "$VENV" ]]; then
    echo "removing $VENV (BOB_VENV_FRESH=1)"
    rm -rf "$VENV"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating venv $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
else
    echo "reusing venv $VENV ($("$VENV/bin/python" --version 2>&1))"
fi

PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

"${PIP[@]}" install --upgrade pip setuptools wheel >/dev/null

# Essential: bob.measure and its pinned dependencies (numpy~=1.26, numba, h5py,
# scipy, matplotlib, bob, bob.io.base, clapper, tabulate) from PyPI.
"${PIP[@]}" install "bob.measure==6.1.1" "numpy~=1.26.0"

# Optional cross-checks: only kept if they install against numpy 1.26.
# The numpy pin keeps pip from upgrading numpy to satisfy them.
for extra in "scikit-learn" "pyeer==0.5.6"; do
    if ! "${PIP[@]}" install "$extra" "numpy~=1.26.0"; then
        echo "WARNING: optional package '$extra' did not install; continuing without it" >&2
    fi
done

"${PIP[@]}" check || echo "WARNING: pip check reported problems (see above)" >&2

echo
echo "=== installed in $VENV ==="
"$PY" - <<'EOF'
import sys
from importlib import metadata
print("python", sys.version.split()[0])
for name in ["bob.measure", "bob", "bob.io.base", "numpy", "scipy", "numba",
             "llvmlite", "h5py", "matplotlib", "clapper", "tabulate",
             "scikit-learn", "pyeer"]:
    try:
        print(f"{name:14s} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name:14s} (not installed)")
import bob.measure  # noqa: F401  -- fail loudly if the essential import breaks
print("import bob.measure: ok")
EOF
