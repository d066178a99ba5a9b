"""facever side by side with face_recognition (dlib): accuracy, speed, memory, enrolment, search
latency and environment size, in one run.

Run with facever's Python; the peer runs in its own interpreter (``--peer-python``, made by
``benchmarks/setup_peer.sh``) through ``benchmarks/peer_face_recognition.py``. One command
regenerates everything (JSON, PNG plots and ``benchmarks/RESULTS.md``)::

    python benchmarks/compare.py --gallery-bench                   # full run (about 30 min on 2 idle cores)
    python benchmarks/compare.py --limit 16 --repeats 2 --speed-images 5 --gallery-sizes 1000,10000 \\
        --queries 5 --out runs/smoke --md runs/smoke/RESULTS.md     # smoke run (about 2 min)

Sections, one module each (each can be skipped):

* ``bench_accuracy``: LFW P1 (View 1, 10-fold τ), P2 (DevTest all pairs), P3 (DevTest open-set
  identification, 1 and 3 images enrolled) and the share of images with a face found, same images
  for both systems; failed images score distance 2.0 for the system that failed.
* ``bench_heldout``: the held-out pins and bollywood test people (``facever/training/splits/*_test.txt``):
  pair accuracy, TAR at FAR 1e-2/1e-3, AUC, EER, failed images; each system's own user pipeline.
* ``bench_speed``: one face, one image at a time, stage by stage, repeats alternating.
* ``bench_cli``: cold command-line processes: ``facever verify A B`` against ``face_recognition``,
  plus the error paths (missing file, bad option): wall time, CPU, peak memory, stderr lines.
* ``enroll_bench``: enrolment throughput on LFW photos (``benchmarks/enroll_bench.py``).
* ``gallery_bench``: 1:K search latency against gallery size (``--gallery-bench``: also facever's own
  gallery figures, ``benchmarks/gallery_bench.py``).
* ``bench_env``: environment size and install time (``benchmarks/env_size.sh``).

Outputs: ``OUT/compare.json`` (every figure and raw timing), ``OUT/*.png`` and ``--md`` (rendered by
``benchmarks/make_results.py``, which can re-render from the JSON alone). Progress goes to stderr.
Embeddings are cached in ``$FACEVER_CACHE/benchmarks`` (``--no-cache`` to disable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_common import (DATA, DEFAULT_LFW, DEFAULT_PEER_PYTHON, PEER_TOLERANCE, environment,  # noqa: E402
                          finite_json, load_average, log, peer_versions, portable, portable_command)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help=f"LFW root (default {DEFAULT_LFW})")
    ap.add_argument("--data", type=Path, default=DATA,
                    help=f"folder holding pins/ and bollywood/ for the held-out people (default {DATA})")
    ap.add_argument("--model", type=Path, default=None, help="facever bundle (default: FACEVER_MODEL or the shipped one)")
    ap.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON,
                    help=f"Python of the face_recognition environment (default {DEFAULT_PEER_PYTHON}, "
                         "made by benchmarks/setup_peer.sh)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for compare.json and the PNGs")
    ap.add_argument("--md", type=Path, default=HERE / "RESULTS.md", help="Markdown report written from the JSON")
    ap.add_argument("--limit", type=int, default=None,
                    help="quick run: first N P1 pairs (half genuine, half impostor), the first 2N DevTest images "
                         "for P2/P3, 2 images per held-out person, a small enrolment")
    sk = ap.add_argument_group("sections")
    sk.add_argument("--skip-p2", action="store_true", help="skip P2 and P3 (all DevTest images)")
    sk.add_argument("--skip-accuracy", action="store_true", help="skip P1, P2 and P3")
    sk.add_argument("--skip-heldout", action="store_true", help="skip the held-out pins/bollywood people")
    sk.add_argument("--skip-speed", action="store_true", help="skip the per-stage timings")
    sk.add_argument("--skip-cli", action="store_true", help="skip the cold command-line runs")
    sk.add_argument("--skip-enroll", action="store_true", help="skip the enrolment throughput")
    sk.add_argument("--skip-gallery", action="store_true", help="skip the search-latency section")
    sk.add_argument("--skip-env", action="store_true", help="skip the environment size (env_size.sh)")
    ap.add_argument("--speed-images", type=int, default=50, help="LFW images timed one at a time (default 50)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of every timing (default 5)")
    ap.add_argument("--heldout-per-person", type=int, default=None,
                    help="held-out images per person (default all; 2 with --limit)")
    ap.add_argument("--heldout-pick", choices=("largest", "central"), default="largest",
                    help="face kept by both systems in a held-out image with several (default largest, both "
                         "libraries' default)")
    ap.add_argument("--enroll-people", type=int, default=40, help="LFW people enrolled (default 40; 3 with --limit)")
    ap.add_argument("--enroll-max-images", type=int, default=20,
                    help="images per enrolled person at most (default 20; 5 with --limit)")
    ap.add_argument("--env-json", type=Path, default=None,
                    help="use this JSON of an earlier `bash benchmarks/env_size.sh --json FILE` run instead of "
                         "building the two environments again")
    ap.add_argument("--gallery-sizes", default="1000,100000,1000000", help="comma-separated gallery sizes")
    ap.add_argument("--queries", type=int, default=20, help="search queries per repeat and size (default 20)")
    ap.add_argument("--gallery-bench", action="store_true", help="also run benchmarks/gallery_bench.py")
    ap.add_argument("--gallery-bench-args", default="--sizes {sizes}",
                    help="its arguments ({sizes} = --gallery-sizes; {json} = a file it may write JSON to); "
                         "its printed output is kept either way")
    ap.add_argument("--cli-images", type=Path, nargs=2, default=None, metavar=("A", "B"),
                    help="images for the cold CLI runs (default: the first genuine P1 pair)")
    ap.add_argument("--peer-pick", choices=("central", "largest"), default="central",
                    help="peer's face when an LFW image holds several (default central, facever's LFW rule)")
    ap.add_argument("--batch-size", type=int, default=32, help="facever detection batch in the accuracy runs")
    ap.add_argument("--cache", type=Path, default=None,
                    help="embedding cache folder (default $FACEVER_CACHE/benchmarks); reused when paths and models match")
    ap.add_argument("--no-cache", action="store_true", help="always re-embed, write no cache")
    ap.add_argument("--seed", type=int, default=0, help="seed of the 10-fold splits and P3's enrolment choice")
    ap.add_argument("--no-report", action="store_true", help="write only compare.json")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.speed_images < 1 or args.queries < 1:
        ap.error("--repeats, --speed-images and --queries must be >= 1")
    if args.limit is not None and args.limit < 10:
        ap.error("--limit must be >= 10 (P1's 10-fold cross-validation needs 10 pairs)")
    if args.heldout_per_person is not None and args.heldout_per_person < 2:
        ap.error("--heldout-per-person must be >= 2 (genuine pairs need two images)")
    return args


def systems_meta(args, verifier, default_tau: float | None) -> dict[str, Any]:
    """What each system is: model, detector, alignment, threshold and where it comes from."""
    from facever.training import lfw

    meta = verifier.bundle.metadata
    training = getattr(meta, "training", None) or {}
    data = training.get("data") or {}
    trained = data.get("people")
    devtest = set(lfw.read_people(lfw.protocol_file(args.lfw, "peopleDevTest.txt")))
    detector = verifier.embedder.detector
    t = meta.threshold
    return {
        "facever": {"model_path": portable(verifier.bundle.path), "model_version": verifier.model_version,
                    "architecture": meta.architecture, "input_size": meta.input_size, "flip_tta": meta.flip_tta,
                    "view_zooms": list(meta.view_zooms),
                    "alignment": verifier.embedder.template_name, "training_method": training.get("method"),
                    "never_trained_on": data.get("never_trained_on"),
                    "default_threshold": default_tau,
                    "stated_far": float(t.far) if t is not None and t.far is not None else None,
                    "stated_frr": float(t.frr) if t is not None and t.frr is not None else None,
                    "threshold_source": (f"bundle metadata ({t.target}, {t.calibration_set})" if t is not None
                                         else "bundle is not calibrated"),
                    "detector": f"MTCNN on onnxruntime ({type(detector).__module__}.{type(detector).__name__})",
                    "devtest_people_in_training": len(devtest & set(trained)) if trained else None,
                    "n_devtest_people": len(devtest)},
        "face_recognition": {"python": portable(args.peer_python), "default_threshold": PEER_TOLERANCE,
                             "threshold_source": "face_recognition's default tolerance 0.6",
                             "detector": "dlib HOG (face_locations default)", "pick": args.peer_pick,
                             "versions": peer_versions(args.peer_python)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    if not (args.lfw / "protocol").is_dir():
        sys.exit(f"compare: {args.lfw} is not an LFW root (no protocol/ folder); pass --lfw PATH")
    if not Path(args.peer_python).is_file():
        sys.exit(f"compare: peer interpreter {args.peer_python} not found; run `bash benchmarks/setup_peer.sh` "
                 "or pass --peer-python")
    from facever import config
    from facever.training import lfw
    from facever.api import FaceVerifier

    from bench_accuracy import accuracy_section, p1_pairs

    cache = None if args.no_cache else (args.cache or config.cache_dir() / "benchmarks")
    log(f"loading facever model {config.model_path(args.model)}")
    verifier = FaceVerifier(model=args.model, calibrated=False)  # τ read below
    meta = verifier.bundle.metadata
    default_tau = float(meta.threshold.value) if meta.threshold is not None else None
    image_root = lfw.image_root(args.lfw)
    skipped = [s for s in ("p2", "accuracy", "heldout", "speed", "cli", "enroll", "gallery", "env")
               if getattr(args, f"skip_{s}")]
    smoke = bool(args.limit is not None or skipped or args.repeats < 3 or args.heldout_per_person is not None)
    results: dict[str, Any] = {
        "meta": {"command": portable_command([sys.executable, *sys.argv]), "smoke": smoke,
                 "skipped": skipped,
                 "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                 "lfw_root": portable(args.lfw), "limit": args.limit, "repeats": args.repeats,
                 "load_average_start": load_average(), "environment": environment()},
        "systems": systems_meta(args, verifier, default_tau),
        "durations_s": {},
    }

    def timed(name: str, fn, *fn_args) -> None:
        t0 = time.time()
        results[name] = fn(*fn_args)
        results["durations_s"][name] = time.time() - t0

    pairs = p1_pairs(args.lfw, args.limit)
    if not args.skip_accuracy:
        timed("accuracy", accuracy_section, args, verifier, default_tau, cache)
    if not args.skip_heldout:
        from bench_heldout import heldout_section

        timed("heldout", heldout_section, args, verifier, default_tau, cache)
    if not args.skip_speed:
        from bench_speed import speed_section

        pool = sorted({p.path1 for p in p1_pairs(args.lfw, None)})  # spread over the alphabet, deterministic
        files = [image_root / p for p in pool[::max(1, len(pool) // args.speed_images)][:args.speed_images]]
        timed("speed", speed_section, args, verifier, files, image_root)
    if not args.skip_cli:
        from bench_cli import cli_section

        if args.cli_images:
            a, b = args.cli_images
        else:
            first = next(p for p in pairs if p.same)
            a, b = image_root / first.path1, image_root / first.path2
        timed("cli", cli_section, args, Path(a), Path(b))
    if not args.skip_enroll:
        from enroll_bench import enroll_section

        timed("enroll", enroll_section, args)
    if not args.skip_gallery:
        from gallery_bench import gallery_section

        timed("gallery", gallery_section, args)
    if not args.skip_env:
        from bench_env import env_section

        timed("env", env_section, args)
    results["meta"]["load_average_end"] = load_average()
    results["meta"]["duration_s"] = time.time() - started
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "compare.json"
    out_json.write_text(json.dumps(finite_json(results), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    log(f"wrote {out_json} ({results['meta']['duration_s'] / 60:.1f} min)")
    if not args.no_report:
        from make_results import write_report

        for path in write_report(json.loads(out_json.read_text()), args.out, args.md):
            log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
