#!/usr/bin/env bash
# Create (or reuse) the isolated virtual environment that runs lir 1.3.1 (and llreval 0.0.3 when it
# installs) to produce tests/golden/lir.json. lir pins its own numpy/scipy/scikit-learn, which must
# never enter the project's .venv, so it lives in tests/reference/.venv-lir (git-ignored).
#
# Idempotent; LIR_VENV_FRESH=1 rebuilds it, PYTHON=/path/to/python3 picks the interpreter.
# Usage:  bash tests/reference/make_lir_venv.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-lir"
PYTHON="${PYTHON:-python3}"

if [[ "${LIR_VENV_FRESH:-0}" == "1" && -d "$VENV" ]]; then
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating venv $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

"${PIP[@]}" install "lir==1.3.1"
# optional second implementation: kept only if it installs
if ! "${PIP[@]}" install "llreval==0.0.3"; then
    echo "WARNING: llreval 0.0.3 did not install; gen_golden_lir.py records it as absent" >&2
fi
"$PY" - <<'PYEOF'
import importlib.metadata as md
for name in ("lir", "llreval", "numpy", "scipy", "scikit-learn"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: not installed")
PYEOF
