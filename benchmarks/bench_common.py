"""Shared helpers of the side-by-side benchmark (``benchmarks/compare.py``): paths and constants,
progress logging, spreads and paired ratios, measured subprocesses (wall time, CPU, peak memory),
machine and library facts, strict JSON.

Every ``bench_*`` module imports this one; none of them is part of the installed package.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
DEFAULT_LFW = DATA / "lfw"
#: The peer's interpreter, made by ``benchmarks/setup_peer.sh``.
DEFAULT_PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = HERE / "peer_face_recognition.py"
ENV_SIZE = HERE / "env_size.sh"
#: face_recognition's documented default tolerance (Euclidean distance between dlib encodings).
PEER_TOLERANCE = 0.6
#: Stage names of the per-image timings; a system without a separate stage reports None for it.
STAGES = ("decode", "detection", "landmarks", "alignment", "embedding")
SYSTEMS = ("facever", "face_recognition")


def portable(path: "str | Path") -> str:
    """``path`` as results should record it: repo-relative inside the checkout, ``../shared/...`` for
    the shared data beside it, ``~/...`` under the home folder; never an absolute path of this machine."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        return str(path)
    p = p.resolve() if p.exists() else p
    for base, shown in ((REPO, ""), (REPO.parent / "shared", "../shared"), (Path.home(), "~")):
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        return str(Path(shown) / rel) if shown else (str(rel) or ".")
    return p.name


def portable_command(argv: Sequence[str]) -> str:
    """A command line with every absolute path made :func:`portable` (the interpreter as ``python``)."""
    import shlex

    words = ["python" if a == sys.executable else (portable(a) if str(a).startswith("/") else str(a)) for a in argv]
    return " ".join(shlex.quote(w) for w in words)


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Spreads and ratios
# ----------------------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, Any] | None:
    """Median, min, max, quartiles and count of finite ``values`` (None when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "min": float(v.min()), "max": float(v.max()), "q1": float(q1), "q3": float(q3),
            "n": int(v.size)}


def ratio_spread(facever: Sequence[float], peer: Sequence[float]) -> dict[str, Any] | None:
    """Spread of the paired ratios ``facever[r] / peer[r]`` (repeat by repeat)."""
    pairs = [f / p for f, p in zip(facever, peer)
             if f is not None and p is not None and math.isfinite(f) and math.isfinite(p) and p > 0]
    return spread(pairs)


# ----------------------------------------------------------------------------------------------
# Measured subprocesses
# ----------------------------------------------------------------------------------------------

#: Runs a command as its grandchild so that ``wait4`` reports ITS peak memory: a child forked from this
#: (large) process starts with our resident set counted in its ``ru_maxrss``; the launcher is a bare
#: interpreter (≈ 10 MB), so what its child inherits is negligible.
_LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "maxrss_mb": ru.ru_maxrss / 1024.0,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, fh)
"""


def run_measured(cmd: Sequence[Any], stdout_path: str | os.PathLike[str] | None = None,
                 capture_stderr: bool = True, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` to completion: its wall seconds, exit code, peak resident memory (MB, ``wait4``
    rusage of that one process) and CPU seconds, plus its stderr (``stderr_tail``: the last 3,000
    characters; ``stderr_lines``: its number of non-empty lines)."""
    with open(stdout_path or os.devnull, "wb") as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as usage:
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, usage.name]
        proc = subprocess.run([*launcher, *map(str, cmd)], stdout=out, stderr=err if capture_stderr else None,
                              env=env, cwd=cwd, check=False)
        err.seek(0)
        raw = err.read() if capture_stderr else b""
        text = usage.read()
    tail = raw[-3000:].decode("utf-8", "replace")
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"launcher failed (exit {proc.returncode}) for {' '.join(map(str, cmd))}\n{tail}")
    lines = sum(1 for line in raw.decode("utf-8", "replace").splitlines() if line.strip())
    return {**json.loads(text), "stderr_tail": tail, "stderr_lines": lines}


# ----------------------------------------------------------------------------------------------
# Machine and library facts
# ----------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Machine and library facts recorded with the figures (facever's interpreter)."""
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        pass
    dists = ("facever", "onnxruntime", "numpy", "opencv-python-headless", "pillow", "tensorflow", "tensorflow-cpu",
             "keras", "scikit-learn")
    return {"cpu": cpu or platform.processor(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": {d: _version(d) for d in dists}}


def peer_versions(peer_python: Path) -> dict[str, Any]:
    """Python and package versions of the peer's environment."""
    code = ("import json, platform; from importlib import metadata as m\n"
            "v = {}\n"
            "for d in ('face_recognition', 'face_recognition_models', 'dlib-bin', 'dlib', 'numpy', 'pillow'):\n"
            "    try: v[d] = m.version(d)\n"
            "    except m.PackageNotFoundError: pass\n"
            "v['python'] = platform.python_version(); print(json.dumps(v))")
    proc = subprocess.run([str(peer_python), "-c", code], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-500:]}


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where unsupported)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def last_json_object(text: str) -> Any:
    """The JSON document at the end of ``text`` (a script's ``--json`` output after other lines)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for start in [i for i, c in enumerate(text) if c == "{" and (i == 0 or text[i - 1] == "\n")][::-1]:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON object at the end of: {text[-300:]!r}")
