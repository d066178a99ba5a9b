"""Held-out people of the second domain: the test people of pins and bollywood
(``facever/training/splits/pins_test.txt``, ``facever/training/splits/bollywood_test.txt``; images under
``../shared/data/pins`` and ``../shared/data/bollywood``, one folder per person), never used to train
or calibrate facever's model, none of them in LFW.

Both systems embed the same images with their own user pipeline: facever through
:class:`facever.embedding.FaceEmbedder` (batched detection, the padded second try, alignment, the
encoder on the test-time views; :func:`bench_embed.embed_facever_images`), face_recognition through
``face_encodings`` (HOG, 5-point landmarks, 1 jitter). Each keeps the largest face (both libraries'
default; ``--heldout-pick central`` for the face nearest the centre). Scored on every genuine and
impostor pair among those images (an image where a system finds no face: distance 2.0 for that
system): ROC AUC, EER, TAR at FAR 1e-2/1e-3, FAR/FRR at each system's default τ, and the pair
accuracy of a balanced set (every genuine pair and as many impostor pairs drawn with a fixed seed,
the same pairs for both systems) with τ by 10-fold cross-validation, as
``benchmarks/eval_embeddings.py`` scores it. The same figures per domain follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench_accuracy import score_all_pairs
from bench_common import PEER_TOLERANCE, REPO, log, portable
from bench_embed import embed_facever_images, embed_peer

SPLITS = REPO / "facever" / "training" / "splits"
DOMAINS = ("pins", "bollywood")
from facever.training.landmarks import EXTENSIONS  # noqa: E402  (the images the model's recipe reads)


def heldout_images(data_root: Path, per_person: int | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Paths relative to ``data_root`` (``pins/NAME/FILE``), person labels (``pins/NAME``) and domains
    of the test people's images; at most ``per_person`` images each (the first, sorted) when given."""
    paths: list[str] = []
    for domain in DOMAINS:
        split = SPLITS / f"{domain}_test.txt"
        people = [line.strip() for line in split.read_text(encoding="utf-8").splitlines() if line.strip()]
        for person in people:
            folder = data_root / domain / person
            if not folder.is_dir():
                raise FileNotFoundError(f"held-out person {person!r} of {split.name}: no folder {folder}")
            files = sorted(f.name for f in folder.iterdir() if f.suffix.lower() in EXTENSIONS)
            paths += [f"{domain}/{person}/{f}" for f in files[:per_person]]
    labels = np.asarray(["/".join(p.split("/")[:2]) for p in paths])
    domains = np.asarray([p.split("/")[0] for p in paths])
    return paths, labels, domains


def balanced_accuracy(genuine: np.ndarray, impostor: np.ndarray, seed: int) -> dict[str, Any]:
    """10-fold cross-validated accuracy on every genuine pair plus as many impostor pairs drawn with
    ``seed`` (the draw depends only on the pair counts, so both systems get the same pairs)."""
    from facever.training.evaluation import kfold_accuracy

    n = min(len(genuine), len(impostor))
    pick = np.random.default_rng(seed).choice(len(impostor), size=n, replace=False)
    d = np.r_[genuine, impostor[pick]].astype(np.float64)
    s = np.r_[np.ones(len(genuine), bool), np.zeros(n, bool)]
    kf = kfold_accuracy(d, s, folds=10, seed=seed)
    return {"mean": kf["mean"], "stderr": kf["stderr"], "n_genuine": int(len(genuine)), "n_impostor": int(n)}


def _score(system: str, emb: np.ndarray, labels: np.ndarray, tau: float | None, seed: int,
           roc: bool) -> dict[str, Any]:
    _, codes = np.unique(labels, return_inverse=True)
    r = score_all_pairs(system, emb, codes, tau, seed)
    pairs = r.pop("_pairs")
    r["pair_accuracy"] = balanced_accuracy(pairs["genuine"], pairs["impostor"], seed)
    r["n_images"] = int(len(labels))
    r["n_people"] = int(codes.max() + 1) if len(codes) else 0
    if not roc:
        r.pop("roc", None)
    return r


def heldout_section(args, verifier, default_tau: float | None, cache: Path | None) -> dict[str, Any]:
    """Embed the held-out people's images with both systems and score them (see the module docstring)."""
    per_person = args.heldout_per_person
    if per_person is None and args.limit is not None:
        per_person = 2
    paths, labels, domains = heldout_images(args.data, per_person)
    log(f"held-out: {len(paths)} images of {len(set(labels))} pins/bollywood test people "
        f"({per_person or 'all'} per person), {args.heldout_pick} face")
    emb = {"facever": embed_facever_images(verifier, args.data, paths, cache, args.batch_size, args.heldout_pick),
           "face_recognition": embed_peer(args.peer_python, args.data, paths, cache, args.heldout_pick)}
    taus = {"facever": default_tau, "face_recognition": PEER_TOLERANCE}
    section: dict[str, Any] = {
        "name": "pins + bollywood held-out test people, all genuine and impostor pairs",
        "people_files": [str((SPLITS / f"{d}_test.txt").relative_to(REPO)) for d in DOMAINS],
        "data_root": portable(args.data), "per_person": per_person, "pick": args.heldout_pick,
        "n_images": len(paths), "n_people": int(len(set(labels))),
        "domains": {d: {"n_images": int((domains == d).sum()), "n_people": int(len(set(labels[domains == d])))}
                    for d in DOMAINS},
        "images": {}, "all": {}, "by_domain": {d: {} for d in DOMAINS},
    }
    calibration = ((getattr(verifier.bundle.metadata, "training", None) or {}).get("calibration_people") or {})
    section["in_facever_calibration"] = sum(person in set(calibration.get(d) or ()) for d, person in
                                            {tuple(label.split("/")) for label in labels})
    for name, e in emb.items():
        found = np.isfinite(e["embeddings"]).all(axis=1)
        section["images"][name] = {
            "n": len(paths), "n_found": int(found.sum()), "n_errors": len(e["errors"]),
            "n_no_face": int((~found).sum() - len(e["errors"])), "n_found_on_retry": e.get("n_retried"),
            "embed_wall_s": e["wall_s"], "images_per_s": len(paths) / e["wall_s"] if e["wall_s"] > 0 else None,
            "cached": e["cached"], "no_face": [p for p, ok in zip(paths, found) if not ok][:200],
        }
        try:
            section["all"][name] = _score(name, e["embeddings"], labels, taus[name], args.seed, roc=True)
            for d in DOMAINS:
                rows = domains == d
                section["by_domain"][d][name] = _score(name, e["embeddings"][rows], labels[rows], taus[name],
                                                       args.seed, roc=False)
        except ValueError as exc:  # a tiny subset without genuine pairs
            section["all"][name] = {"error": str(exc)}
            continue
        r = section["all"][name]
        log(f"held-out {name}: pair accuracy {r['pair_accuracy']['mean']:.4f}, AUC {r['roc_auc']:.4f}, "
            f"TAR@FAR=1e-3 {(r['tar_at_far'].get('0.001') or {}).get('tar')}, {int((~found).sum())} images failed")
    return section
