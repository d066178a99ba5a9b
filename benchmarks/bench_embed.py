"""Embedding a list of images with both systems, with an optional on-disk cache (the peer needs
≈ 15 min for P2's 3,708 images and as long for the held-out people).

facever runs in this process, batched: :func:`embed_facever_lfw` is facever's LFW evaluation rule
(:func:`facever.training.evaluation.embed_lfw_images`: face nearest the image centre), :func:`embed_facever_images`
its user pipeline (:class:`facever.embedding.FaceEmbedder`: detection, the padded second try when no
face is found, the verifier's face choice, alignment, the encoder on the test-time views). face_recognition runs
in its own interpreter through ``peer_face_recognition.py embed`` (:func:`embed_peer`).

Every function returns ``embeddings`` ``(N, D)`` with NaN rows where no face was found (or the file
could not be decoded), ``n_faces``, ``errors`` (path → message), ``wall_s`` and ``cached``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench_common import PEER_SCRIPT, log, run_measured

#: Part of every cache key: files written by an older layout are never read.
CACHE_FORMAT = "bench-cache-v2"


def _cache_file(cache: Path | None, system: str, key_parts: Sequence[str], paths: Sequence[str]) -> Path | None:
    if cache is None:
        return None
    h = hashlib.sha256("\0".join([CACHE_FORMAT, *key_parts, *paths]).encode()).hexdigest()[:20]
    return cache / f"{system}-{h}.npz"


def _load_cached(cached: Path | None, label: str, n: int) -> dict[str, Any] | None:
    if cached is None or not cached.is_file():
        return None
    z = np.load(cached, allow_pickle=False)
    log(f"{label}: {n} embeddings from cache {cached}")
    out = {"embeddings": z["embeddings"], "n_faces": z["n_faces"], "errors": json.loads(str(z["errors"])),
           "wall_s": float(z["wall_s"]), "cached": True}
    if "maxrss_mb" in z.files:
        out["maxrss_mb"] = float(z["maxrss_mb"])
    if "n_retried" in z.files:
        out["n_retried"] = int(z["n_retried"])
    return out


def _save_cached(cached: Path | None, result: dict[str, Any]) -> None:
    if cached is None:
        return
    cached.parent.mkdir(parents=True, exist_ok=True)
    extra = {k: np.asarray(result[k]) for k in ("maxrss_mb", "n_retried") if result.get(k) is not None}
    np.savez(cached, embeddings=result["embeddings"], n_faces=result["n_faces"],
             errors=np.asarray(json.dumps(result["errors"])), wall_s=np.asarray(result["wall_s"]), **extra)


def _progress(label: str, total: int, batch_size: int):
    step = max(1, total // 10)

    def progress(done: int, _total: int) -> None:
        if done % step < batch_size or done == total:
            log(f"{label}: {done}/{total} images")

    return progress


def embed_facever_lfw(verifier, image_root: Path, paths: list[str], cache: Path | None,
                      batch_size: int) -> dict[str, Any]:
    """facever embeddings of LFW ``paths`` with :func:`facever.training.evaluation.embed_lfw_images`."""
    from facever.training.evaluation import embed_lfw_images

    cached = _cache_file(cache, "facever", ["facever", verifier.model_version, str(image_root)], paths)
    hit = _load_cached(cached, "facever", len(paths))
    if hit is not None:
        return hit
    log(f"facever: embedding {len(paths)} images (MTCNN in batches of {batch_size})")
    t0 = time.perf_counter()
    res = embed_lfw_images(verifier, image_root, paths, progress=_progress("facever", len(paths), batch_size),
                           batch_size=batch_size)
    out = {"embeddings": res.embeddings, "n_faces": res.n_faces, "errors": res.errors,
           "wall_s": time.perf_counter() - t0, "cached": False}
    _save_cached(cached, out)
    return out


def _central(faces: list, shape: tuple[int, ...]):
    cx, cy = shape[1] / 2.0, shape[0] / 2.0
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


def embed_facever_images(verifier, root: Path, paths: list[str], cache: Path | None, batch_size: int,
                         pick: str = "largest") -> dict[str, Any]:
    """facever's user pipeline on any images, batched (what ``FaceVerifier.embed`` does per image).

    Per batch of ``batch_size`` images: decode (:func:`facever.imaging.load_image`), detect
    (``detector.detect_batch``); an image without a face gets :func:`facever.embedding.detect_with_retry`
    (the padded second try of ``FaceEmbedder.find_faces``); the largest face (``pick="largest"``, the
    verifier's default policy) or the one nearest the centre is aligned to the model's geometry and
    the crops are embedded together (``FaceEmbedder.embed_crops``: test-time views, unit vectors).
    """
    from facever.detection import select_faces
    from facever.embedding import align_faces, detect_with_retry
    from facever.errors import FaceverError
    from facever.imaging import load_image

    embedder = verifier.embedder
    cached = _cache_file(cache, "facever-user", ["facever-user", verifier.model_version, pick, str(root)], paths)
    hit = _load_cached(cached, "facever", len(paths))
    if hit is not None:
        return hit
    log(f"facever: embedding {len(paths)} images (user pipeline, batches of {batch_size}, {pick} face)")
    n = len(paths)
    emb = np.full((n, int(embedder.bundle.metadata.embedding_dim)), np.nan, np.float32)
    n_faces = np.zeros(n, np.int64)
    errors: dict[str, str] = {}
    n_retried = 0
    progress = _progress("facever", n, batch_size)
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        idx, images = [], []
        for i in range(start, min(start + batch_size, n)):
            try:
                images.append(load_image(root / paths[i]))
                idx.append(i)
            except FaceverError as exc:
                errors[paths[i]] = str(exc)
        crops, rows = [], []
        for i, image, faces in zip(idx, images, embedder.detector.detect_batch(images) if images else []):
            if not faces:
                faces = detect_with_retry(embedder.detector, image)
                n_retried += bool(faces)
            n_faces[i] = len(faces)
            if not faces:
                continue
            face = select_faces(faces, "largest")[0] if pick == "largest" else _central(faces, image.shape)
            crops.append(align_faces(image, [face], embedder.input_size, embedder.template_name)[0].crop)
            rows.append(i)
        if crops:
            emb[rows] = embedder.embed_crops(np.stack(crops))
        progress(min(start + batch_size, n), n)
    out = {"embeddings": emb, "n_faces": n_faces, "errors": errors, "wall_s": time.perf_counter() - t0,
           "cached": False, "n_retried": n_retried}
    _save_cached(cached, out)
    return out


def run_peer_embed(peer_python: Path, image_root: Path, paths: list[str], out_npz: Path, pick: str,
                   repeat: int = 1, warmup: int = 0, progress: int = 0) -> dict[str, Any]:
    """Run the peer script's ``embed`` on ``paths``; its arrays, metadata and process figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as fh:
        fh.write("\n".join(paths) + "\n")
        fh.flush()
        cmd = [peer_python, PEER_SCRIPT, "embed", "--root", image_root, "--paths", fh.name, "--out", out_npz,
               "--pick", pick, "--repeat", str(repeat), "--warmup", str(warmup), "--progress", str(progress)]
        proc = run_measured(cmd, capture_stderr=progress == 0)
    if proc["rc"] != 0:
        raise RuntimeError(f"peer script failed (exit {proc['rc']}): {' '.join(map(str, cmd))}\n{proc['stderr_tail']}")
    z = np.load(out_npz, allow_pickle=False)
    return {"encodings": z["encodings"], "n_faces": z["n_faces"], "times": z["times"],
            "meta": json.loads(str(z["meta"])), "process": proc}


def embed_peer(peer_python: Path, image_root: Path, paths: list[str], cache: Path | None, pick: str) -> dict[str, Any]:
    """face_recognition encodings of ``paths`` (NaN rows: no face), via the peer's interpreter."""
    cached = _cache_file(cache, "face_recognition", ["face_recognition", str(peer_python), pick, str(image_root)], paths)
    hit = _load_cached(cached, "face_recognition", len(paths))
    if hit is not None:
        return hit
    log(f"face_recognition: encoding {len(paths)} images (HOG + 5-point landmarks + ResNet, one at a time)")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_peer_embed(peer_python, image_root, paths, Path(tmp) / "peer.npz", pick,
                             progress=max(1, len(paths) // 10))
        wall = time.perf_counter() - t0
    out = {"embeddings": res["encodings"], "n_faces": res["n_faces"], "errors": res["meta"]["errors"], "wall_s": wall,
           "maxrss_mb": res["process"]["maxrss_mb"], "cached": False}
    _save_cached(cached, out)
    return out
