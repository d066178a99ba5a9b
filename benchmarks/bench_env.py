"""Environment size and install time, facever (``pip install .``, inference only) against
face_recognition (``benchmarks/setup_peer.sh``): runs ``benchmarks/env_size.sh``, which builds both
in fresh virtual environments under /tmp with pip's cache warm and removes them, or reads the JSON of
an earlier run of it (``--env-json FILE``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_common import ENV_SIZE, REPO, log, run_measured


def env_section(args) -> dict[str, Any]:
    """Sizes (MB) and install seconds of both environments, and the facever environment's check."""
    if args.env_json is not None:
        log(f"env: reading {args.env_json} (an earlier run of benchmarks/env_size.sh)")
        data = json.loads(Path(args.env_json).read_text(encoding="utf-8"))
        return {"status": "ok", "source": f"{args.env_json} (earlier run)", "results": data}
    log("env: bash benchmarks/env_size.sh (two fresh venvs under /tmp, pip cache warm; about 1-3 min)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "env.json"
        stdout = Path(tmp) / "stdout.txt"
        env = {**os.environ, "PYTHON": sys.executable}
        proc = run_measured(["bash", ENV_SIZE, "--json", out], stdout_path=stdout, env=env)
        section: dict[str, Any] = {"source": "this run", "rc": proc["rc"],
                                   "wall_s": proc["wall_s"], "stdout": stdout.read_text(errors="replace")[-3000:]}
        if proc["rc"] != 0 or not out.is_file():
            section.update(status="failed", stderr_tail=proc["stderr_tail"].replace(str(REPO) + "/", ""))
            log(f"env: FAILED (exit {proc['rc']})")
            return section
        section.update(status="ok", results=json.loads(out.read_text(encoding="utf-8")))
    r = section["results"]
    log(f"env: facever {r['facever']['mb']} MB ({r['facever']['install_s']:.0f} s), face_recognition "
        f"{r['face_recognition']['mb']} MB ({r['face_recognition']['install_s']:.0f} s)")
    return section
