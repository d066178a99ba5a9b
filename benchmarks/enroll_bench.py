"""Enroll throughput on real photos and database bytes per face (facever's gallery, SQLite).

Usage: python benchmarks/enroll_bench.py [--lfw ../shared/data/lfw] [--people 40] [--model BUNDLE]

Takes the LFW people (deep-funneled images) with the most images, up to ``--people`` of them, copies
nothing, and enrolls them person by person through :meth:`facever.gallery.Gallery.enroll` (decode,
detect, align, quality check, embed, write in one transaction per person) into a new SQLite file.
Prints images/s end to end (model loading excluded; the first person is a warm-up and not timed),
the outcome counts and the database file size per enrolled face. ``--allow-duplicate`` is on, since
the point is throughput, not the duplicate-identity check.

:func:`enroll_section` is the same run for ``compare.py`` and ``speed.py``: this script in its own
process (its peak memory is its own), with the figures read back. face_recognition has no gallery:
its nearest equivalent is encoding an image, whose rate the accuracy section records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent


def _db_bytes(db_file: Path) -> int:
    """Size of a SQLite database in bytes, its write-ahead log included."""
    wal = Path(f"{db_file}-wal")
    return db_file.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=HERE.parent.parent / "shared" / "data" / "lfw")
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--max-images", type=int, default=20, help="images per person at most")
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from facever.gallery import Gallery

    root = args.lfw / "lfw-deepfunneled"
    people = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (-len(list(p.iterdir())), p.name))
    people = people[: args.people + 1]
    with tempfile.TemporaryDirectory() as tmp:
        db_file = Path(tmp) / "gallery.db"
        with Gallery(f"sqlite:///{db_file}", model=args.model) as g:
            warm, timed = people[0], people[1:]
            g.enroll(warm.name, sorted(warm.iterdir())[: args.max_images], allow_duplicate=True)
            size0 = _db_bytes(db_file)
            counts: dict[str, int] = {}
            n_images = 0
            t0 = time.perf_counter()
            for person in timed:
                images = sorted(person.iterdir())[: args.max_images]
                n_images += len(images)
                report = g.enroll(person.name, images, allow_duplicate=True)
                for o in report.outcomes:
                    counts[o.status] = counts.get(o.status, 0) + 1
            secs = time.perf_counter() - t0
        size1 = _db_bytes(db_file)
    enrolled = counts.get("enrolled", 0)
    result = {"people": len(timed), "images": n_images, "seconds": secs, "images_per_s": n_images / secs,
              "outcomes": counts, "db_bytes_per_face": (size1 - size0) / max(enrolled, 1)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"enrolled {enrolled} of {n_images} images of {len(timed)} LFW people in {secs:.1f} s: "
              f"{n_images / secs:.1f} images/s; outcomes {counts}; "
              f"database growth {result['db_bytes_per_face'] / 1024:.1f} KiB per face")


def enroll_section(args) -> dict[str, Any]:
    """For ``compare.py`` / ``speed.py``: images/s, outcomes and database bytes per face of one run of
    this script (:func:`main`), as its own process so that its peak memory is its own."""
    from bench_common import REPO, last_json_object, log, run_measured

    people, max_images = args.enroll_people, args.enroll_max_images
    if args.limit is not None:
        people, max_images = min(people, 3), min(max_images, 5)
    cmd = [sys.executable, Path(__file__).resolve(), "--lfw", args.lfw, "--people", str(people), "--max-images", str(max_images),
           "--json"]
    if args.model is not None:
        cmd += ["--model", args.model]
    shown = " ".join(map(str, cmd)).replace(str(REPO) + "/", "")
    log(f"enrol: {shown}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stdout.txt"
        proc = run_measured(cmd, stdout_path=out)
        stdout = out.read_text(errors="replace")
    section: dict[str, Any] = {"command": shown, "rc": proc["rc"], "wall_s": proc["wall_s"],
                               "maxrss_mb": proc["maxrss_mb"], "people": people, "max_images": max_images}
    if proc["rc"] != 0:
        section.update(status="failed", stderr_tail=proc["stderr_tail"])
        log(f"enrol: FAILED (exit {proc['rc']})")
        return section
    section.update(status="ok", results=last_json_object(stdout))
    r = section["results"]
    log(f"enrol: {r['images']} images of {r['people']} people at {r['images_per_s']:.1f} images/s; {r['outcomes']}")
    return section


if __name__ == "__main__":
    main()
