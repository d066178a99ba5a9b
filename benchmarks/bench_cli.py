"""Cold command-line processes: a new process per run, facever's CLI against face_recognition's.

Cases (each: one untimed run of both commands to warm the file cache, then ``--repeats`` timed runs
alternating between the systems):

* ``verify``: ``facever verify A B --json`` against ``face_recognition --show-distance true KNOWN B``
  (``KNOWN``: a temporary folder holding image A);
* ``missing_file``: the first image does not exist (``facever verify MISSING B --json`` against
  ``face_recognition KNOWN MISSING``);
* ``bad_option``: an unknown option (``facever verify A B --no-such-option`` against
  ``face_recognition --no-such-option KNOWN B``).

Per run: wall time, CPU time and peak resident memory of that process (``wait4`` rusage, through a
bare launcher so that this process's memory is not inherited), exit code, number of stderr lines.
Ratios are facever / peer within one repeat.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_common import SYSTEMS, log, ratio_spread, run_measured, spread

CASES = ("verify", "missing_file", "bad_option")


def _facever_cmd(args) -> list[str]:
    facever_bin = Path(sys.executable).with_name("facever")
    cmd = [str(facever_bin)] if facever_bin.is_file() else [sys.executable, "-m", "facever"]
    return cmd + ["verify"]


def _commands(args, image_a: Path, image_b: Path, known: Path, missing: Path) -> dict[str, dict[str, list[str]]]:
    fv = _facever_cmd(args)
    model = ["--model", str(args.model)] if args.model is not None else []
    peer = [str(Path(args.peer_python).with_name("face_recognition"))]
    return {
        "verify": {"facever": [*fv, str(image_a), str(image_b), "--json", *model],
                   "face_recognition": [*peer, "--show-distance", "true", str(known), str(image_b)]},
        "missing_file": {"facever": [*fv, str(missing), str(image_b), "--json", *model],
                         "face_recognition": [*peer, str(known), str(missing)]},
        "bad_option": {"facever": [*fv, str(image_a), str(image_b), "--no-such-option", *model],
                       "face_recognition": [*peer, "--no-such-option", str(known), str(image_b)]},
    }


def _summary(runs: list[dict[str, Any]], first: dict[str, Any]) -> dict[str, Any]:
    return {"wall_s": spread([x["wall_s"] for x in runs]), "maxrss_mb": spread([x["maxrss_mb"] for x in runs]),
            "cpu_s": spread([x["user_s"] + x["sys_s"] for x in runs]),
            "rc": sorted({x["rc"] for x in runs}), "stderr_lines": sorted({x["stderr_lines"] for x in runs}),
            "runs": [{k: x[k] for k in ("rc", "wall_s", "maxrss_mb", "user_s", "sys_s", "stderr_lines")} for x in runs],
            "stdout": first["stdout"].strip()[-1500:], "stderr": first["stderr_tail"].strip()[-1500:]}


def cli_section(args, image_a: Path, image_b: Path) -> dict[str, Any]:
    """Wall time, CPU time, peak memory and output of each case, both systems (see the module docstring)."""
    section: dict[str, Any] = {"images": [str(image_a), str(image_b)], "repeats": args.repeats, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        known = Path(tmp) / "known"
        known.mkdir()
        shutil.copyfile(image_a, known / ("person_a" + image_a.suffix.lower()))
        missing = Path(tmp) / "missing.jpg"
        cases = _commands(args, image_a, image_b, known, missing)
        for case in CASES:
            cmds = cases[case]
            shown = {s: " ".join(shlex.quote(c) for c in cmd).replace(tmp + "/", "") for s, cmd in cmds.items()}
            log(f"cli {case}: one untimed run of each (file cache), then {args.repeats} alternating timed runs")
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
            first: dict[str, dict[str, Any]] = {}
            for r in range(args.repeats + 1):
                for system, cmd in cmds.items():
                    stdout = Path(tmp) / f"{system}.out"
                    res = run_measured(cmd, stdout_path=stdout)
                    res["stdout"] = stdout.read_text(errors="replace")[-2000:].replace(tmp + "/", "")
                    res["stderr_tail"] = res["stderr_tail"].replace(tmp + "/", "")
                    if r == 0:
                        first[system] = res
                        if case == "verify" and res["rc"] not in (0, 1):  # verify: 0 same, 1 different, 2 error
                            raise RuntimeError(f"{system} CLI failed (exit {res['rc']}): {shown[system]}\n"
                                               f"{res['stderr_tail']}")
                    else:
                        runs[system].append(res)
            entry: dict[str, Any] = {"commands": shown}
            for system in SYSTEMS:
                entry[system] = _summary(runs[system], first[system])
            entry["ratio"] = {key: ratio_spread([x[key] for x in runs["facever"]],
                                                [x[key] for x in runs["face_recognition"]])
                              for key in ("wall_s", "maxrss_mb")}
            section["cases"][case] = entry
            log(f"cli {case}: facever {entry['facever']['wall_s']['median']:.3f} s, "
                f"{entry['facever']['maxrss_mb']['median']:.0f} MB; face_recognition "
                f"{entry['face_recognition']['wall_s']['median']:.3f} s, "
                f"{entry['face_recognition']['maxrss_mb']['median']:.0f} MB")
    return section
