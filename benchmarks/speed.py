"""Speed figures of issue 20, facever against face_recognition in one run: cold command-line starts,
one face end to end, enrolment photos/s, batch embedding photos/s on LFW.

Usage (from the repository root, with facever's Python; the peer from ``benchmarks/setup_peer.sh``)::

    python benchmarks/speed.py                          # → benchmarks/results/speed.json + speed.md
    python benchmarks/speed.py --baseline-pythonpath OLD/pkgs --baseline-label "facever 1e275cf"

Sections (each repeats alternate between the systems, so that machine load hits all alike; ratios
are facever / peer of one repeat, then their median):

* ``cold``: a new process per run (``bench_common.run_measured``: wall, CPU = user + system, peak
  memory): ``verify A B`` (text), ``verify A B --json``, a missing file, an unknown option, ``--help``;
  the peer's ``face_recognition`` command doing the same (``KNOWN`` folder holding A). With
  ``--baseline-pythonpath``, an older facever checkout runs the same commands too (its packages
  first on ``PYTHONPATH``; ``facever``, ``facever_cli``, ``facever_models`` must be importable from it).
* ``one_face``: ``bench_speed.speed_section``: per-stage time of one image at a time, both systems.
* ``enroll``: ``enroll_bench.enroll_section``: Gallery.enroll photos/s on LFW people.
* ``one_face_fast``, ``enroll_fast``, ``batch_fast``: the same three with the int8 bundle
  (``--fast-model``, default the shipped ``fast``; '' to leave it out), the peer timed again alongside.
* ``batch``: ``FaceVerifier.embed_many`` over ``--batch-images`` LFW photos with one worker and one per
  core (model loaded), and the ``facever embed`` command on the same photos (a cold process that also
  writes the NPZ); the peer has no CPU batch API: its rate is one image at a time (``one_face``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import (DEFAULT_LFW, DEFAULT_PEER_PYTHON, environment, finite_json, load_average,  # noqa: E402
                          log, peer_versions, ratio_spread, run_measured, spread)

CASES = ("verify_text", "verify_json", "missing_file", "bad_option", "help")


def _lfw_files(lfw_root: Path, n: int) -> tuple[Path, list[Path]]:
    from facever.training import lfw

    root = lfw.image_root(lfw_root)
    pool = sorted(root.glob("*/*.jpg"))
    return root, pool[::max(1, len(pool) // n)][:n]  # spread over the alphabet, deterministic


def _cold_commands(args, a: Path, b: Path, known: Path, missing: Path) -> dict[str, dict[str, list[str]]]:
    fv = [str(Path(sys.executable).with_name("facever"))]
    base = [sys.executable, "-c", "import sys; from facever_cli.app import main; sys.exit(main())"]
    peer = [str(Path(args.peer_python).with_name("face_recognition"))]
    facever_args = {"verify_text": ["verify", a, b], "verify_json": ["verify", a, b, "--json"],
                    "missing_file": ["verify", missing, b, "--json"], "bad_option": ["verify", a, b, "--no-such-option"],
                    "help": ["--help"]}
    peer_args = {"verify_text": ["--show-distance", "true", known, b], "verify_json": ["--show-distance", "true", known, b],
                 "missing_file": [known, missing], "bad_option": ["--no-such-option", known, b], "help": ["--help"]}
    out = {}
    for case in CASES:
        cmds = {"facever": fv + list(map(str, facever_args[case])),
                "face_recognition": peer + list(map(str, peer_args[case]))}
        if args.baseline_pythonpath:
            cmds["baseline"] = base + list(map(str, facever_args[case]))
        out[case] = cmds
    return out


def cold_section(args, a: Path, b: Path) -> dict[str, Any]:
    """Cold processes: one untimed run of each command (file cache), then ``--repeats`` alternating runs."""
    section: dict[str, Any] = {"images": [a.name, b.name], "repeats": args.repeats, "cases": {}}
    base_env = {**os.environ, "PYTHONPATH": str(args.baseline_pythonpath)} if args.baseline_pythonpath else None
    with tempfile.TemporaryDirectory() as tmp:
        known = Path(tmp) / "known"
        known.mkdir()
        shutil.copyfile(a, known / ("person_a" + a.suffix.lower()))
        for case, cmds in _cold_commands(args, a, b, known, Path(tmp) / "missing.jpg").items():
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in cmds}
            for r in range(args.repeats + 1):
                for system, cmd in cmds.items():
                    res = run_measured(cmd, env=base_env if system == "baseline" else None, cwd=tmp)
                    if r:
                        runs[system].append(res)
            entry: dict[str, Any] = {}
            for system, rs in runs.items():
                entry[system] = {"wall_s": spread([x["wall_s"] for x in rs]),
                                 "cpu_s": spread([x["user_s"] + x["sys_s"] for x in rs]),
                                 "maxrss_mb": spread([x["maxrss_mb"] for x in rs]), "rc": sorted({x["rc"] for x in rs}),
                                 "stderr_lines": sorted({x["stderr_lines"] for x in rs})}
            for other in [s for s in cmds if s != "facever"]:
                entry[f"ratio_to_{other}"] = {
                    key: ratio_spread([x[key] for x in runs["facever"]], [x[key] for x in runs[other]])
                    for key in ("wall_s", "maxrss_mb")}
                entry[f"ratio_to_{other}"]["cpu_s"] = ratio_spread(
                    [x["user_s"] + x["sys_s"] for x in runs["facever"]], [x["user_s"] + x["sys_s"] for x in runs[other]])
            section["cases"][case] = entry
            log(f"cold {case}: " + ", ".join(f"{s} {entry[s]['wall_s']['median']:.3f} s" for s in cmds))
    return section


def batch_section(args, verifier, files: list[Path]) -> dict[str, Any]:
    """embed_many photos/s with 1 and all workers (repeats alternate), and one cold ``facever embed`` run."""
    from facever.batch import default_workers

    n_all = default_workers()
    settings = {"workers_1": 1, f"workers_{n_all}": n_all}
    verifier.embed_many(files[:8], workers=1)  # first calls of every session
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in settings}
    faces = 0
    for _ in range(args.batch_repeats):
        for key, workers in settings.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results = verifier.embed_many(files, workers=workers)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            faces = sum(len(r.faces) for r in results)
            runs[key].append({"photos_per_s": len(files) / wall, "cpu_s_per_photo": cpu / len(files)})
            log(f"batch {key}: {len(files) / wall:.1f} photos/s, {cpu / len(files) * 1000:.1f} ms CPU per photo")
    section: dict[str, Any] = {"n_photos": len(files), "n_faces": faces, "workers": settings, "repeats": args.batch_repeats,
                               "library": {k: {m: spread([x[m] for x in v]) for m in ("photos_per_s", "cpu_s_per_photo")}
                                           for k, v in runs.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        for f in files:
            (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
            os.symlink(f, folder / f.parent.name / f.name)
        cmd = [str(Path(sys.executable).with_name("facever")), "embed", str(folder), "--out", str(Path(tmp) / "f.npz"),
               "--json"] + (["--model", str(args.model)] if args.model else [])
        stdout = Path(tmp) / "out.json"
        proc = run_measured(cmd, stdout_path=stdout)
        summary = json.loads(stdout.read_text()) if proc["rc"] == 0 else {"stderr": proc["stderr_tail"]}
        resumed = run_measured(cmd, stdout_path=stdout)
    section["cli"] = {"rc": proc["rc"], "wall_s": proc["wall_s"], "cpu_s": proc["user_s"] + proc["sys_s"],
                      "maxrss_mb": proc["maxrss_mb"], "photos_per_s_process": len(files) / proc["wall_s"],
                      "summary": {k: summary.get(k) for k in ("photos", "faces_now", "no_face", "photos_per_s")},
                      "resume_wall_s": resumed["wall_s"]}
    log(f"batch cli: {len(files) / proc['wall_s']:.1f} photos/s for the whole process; resume {resumed['wall_s']:.2f} s")
    return section


def relative_paths(text: str, args) -> str:
    """``text`` without this machine's paths: the LFW root, the repository, the interpreters."""
    for path, name in ((args.lfw.resolve(), "LFW"), (Path(args.peer_python).parent, "PEER_BIN"),
                       (Path(sys.executable).parent, "BIN"), (HERE.parent, ".")):
        text = text.replace(str(path) + "/", name + "/").replace(str(path), name)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--fast-model", default="fast", help="the int8 bundle timed beside the float one ('' for none)")
    ap.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    ap.add_argument("--baseline-pythonpath", type=Path, default=None, help="an older facever's packages (see above)")
    ap.add_argument("--baseline-label", default="facever before issue 20")
    ap.add_argument("--repeats", type=int, default=7, help="cold runs and one-face passes per system")
    ap.add_argument("--speed-images", type=int, default=20)
    ap.add_argument("--batch-images", type=int, default=600)
    ap.add_argument("--batch-repeats", type=int, default=2)
    ap.add_argument("--enroll-people", type=int, default=12)
    ap.add_argument("--enroll-max-images", type=int, default=10)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: cold,one_face,enroll,batch")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    args.limit = None  # enroll_bench's smoke switch
    skip = set(filter(None, args.skip.split(",")))

    from facever.api import FaceVerifier

    from speed_report import render

    image_root, files = _lfw_files(args.lfw, max(args.batch_images, args.speed_images))
    verifier = FaceVerifier(model=args.model)
    fast = FaceVerifier(model=args.fast_model) if args.fast_model else None
    fast_args = argparse.Namespace(**{**vars(args), "model": args.fast_model})
    results: dict[str, Any] = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load_average(),
                                        "environment": environment(), "peer": peer_versions(args.peer_python),
                                        "model_version": verifier.model_version, "repeats": args.repeats,
                                        "fast_model_version": fast.model_version if fast else None,
                                        "baseline": args.baseline_label if args.baseline_pythonpath else None},
                               "durations_s": {}}

    def timed(name: str, fn, *fn_args) -> None:
        if name in skip:
            return
        t0 = time.time()
        results[name] = fn(*fn_args)
        results["durations_s"][name] = round(time.time() - t0, 1)
        results["meta"][f"load_average_after_{name}"] = load_average()

    if "cold" not in skip:
        from facever.training.lfw import protocol_file, read_pairs

        first = next(p for p in read_pairs(protocol_file(args.lfw, "pairsDevTest.txt")) if p.same)
        timed("cold", cold_section, args, image_root / first.path1, image_root / first.path2)
    if "one_face" not in skip:
        from bench_speed import speed_section

        speed_files = files[::max(1, len(files) // args.speed_images)][:args.speed_images]
        timed("one_face", speed_section, args, verifier, speed_files, image_root)
        if fast is not None:
            timed("one_face_fast", speed_section, args, fast, speed_files, image_root)
    if "enroll" not in skip:
        from enroll_bench import enroll_section

        timed("enroll", enroll_section, args)
        if fast is not None:
            timed("enroll_fast", enroll_section, fast_args)
    timed("batch", batch_section, args, verifier, files[:args.batch_images])
    if fast is not None:
        timed("batch_fast", batch_section, fast_args, fast, files[:args.batch_images])
    results["meta"]["load_average_end"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(relative_paths(json.dumps(finite_json(results), indent=1), args) + "\n")
    (args.out / "speed.md").write_text(render(results))
    log(f"wrote {args.out / 'speed.json'} and {args.out / 'speed.md'}")


if __name__ == "__main__":
    main()
