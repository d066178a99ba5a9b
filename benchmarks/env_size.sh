#!/usr/bin/env bash
# Environment size and install time: a fresh virtual environment with `pip install .` (facever for
# inference only: verify, enroll, identify; TensorFlow is the `facever[train]` extra) against the
# peer's (face_recognition, as benchmarks/setup_peer.sh installs it). Both are built under /tmp and
# removed afterwards; nothing is written into the repository.
#
# Usage:  bash benchmarks/env_size.sh [--json FILE] [--keep]
#   PYTHON=python3.11 bash benchmarks/env_size.sh      (interpreter the environments are made with)
#
# Measured, per system: seconds to create the venv, seconds of the install commands alone, MB on
# disk of the finished venv (`du -sm`, bytecode pip compiled included) and of the bare venv (pip
# only), the largest installed packages. Then a check that the facever venv works without
# TensorFlow: it imports, holds no tensorflow/keras/scikit-learn, and `facever verify A B` answers.
#
# The install times are with pip's cache WARM (every wheel already downloaded once on this machine:
# no network transfer, no dlib compile); a first install on a new machine also downloads ~100 MB
# (face_recognition_models) or ~80 MB (onnxruntime, opencv) and takes longer. The facever package is
# built from a copy of the working tree (git's tracked and untracked, non-ignored files).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
JSON=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --json) JSON="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "env_size: unknown argument $1" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d -t facever-envsize.XXXXXX)"
[ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
mb() { du -sm "$1" | cut -f1; }
top_packages() {  # the 6 largest entries of a venv's site-packages, "name MB" per line
    du -sm "$1"/lib/python*/site-packages/* 2>/dev/null | sort -rn | awk 'NR <= 6 {n=$2; sub(".*/", "", n); print n, $1}'
}
CACHE_DIR="$("$PYTHON" -m pip cache dir 2>/dev/null || echo "")"
CACHE_MB="$( [ -n "$CACHE_DIR" ] && [ -d "$CACHE_DIR" ] && mb "$CACHE_DIR" || echo 0)"
echo "env_size: building under $WORK with $("$PYTHON" -V 2>&1); pip cache $CACHE_DIR ($CACHE_MB MB, warm)" >&2

# --- facever: pip install . (inference only) ---------------------------------------------------
mkdir -p "$WORK/src"
(cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) \
    | tar -C "$WORK/src" -xf -
t0=$(now); "$PYTHON" -m venv "$WORK/facever-venv"; t1=$(now)
FV_BARE_MB=$(mb "$WORK/facever-venv")
"$WORK/facever-venv/bin/python" -m pip install --quiet --disable-pip-version-check "$WORK/src" >&2; t2=$(now)
FV_VENV_S=$(echo "$t1 - $t0" | bc); FV_INSTALL_S=$(echo "$t2 - $t1" | bc)
FV_MB=$(mb "$WORK/facever-venv")
FV_TOP="$(top_packages "$WORK/facever-venv")"
FV_PKGS=$("$WORK/facever-venv/bin/python" -m pip list --format=freeze 2>/dev/null | wc -l)

# check: imports without TensorFlow, and a verify answers
A="$REPO/../shared/data/lfw/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
B="$REPO/../shared/data/lfw/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0002.jpg"
CHECK_PY='import importlib.util
import facever.api, facever.gallery
heavy = [m for m in ("tensorflow", "keras", "sklearn") if importlib.util.find_spec(m) is not None]
print("imports OK; installed heavy packages: " + (", ".join(heavy) if heavy else "none"))'
FV_CHECK="$(cd /tmp && "$WORK/facever-venv/bin/python" -c "$CHECK_PY" 2>&1 || true)"
FV_CHECK="$(echo "$FV_CHECK" | tail -1)"
if [ -f "$A" ] && [ -f "$B" ]; then
    t0=$(now); set +e; (cd /tmp && "$WORK/facever-venv/bin/facever" verify "$A" "$B" --json > "$WORK/verify.out" 2> "$WORK/verify.err"); FV_VERIFY_RC=$?; set -e; t1=$(now)
    FV_VERIFY_S=$(echo "$t1 - $t0" | bc)
    FV_VERIFY_ERR="$(tail -c 400 "$WORK/verify.err")"
else
    FV_VERIFY_RC=""; FV_VERIFY_S=""; FV_VERIFY_ERR="LFW images not found, verify not run"
fi

# --- face_recognition: benchmarks/setup_peer.sh ------------------------------------------------
t0=$(now); "$PYTHON" -m venv "$WORK/peer-venv"; t1=$(now)
PEER_BARE_MB=$(mb "$WORK/peer-venv")
PEER_NO_CHECK=1 PYTHON="$PYTHON" bash "$REPO/benchmarks/setup_peer.sh" "$WORK/peer-venv" > /dev/null; t2=$(now)
PEER_VENV_S=$(echo "$t1 - $t0" | bc); PEER_INSTALL_S=$(echo "$t2 - $t1" | bc)
PEER_MB=$(mb "$WORK/peer-venv")
PEER_TOP="$(top_packages "$WORK/peer-venv")"
PEER_PKGS=$("$WORK/peer-venv/bin/python" -m pip list --format=freeze 2>/dev/null | wc -l)

printf 'facever           %5s MB (bare venv %s MB), pip install . %6.1f s, %s packages; %s; verify exit %s in %.2f s\n' \
    "$FV_MB" "$FV_BARE_MB" "$FV_INSTALL_S" "$FV_PKGS" "$FV_CHECK" "$FV_VERIFY_RC" "${FV_VERIFY_S:-0}"
printf 'face_recognition  %5s MB (bare venv %s MB), install      %6.1f s, %s packages\n' \
    "$PEER_MB" "$PEER_BARE_MB" "$PEER_INSTALL_S" "$PEER_PKGS"
printf '(pip cache warm: no downloads; venv creation %.1f s / %.1f s not included)\n' "$FV_VENV_S" "$PEER_VENV_S"

if [ -n "$JSON" ]; then
    export FV_MB FV_BARE_MB FV_VENV_S FV_INSTALL_S FV_TOP FV_PKGS FV_CHECK FV_VERIFY_RC FV_VERIFY_S FV_VERIFY_ERR \
        PEER_MB PEER_BARE_MB PEER_VENV_S PEER_INSTALL_S PEER_TOP PEER_PKGS CACHE_DIR CACHE_MB
    export PY_VERSION="$("$PYTHON" -V 2>&1)"
    "$PYTHON" - "$JSON" <<'EOF'
import json, os, sys
e = os.environ
top = lambda s: [{"package": l.split()[0], "mb": int(l.split()[1])} for l in s.splitlines() if l.strip()]
num = lambda s: float(s) if s else None
out = {
    "python": e["PY_VERSION"], "pip_cache": {"dir": e["CACHE_DIR"].replace(__import__("os").path.expanduser("~"), "~", 1), "mb": int(e["CACHE_MB"] or 0), "warm": True},
    "facever": {"command": "pip install .", "mb": int(e["FV_MB"]), "bare_venv_mb": int(e["FV_BARE_MB"]),
                "venv_create_s": num(e["FV_VENV_S"]), "install_s": num(e["FV_INSTALL_S"]),
                "n_packages": int(e["FV_PKGS"]), "largest": top(e["FV_TOP"]), "check": e["FV_CHECK"],
                "verify_rc": int(e["FV_VERIFY_RC"]) if e["FV_VERIFY_RC"] else None,
                "verify_s": num(e["FV_VERIFY_S"]), "verify_stderr": e["FV_VERIFY_ERR"]},
    "face_recognition": {"command": "bash benchmarks/setup_peer.sh (dlib-bin, face_recognition_models==0.3.0, "
                                    "setuptools<81, numpy, pillow, click; face_recognition --no-deps)",
                         "mb": int(e["PEER_MB"]), "bare_venv_mb": int(e["PEER_BARE_MB"]),
                         "venv_create_s": num(e["PEER_VENV_S"]), "install_s": num(e["PEER_INSTALL_S"]),
                         "n_packages": int(e["PEER_PKGS"]), "largest": top(e["PEER_TOP"])},
}
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    json.dump(out, fh, indent=1)
EOF
fi
