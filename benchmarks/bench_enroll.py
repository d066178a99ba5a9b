"""Enrolment throughput on real LFW photos: ``benchmarks/enroll_bench.py`` (facever's
:meth:`facever.gallery.Gallery.enroll`, person by person, into a new temporary SQLite gallery: decode,
hash, detect, align, quality check, batched embedding, one transaction per person), run as its own
process so that its peak memory is its own. face_recognition has no gallery: its nearest equivalent
is encoding an image, whose rate the accuracy section records.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_common import ENROLL_BENCH, REPO, last_json_object, log, run_measured


def enroll_section(args) -> dict[str, Any]:
    """Images/s, outcomes and database bytes per face of one ``enroll_bench.py`` run."""
    people, max_images = args.enroll_people, args.enroll_max_images
    if args.limit is not None:
        people, max_images = min(people, 3), min(max_images, 5)
    cmd = [sys.executable, ENROLL_BENCH, "--lfw", args.lfw, "--people", str(people), "--max-images", str(max_images),
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
