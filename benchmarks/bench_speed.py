"""Speed per image: one face, one image at a time, stage by stage (decode, detection, landmarks,
alignment, embedding), facever in this process against face_recognition in its own.

``--repeats`` passes alternate between the systems so that machine load hits both alike; each ratio
is facever / peer of one repeat (below 1: facever faster). facever's batched detection of the same
images is an extra row.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import STAGES, SYSTEMS, log, ratio_spread, spread
from bench_embed import run_peer_embed


def facever_stage_pass(verifier, files: list[Path]) -> np.ndarray:
    """``(N, 5)`` seconds per image and stage (STAGES order; landmarks NaN: MTCNN gives them with the
    boxes). One image at a time as ``facever verify`` does: largest face, one crop per encoder call."""
    from facever.detection import select_faces
    from facever.embedding import align_faces
    from facever.imaging import load_image

    embedder = verifier.embedder
    out = np.full((len(files), len(STAGES)), np.nan)
    clock = time.perf_counter
    for i, f in enumerate(files):
        t0 = clock()
        rgb = load_image(f)
        t1 = clock()
        faces = embedder.detector.detect(rgb)
        t2 = clock()
        out[i, 0], out[i, 1] = t1 - t0, t2 - t1
        if not faces:
            continue
        face = select_faces(faces, "largest")[0]
        t3 = clock()
        aligned = align_faces(rgb, [face], embedder.input_size, embedder.template_name)
        t4 = clock()
        embedder.embed_crops(aligned[0].crop[None])
        t5 = clock()
        out[i, 3], out[i, 4] = t4 - t3, t5 - t4
    return out


def _peer_stage_rows(times: np.ndarray) -> np.ndarray:
    """Peer stages (decode, detection, landmarks, encoding) → the STAGES layout (alignment NaN: dlib
    extracts its aligned chip inside the encoding call)."""
    out = np.full((times.shape[0], len(STAGES)), np.nan)
    out[:, 0], out[:, 1], out[:, 2], out[:, 4] = times[:, 0], times[:, 1], times[:, 2], times[:, 3]
    return out


def _median_rows(rows: np.ndarray) -> list[float]:
    return [float(np.nanmedian(row)) if np.isfinite(row).any() else float("nan") for row in rows]


def speed_section(args, verifier, files: list[Path], image_root: Path) -> dict[str, Any]:
    """Per-stage and per-image latency of both systems, repeats alternating between them."""
    from facever.imaging import load_image

    embedder = verifier.embedder
    n_warm = min(2, len(files))
    log(f"speed: {len(files)} images × {args.repeats} repeats, one image at a time (warm-up {n_warm} images)")
    facever_stage_pass(verifier, files[:n_warm])  # first calls of the detector and encoder sessions
    decoded = [load_image(f) for f in files]
    embedder.detector.detect_batch(decoded)  # first call of the batched path
    rel = [str(f.relative_to(image_root)) for f in files]
    runs: dict[str, list[np.ndarray]] = {s: [] for s in SYSTEMS}
    batched: list[float] = []
    peer_meta = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            runs["facever"].append(facever_stage_pass(verifier, files))
            t0 = time.perf_counter()
            embedder.detector.detect_batch(decoded)
            batched.append((time.perf_counter() - t0) / len(decoded))
            res = run_peer_embed(args.peer_python, image_root, rel, Path(tmp) / "speed.npz", "largest", repeat=1,
                                 warmup=n_warm)
            runs["face_recognition"].append(_peer_stage_rows(res["times"][0]))
            peer_meta = res["meta"]
            log(f"speed: repeat {r + 1}/{args.repeats} done")
    size, template = embedder.input_size, embedder.template_name
    meta = verifier.bundle.metadata
    n_views = len(meta.view_zooms) * (2 if meta.flip_tta else 1)
    zooms = ", ".join(f"{z:g}" for z in meta.view_zooms)
    section: dict[str, Any] = {
        "n_images": len(files), "repeats": args.repeats, "images": rel, "unit": "seconds per image", "stages": {},
        "notes": {
            "facever": {"decode": "load_image (PIL, EXIF, checks)",
                        "detection": f"MTCNN on onnxruntime ({type(embedder.detector).__name__}, boxes + 5 landmarks), "
                                     "one image per call",
                        "detection_batched": f"MTCNN detect_batch of all {len(files)} images, per image "
                                             "(ratio to the peer's per-image detection)",
                        "landmarks": None,
                        "alignment": f"5-point similarity warp to a {size}×{size} {template}-template crop",
                        "embedding": f"encoder on one crop's {n_views} test-time view(s) in one onnxruntime call "
                                     f"(zooms {zooms}{', each mirrored' if meta.flip_tta else ''})"},
            "face_recognition": {"decode": "load_image_file (PIL)",
                                 "detection": "HOG, 1 upsampling (face_locations default)",
                                 "landmarks": "5-point shape predictor (face_encodings default)",
                                 "alignment": None,
                                 "embedding": "ResNet compute_face_descriptor (includes chip alignment), 1 jitter"}}}
    per_repeat: dict[str, dict[str, list[float]]] = {s: {} for s in SYSTEMS}
    for system in SYSTEMS:
        arr = np.stack(runs[system])  # (R, N, S)
        for k, stage in enumerate(STAGES):
            per_repeat[system][stage] = _median_rows(arr[:, :, k])
        found = np.isfinite(arr[:, :, 4])  # images that reached the embedding
        total = np.where(found, np.nansum(arr, axis=2), np.nan)
        per_repeat[system]["total"] = _median_rows(total)
        section.setdefault("n_faces_found", {})[system] = int(found[0].sum())
        section.setdefault("per_image_total", {})[system] = spread(total.ravel().tolist())
    for stage in (*STAGES, "total"):
        entry: dict[str, Any] = {}
        for system in SYSTEMS:
            vals = per_repeat[system][stage]
            entry[system] = spread(vals)
            entry[system + "_per_repeat"] = [None if not math.isfinite(v) else v for v in vals]
        entry["ratio"] = ratio_spread(per_repeat["facever"][stage], per_repeat["face_recognition"][stage])
        section["stages"][stage] = entry
        if stage == "detection":  # facever's detector also takes all images in one call
            section["stages"]["detection_batched"] = {
                "facever": spread(batched), "facever_per_repeat": batched, "face_recognition": None,
                "face_recognition_per_repeat": None,
                "ratio": ratio_spread(batched, per_repeat["face_recognition"]["detection"])}
    section["peer_import_s"] = peer_meta["import_s"] if peer_meta else None
    return section
