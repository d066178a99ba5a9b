"""Embed a landmarked dataset once, then score the cached embeddings (LFW P1–P4, held-out people).

An embedding cache is an ``.npz`` file with ``names`` (paths relative to the image root, as in the
landmark cache of :mod:`facever.training.landmarks`), ``embeddings`` ``(N, D)`` float32 unit rows (NaN
where no face was found) and ``found`` ``(N,)`` bool. Images without a face keep their NaN row and
count as failed pairs (conventions of :mod:`facever.training.evaluation`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: ``progress(done, total)``: images aligned so far, images to align.
AlignProgress = Callable[[int, int], None]


def dlib_import_embedder(size: int = 150, template: str = "dlib", flip: bool = True) -> Any:
    """A :class:`facever.embedding.FaceEmbedder` over the imported dlib ResNet in Keras (wrapped as a
    bundle encoder, version ``"dlib-import"``), for ``size`` px crops on ``template``."""
    import tensorflow as tf

    from facever.bundle import BundleMetadata, ModelBundle
    from facever.embedding import FaceEmbedder
    from facever.training.pretrained import import_dlib_resnet

    model = import_dlib_resnet(normalize=True)[0]
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    meta = BundleMetadata(architecture="dlib_resnet", input_size=size, alignment=template, flip_tta=flip)
    return FaceEmbedder(ModelBundle(lambda x: np.asarray(forward(x)), meta, version="dlib-import"))


def bundle_embedder(model: str | os.PathLike[str], flip: bool = True, threads: int = 2) -> Any:
    """A :class:`facever.embedding.FaceEmbedder` over a bundle's ONNX graph, exactly as at inference
    (``flip=False`` turns its mirrored views off). Its detector is never loaded: landmarks are cached."""
    from facever.bundle import load_bundle
    from facever.embedding import FaceEmbedder

    bundle = load_bundle(model, threads=threads)
    bundle.metadata.flip_tta = bundle.metadata.flip_tta and flip
    return FaceEmbedder(bundle)


def embed_cached(root: str | os.PathLike[str], landmarks: dict[str, np.ndarray], embedder: Any,
                 progress: AlignProgress | None = None, chunk: int = 512) -> dict[str, np.ndarray]:
    """Align every image with a face (the embedder's template and input size) and embed them all.

    Args:
        root: the image root the landmark cache's names are relative to.
        landmarks: a landmark cache (:func:`facever.training.landmarks.load_landmarks`).
        embedder: a :class:`facever.embedding.FaceEmbedder`.
        progress: called after each ``chunk`` of aligned images.
    Returns:
        The embedding cache's arrays (module docstring).
    """
    from facever.alignment import align_face
    from facever.imaging import load_image

    names, lms, found = landmarks["names"].tolist(), landmarks["landmarks"], landmarks["found"]
    size, template = embedder.input_size, embedder.template_name
    idx = np.flatnonzero(found)
    crops = np.empty((len(idx), size, size, 3), np.uint8)
    for n, i in enumerate(idx):
        crops[n] = align_face(load_image(Path(root) / names[i]), lms[i], size, template)
        if progress is not None and ((n + 1) % chunk == 0 or n + 1 == len(idx)):
            progress(n + 1, len(idx))
    emb = np.full((len(names), int(embedder.bundle.metadata.embedding_dim)), np.nan, np.float32)
    if len(idx):
        emb[idx] = embedder.embed_crops(crops)  # one call: the same batches as the build always used
    return {"names": np.array(names), "embeddings": emb, "found": np.asarray(found)}


def save_embeddings(path: str | os.PathLike[str], cache: dict[str, np.ndarray]) -> None:
    """Write an embedding cache (``.npz``)."""
    np.savez(path, names=cache["names"], embeddings=cache["embeddings"], found=cache["found"])


def lookup(npz: str | os.PathLike[str]) -> tuple[Callable[[Sequence[str]], np.ndarray], list[str], np.ndarray]:
    """``(embed, names, embeddings)`` of an embedding cache; ``embed(paths)`` returns their rows."""
    data = np.load(npz)
    index = {n: i for i, n in enumerate(data["names"].tolist())}
    emb = data["embeddings"]
    return lambda paths: emb[[index[p] for p in paths]], data["names"].tolist(), emb


def heldout_pairs(names: Sequence[str], emb: np.ndarray, people: set[str]) -> dict[str, Any]:
    """Every genuine and impostor pair among the images of ``people`` (``names`` are ``PERSON/FILE``;
    :func:`facever.training.evaluation.evaluate_identity_pairs`)."""
    from facever.training.protocols import evaluate_identity_pairs

    idx = [i for i, n in enumerate(names) if n.split("/")[0] in people]
    labels = np.array([names[i].split("/")[0] for i in idx])
    return evaluate_identity_pairs(emb[idx], labels)


def evaluate_cached(lfw_root: str | os.PathLike[str] | None = None, lfw_npz: str | os.PathLike[str] | None = None,
                    other: Sequence[str | os.PathLike[str]] = (), holdout: set[str] | None = None,
                    protocols: Sequence[str] = ("p1", "p2", "p3", "p4")) -> dict[str, Any]:
    """Score embedding caches.

    Args:
        lfw_root, lfw_npz: the LFW root (protocol files) and its images' embedding cache: LFW
            ``protocols`` (:func:`facever.training.evaluation.evaluate_all`) under ``"lfw"``.
        other: embedding caches of other folder-per-person datasets, pooled.
        holdout: the people of ``other`` to score (default: all of them): every genuine and impostor
            pair among their images (:func:`heldout_pairs`) under ``"heldout"``.
    Returns:
        JSON-ready ``{"lfw": ..., "heldout": ...}`` (each key only when its inputs were given).
    """
    from facever.training.protocols import evaluate_all

    out: dict[str, Any] = {}
    if lfw_npz:
        embed, _, _ = lookup(lfw_npz)
        out["lfw"] = evaluate_all(lfw_root, embed, protocols=list(protocols))
    if other:
        names: list[str] = []
        embs = []
        for path in other:
            _, n, e = lookup(path)
            names += n
            embs.append(e)
        people = holdout or {n.split("/")[0] for n in names}
        out["heldout"] = heldout_pairs(names, np.concatenate(embs), people)
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    """One human-readable line per protocol of an :func:`evaluate_cached` result."""
    lines = []
    r = result.get("lfw", {})
    if "p1" in r:
        lines.append(f"P1 acc {r['p1']['accuracy']:.4f} ± {r['p1']['stderr']:.4f}  AUC {r['p1']['roc_auc']:.4f}  "
                     f"EER {r['p1']['eer']:.4f}")
    if "p2" in r:
        m = r["p2"].get("metrics", r["p2"])
        lines.append(f"P2 TAR@FAR {m.get('tar_at_far')}  EER {m.get('eer')}")
    if "p3" in r:
        lines.append("P3 " + ", ".join(f"enrol {k}: rank-1 {v['nearest']['rank1']:.4f}"
                                       for k, v in r["p3"].get("enroll", {}).items()))
    if "p4" in r:
        lines.append(f"P4 acc {r['p4']['accuracy']:.4f} ± {r['p4']['stderr']:.4f}")
    if "heldout" in result:
        h = result["heldout"]
        lines.append(f"held-out {h['n_people']} people / {h['n_images']} images: AUC {h['roc_auc']:.5f} "
                     f"EER {h['eer']:.4f} TAR@FAR {h['tar_at_far']} pair-acc {h['pair_accuracy']:.4f} "
                     f"failed {h['failed_images']}")
    return lines


def figures_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The compact figures a bundle's ``metadata.figures["evaluation"]`` keeps of an
    :func:`evaluate_cached` result: P1–P4 headline figures and the held-out people's."""
    out: dict[str, Any] = {}
    lfw_result = result.get("lfw", {})
    if "p1" in lfw_result:
        p1 = lfw_result["p1"]
        out["p1"] = {"accuracy": p1["accuracy"], "stderr": p1["stderr"], "roc_auc": p1["roc_auc"], "eer": p1["eer"]}
    if "p2" in lfw_result:
        m = lfw_result["p2"].get("metrics", lfw_result["p2"])
        out["p2"] = {"eer": m.get("eer"), "tar_at_far": {k: v["tar"] for k, v in m["tar_at_far"].items()}}
    if "p3" in lfw_result:
        out["p3"] = {k: {"rank1": v["nearest"]["rank1"],
                         "dir_at_fpir": {f: x["dir"] for f, x in v["nearest"]["dir_at_fpir"].items()}}
                     for k, v in lfw_result["p3"]["enroll"].items()}
    if "p4" in lfw_result:
        p4 = lfw_result["p4"]
        out["p4"] = {"accuracy": p4["accuracy"], "stderr": p4["stderr"], "contaminated": "see MODEL_CARD.md"}
    if "heldout" in result:
        h = result["heldout"]
        out["pins_bollywood_test"] = {k: h[k] for k in ("n_people", "n_images", "failed_images", "roc_auc", "eer",
                                                        "pair_accuracy")}
        out["pins_bollywood_test"]["tar_at_far"] = {k: v["tar"] for k, v in h["tar_at_far"].items()}
    return out


def record_figures(bundle: str | os.PathLike[str], result: dict[str, Any]) -> dict[str, Any]:
    """Store :func:`figures_summary` of ``result`` as ``figures["evaluation"]`` in the bundle's
    ``metadata.json`` (only that file changes; the model version does not). Returns the summary."""
    from facever.bundle import read_metadata, write_metadata

    meta = read_metadata(bundle)
    meta.figures["evaluation"] = figures_summary(result)
    write_metadata(bundle, meta)
    return meta.figures["evaluation"]
