"""The default model's recipe, step by step: from a data root to an evaluated bundle (``facever model build``).

Steps (each skipped when its output exists, so a build resumes after an interruption; outputs are
written atomically, so a step cut short leaves nothing that looks done):

1. :func:`detect`: MTCNN landmarks of every LFW, pins and bollywood image → ``WORK/lm/{dataset}.npz``
   (:mod:`facever.training.landmarks`);
2. :func:`prepare`: trunk features of the training and validation people (each crop seen as its
   test-time views: zoomed in 5 % and 10 %, each mirrored) → ``WORK/ft/{part}_features.npy``,
   ``{part}_meta.npz`` and ``split.json`` (people split by identity: :mod:`facever.training.default_data`);
3. :func:`finetune`: the final projection fine-tuned with semi-hard triplet loss + distillation
   towards the import, half the batches from pins/bollywood people; the epoch chosen on the
   pins/bollywood val people → ``WORK/ft/default/model.keras`` and ``history.json``;
4. :func:`assemble`: τ (FAR 1e-2), the identification threshold (FPIR 1e-2) and the open-set
   impostor distribution calibrated on held-out people; exported with float16 weights → ``OUT``
   (skipped when ``WORK/assembled.json`` records ``OUT`` at its current version);
5. :func:`embed` every image with the bundle → ``WORK/emb/{dataset}.npz``, :func:`evaluate` on LFW
   P1–P4 and the pins/bollywood test people → ``WORK/eval.json``, and :func:`record` the figures in
   ``OUT/metadata.json`` (the model version does not change).

The library never prints: each step reports through ``report(event)`` (:class:`BuildEvent`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from facever.training.atomic import atomic_file
from facever.training.default_data import (DATASETS, check_data_root, heldout_people, load_crops,  # noqa: F401
                                           split_people)

#: Test-time views of the default model: the aligned crop zoomed in 5 % and 10 %, each mirrored.
ZOOMS = (1.05, 1.10)
#: The shipped fine-tuning settings (:class:`facever.training.finetune.FinetuneConfig` overrides).
FINETUNE = {"freeze_until": "pool", "lr": 1e-3, "focus_fraction": 0.5, "loss": "semi_hard", "margin": 0.1,
            "distill": 1.0, "epochs": 6}
#: Calibration targets: τ for a false accept rate, the identification threshold for an FPIR.
FAR, FPIR = 1e-2, 1e-2
#: The fine-tuning run's name (its folder under ``WORK/ft``).
RUN_NAME = "default"


@dataclass(frozen=True)
class BuildEvent:
    """What a step reports: ``kind`` is ``"start"``, ``"progress"`` (``done`` of ``total``),
    ``"done"`` or ``"skip"`` (its output exists); ``detail`` is a short note (e.g. an epoch's figures)."""

    step: str
    kind: str
    done: int = 0
    total: int = 0
    detail: str = ""


Reporter = Callable[[BuildEvent], None]


def _quiet(event: BuildEvent) -> None:
    """The default reporter: reports nothing."""


@dataclass(frozen=True)
class WorkDir:
    """Where each step of a build writes under ``root`` (the ``--work`` folder)."""

    root: Path

    @property
    def landmarks(self) -> Path:
        return self.root / "lm"

    @property
    def features(self) -> Path:
        return self.root / "ft"

    @property
    def run(self) -> Path:
        return self.root / "ft" / RUN_NAME

    @property
    def embeddings(self) -> Path:
        return self.root / "emb"

    @property
    def eval_json(self) -> Path:
        return self.root / "eval.json"

    @property
    def assembled(self) -> Path:
        return self.root / "assembled.json"


def _fresh_keras() -> None:
    """Start a step's Keras state afresh, as in a new process (the steps were separate scripts)."""
    import keras

    keras.utils.clear_session()


# ---- 1. landmarks --------------------------------------------------------------------------------


def detect(data_root: str | os.PathLike[str], work: str | os.PathLike[str], report: Reporter = _quiet,
           datasets: Sequence[str] = tuple(DATASETS), detector: Any = None) -> None:
    """Step 1: cache the landmarks of every image of ``datasets`` in ``WORK/lm/{dataset}.npz``
    (``detector``: see :func:`facever.training.landmarks.detect_landmarks`; default MTCNN)."""
    from facever.training.landmarks import detect_landmarks, save_landmarks

    wd = WorkDir(Path(work))
    for ds in datasets:
        step, target = f"landmarks {ds}", wd.landmarks / f"{ds}.npz"
        if target.is_file():
            report(BuildEvent(step, "skip", detail=str(target)))
            continue
        report(BuildEvent(step, "start"))
        cache = detect_landmarks(Path(data_root) / DATASETS[ds], detector,
                                 progress=lambda done, total, found: report(
                                     BuildEvent(step, "progress", done, total, f"{found} faces")))
        with atomic_file(target, ".npz") as tmp:
            save_landmarks(tmp, cache)
        found = cache["found"]
        report(BuildEvent(step, "done", int(found.sum()), len(found),
                          f"faces in {int(found.sum())}/{len(found)} images ({int(cache['padded'].sum())} after padding)"))


# ---- 2. trunk features ---------------------------------------------------------------------------


def prepare(data_root: str | os.PathLike[str], landmark_dir: str | os.PathLike[str], features_dir: str | os.PathLike[str],
            zooms: Sequence[float] = ZOOMS, report: Reporter = _quiet) -> None:
    """Step 2: trunk features of the train, val and val_lfw people (the LFW calibration people, for
    ``finetune(val_parts=("val", "val_lfw"))``) in ``features_dir``; ``split.json`` last."""
    from facever.training.finetune import FinetuneConfig, precompute, split_model
    from facever.training.pretrained import import_dlib_resnet

    data_root, landmark_dir, features_dir = Path(data_root), Path(landmark_dir), Path(features_dir)
    if (features_dir / "split.json").is_file():
        report(BuildEvent("features", "skip", detail=str(features_dir)))
        return
    features_dir.mkdir(parents=True, exist_ok=True)
    parts = split_people(data_root)
    parts["val_lfw"] = {"lfw": parts["calib"]["lfw"]}
    _fresh_keras()
    model, _, _ = import_dlib_resnet()
    trunk, _ = split_model(model, FinetuneConfig().cut)
    for part in ("train", "val", "val_lfw"):
        step = f"features {part}"
        feats_path, meta_path = features_dir / f"{part}_features.npy", features_dir / f"{part}_meta.npz"
        if feats_path.is_file() and meta_path.is_file():
            report(BuildEvent(step, "skip", detail=str(feats_path)))
            continue
        report(BuildEvent(step, "start"))
        t0 = time.time()
        crops, labels, keys = load_crops(data_root, landmark_dir, parts[part])
        feats = precompute(trunk, crops, zooms=tuple(zooms),
                           progress=lambda done, total: report(BuildEvent(step, "progress", done, total)))
        with atomic_file(meta_path, ".npz") as tmp:
            np.savez(tmp, labels=labels, keys=np.array(keys))
        with atomic_file(feats_path, ".npy") as tmp:
            np.save(tmp, feats)
        report(BuildEvent(step, "done", len(keys), len(keys), f"{len(keys)} images, {labels.max() + 1} people, "
                          f"features {feats.shape} in {time.time() - t0:.0f}s"))
    with atomic_file(features_dir / "split.json") as tmp:
        tmp.write_text(json.dumps({k: {d: sorted(v) for d, v in p.items()} for k, p in parts.items()}))


# ---- 3. fine-tuning ------------------------------------------------------------------------------


def finetune(features_dir: str | os.PathLike[str], name: str = RUN_NAME, val_parts: Sequence[str] = ("val",),
             report: Reporter = _quiet, **overrides: Any) -> dict[str, Any] | None:
    """Step 3: fine-tune the import on ``features_dir``'s features; write ``NAME/model.keras`` (the
    whole network at the best validation epoch) and ``NAME/history.json``.

    Args:
        val_parts: the validation people the epoch is chosen on (the mean of their scores): ``val``
            = the pins/bollywood val people, ``val_lfw`` = the LFW calibration people.
        overrides: :class:`~facever.training.finetune.FinetuneConfig` fields (None: its default).
    Returns:
        ``{"best_epoch", "best_val"}``, or None when ``NAME/model.keras`` existed (skipped).
    """
    from facever.training.finetune import FinetuneConfig, Finetuner, split_model
    from facever.training.pretrained import import_dlib_resnet

    features_dir = Path(features_dir)
    out = features_dir / name
    if (out / "model.keras").is_file():
        report(BuildEvent("fine-tuning", "skip", detail=str(out / "model.keras")))
        return None
    cfg = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    feats = np.load(features_dir / "train_features.npy")
    meta = np.load(features_dir / "train_meta.npz")
    focus = np.array([not k.startswith("lfw/") for k in meta["keys"].tolist()])
    val = [(np.load(features_dir / f"{p}_features.npy"), np.load(features_dir / f"{p}_meta.npz")["labels"])
           for p in val_parts]
    _fresh_keras()
    model, _, _ = import_dlib_resnet()
    _, head = split_model(model, cfg.cut)
    tuner = Finetuner(head, feats, meta["labels"], cfg, val=val, focus=focus)
    out.mkdir(parents=True, exist_ok=True)
    history = out / "history.json"
    report(BuildEvent("fine-tuning", "start", 0, cfg.epochs))

    def on_epoch(r: Any) -> None:
        figures = {"epoch": r.epoch, "s": round(r.seconds), "loss": round(r.loss, 4), "triplet": round(r.triplet, 4),
                   "distill": round(r.distill, 5), "active": round(r.active, 3),
                   **{k: round(v, 5) for k, v in r.val.items()}}
        history.write_text(json.dumps({"config": cfg.to_json(), "history": [h.__dict__ for h in tuner.history]}, indent=1))
        report(BuildEvent("fine-tuning", "progress", r.epoch, cfg.epochs, json.dumps(figures)))

    tuner.fit(on_epoch=on_epoch)
    with atomic_file(out / "model.keras", ".keras") as tmp:
        model.save(tmp)
    history.write_text(json.dumps({"config": cfg.to_json(), "best_epoch": tuner.best["epoch"],
                                   "best_val": tuner.best["val"], "history": [h.__dict__ for h in tuner.history]},
                                  indent=1))
    best = {"best_epoch": tuner.best["epoch"], "best_val": tuner.best["val"]}
    report(BuildEvent("fine-tuning", "done", cfg.epochs, cfg.epochs, f"best epoch {best['best_epoch']} {best['best_val']}"))
    return best


# ---- 4. calibration and export -------------------------------------------------------------------


def _metadata(parts: dict[str, dict[str, set[str]]], zooms: Sequence[float], finetune_record: dict | None,
              provenance: dict[str, Any]) -> Any:
    """The default model's :class:`~facever.bundle.BundleMetadata` (before calibration)."""
    import datetime as _dt

    from facever.bundle import BundleMetadata

    return BundleMetadata(
        architecture="dlib_resnet", input_size=150, embedding_dim=128, alignment="dlib", flip_tta=True,
        view_zooms=[float(z) for z in zooms],
        preprocessing=("MTCNN 5 points aligned by least-squares similarity to the 'dlib' template "
                       "(dlib get_face_chip geometry, 150x150, padding 0.25); RGB 0..255; the graph subtracts "
                       "dlib's RGB means and divides by 256; output L2-normalised; test-time views: the crop "
                       f"zoomed by {', '.join(f'{z:g}' for z in zooms)} about its centre, each mirrored; "
                       "embedding = renormalised mean over the views"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        source={**provenance, "author": "Davis E. King (dlib)",
                "training_data": ("about 3 million faces: FaceScrub, the VGG face dataset and web images "
                                  "(D. King, dlib blog, 12 Feb 2017; see MODEL_CARD.md)")},
        training={"method": "fine-tuned with triplet loss + online mining" if finetune_record else "imported, not fine-tuned",
                  "finetune": finetune_record,
                  "data": {"train": {d: len(v) for d, v in parts["train"].items()},
                           "calibration": {d: len(v) for d, v in parts["calib"].items()},
                           "never_trained_on": "LFW peopleDevTest; facever/training/splits/*_val.txt and *_test.txt"},
                  "calibration_people": {d: sorted(v) for d, v in parts["calib"].items()}},
    )


def assemble(data_root: str | os.PathLike[str], landmark_dir: str | os.PathLike[str], out: str | os.PathLike[str],
             weights: str | os.PathLike[str] | None = None, history: str | os.PathLike[str] | None = None,
             zooms: Sequence[float] = ZOOMS, far: float = FAR, fpir: float = FPIR,
             report: Reporter = _quiet) -> dict[str, Any]:
    """Step 4: the bundle: dlib's import (with ``weights``: the fine-tuned network, ``history``
    recorded in the metadata), calibrated on the held-out calibration people, exported with float16
    weights to ``out`` (atomically). Returns ``{"out", "version", "calibration"}``."""
    import keras

    from facever.open_set import impostor_distribution
    from facever.training.bundle import TrainableBundle
    from facever.training.calibration import calibrate_bundle
    from facever.training.dlib_format import provenance
    from facever.training.finetune import embed_features, precompute, split_model
    from facever.training.pretrained import import_dlib_resnet

    report(BuildEvent("calibration + export", "start"))
    _fresh_keras()
    model, net, dat_path = import_dlib_resnet()
    finetune_record = None
    if weights:
        tuned = keras.saving.load_model(weights, compile=False, safe_mode=True)
        model.set_weights(tuned.get_weights())
        finetune_record = json.loads(Path(history).read_text()) if history else {"weights": str(weights)}
    parts = split_people(data_root)
    crops, labels, keys = load_crops(data_root, landmark_dir, parts["calib"])
    trunk, head = split_model(model, "s2b2_out")
    emb = embed_features(head, precompute(trunk, crops, zooms=tuple(zooms)))
    meta = _metadata(parts, zooms, finetune_record, provenance(net, dat_path))
    bundle = TrainableBundle(model, meta)
    description = (f"held-out people: {len(parts['calib']['lfw'])} LFW DevTrain people kept out of training, "
                   f"{len(parts['calib']['pins'])} pins and {len(parts['calib']['bollywood'])} bollywood validation people "
                   f"({len(keys)} images)")
    figures = calibrate_bundle(bundle, emb, labels, description, target_far=far, target_fpir=fpir)
    meta.open_set = impostor_distribution(emb, labels, description=description, default_fpir=fpir)
    version = bundle.save(out, half=True)  # float16 weights: half the size, same accuracy
    report(BuildEvent("calibration + export", "done", detail=f"{out} (model version {version})"))
    return {"out": str(out), "version": version, "calibration": figures}


def bundle_version(bundle: str | os.PathLike[str]) -> str | None:
    """The model version of the bundle at ``bundle`` (None when there is none)."""
    from facever.bundle import ENCODER_FILE, model_version, read_metadata

    graph = Path(bundle) / ENCODER_FILE
    if not graph.is_file():
        return None
    return model_version(graph, read_metadata(bundle))


# ---- 5. embedding, evaluation, figures -----------------------------------------------------------


def embed(data_root: str | os.PathLike[str], work: str | os.PathLike[str], bundle: str | os.PathLike[str],
          version: str, report: Reporter = _quiet, datasets: Sequence[str] = tuple(DATASETS)) -> None:
    """Embed every image with a face of ``datasets`` with the bundle (as at inference) →
    ``WORK/emb/{dataset}.npz``; a file made by this model ``version`` is kept."""
    from facever.training.cached_evaluation import bundle_embedder, embed_cached, save_embeddings
    from facever.training.landmarks import load_landmarks

    wd = WorkDir(Path(work))
    embedder = None
    for ds in datasets:
        step, target = f"embeddings {ds}", wd.embeddings / f"{ds}.npz"
        if target.is_file() and str(np.load(target).get("model_version", "")) == version:
            report(BuildEvent(step, "skip", detail=str(target)))
            continue
        embedder = embedder or bundle_embedder(bundle)
        report(BuildEvent(step, "start"))
        cache = embed_cached(Path(data_root) / DATASETS[ds], load_landmarks(wd.landmarks / f"{ds}.npz"), embedder,
                             progress=lambda done, total: report(BuildEvent(step, "progress", done, total)))
        with atomic_file(target, ".npz") as tmp:
            np.savez(tmp, names=cache["names"], embeddings=cache["embeddings"], found=cache["found"],
                     model_version=np.array(version))
        report(BuildEvent(step, "done", int(cache["found"].sum()), len(cache["found"])))


def evaluate(data_root: str | os.PathLike[str], work: str | os.PathLike[str], version: str,
             report: Reporter = _quiet) -> dict[str, Any]:
    """LFW P1–P4 and every pair among the pins/bollywood test people's images, from ``WORK/emb`` →
    ``WORK/eval.json`` (kept when it records this model ``version``). Returns the result."""
    from facever.training.cached_evaluation import evaluate_cached, summary_lines

    wd = WorkDir(Path(work))
    if wd.eval_json.is_file():
        result = json.loads(wd.eval_json.read_text())
        if result.get("model_version") == version:
            report(BuildEvent("evaluation", "skip", detail=str(wd.eval_json)))
            return result
    report(BuildEvent("evaluation", "start"))
    result = evaluate_cached(Path(data_root) / "lfw", wd.embeddings / "lfw.npz",
                             [wd.embeddings / "pins.npz", wd.embeddings / "bollywood.npz"], set(heldout_people()))
    result["model_version"] = version
    with atomic_file(wd.eval_json) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    report(BuildEvent("evaluation", "done", detail="; ".join(summary_lines(result))))
    return result


def record(bundle: str | os.PathLike[str], result: dict[str, Any], report: Reporter = _quiet) -> dict[str, Any]:
    """Store the evaluation's figures in ``bundle``'s metadata (the version does not change)."""
    from facever.training.cached_evaluation import record_figures

    figures = record_figures(bundle, result)
    report(BuildEvent("figures", "done", detail=f"{Path(bundle) / 'metadata.json'}"))
    return figures


# ---- the whole recipe ----------------------------------------------------------------------------


def _assembled(wd: WorkDir, out: Path) -> str | None:
    """The version of ``out`` when step 4 of this work folder wrote it and it is unchanged since."""
    if not wd.assembled.is_file():
        return None
    record_ = json.loads(wd.assembled.read_text())
    version = bundle_version(out)
    ok = record_.get("out") == str(out.resolve()) and version is not None and record_.get("version") == version
    return version if ok else None


def build(data_root: str | os.PathLike[str], work: str | os.PathLike[str], out: str | os.PathLike[str],
          report: Reporter = _quiet) -> dict[str, Any]:
    """Run the whole recipe (module docstring): ``data_root`` → the evaluated bundle at ``out``.

    Returns:
        ``{"out", "work", "version", "calibration", "evaluation", "seconds"}`` (``calibration`` is None
        when step 4 was skipped; ``evaluation``: the figures recorded in the metadata).
    Raises:
        DataRootError: ``data_root`` lacks a dataset or an LFW protocol file.
    """
    data_root = check_data_root(data_root)
    wd, out = WorkDir(Path(work)), Path(out)
    t0 = time.time()
    detect(data_root, wd.root, report)
    prepare(data_root, wd.landmarks, wd.features, ZOOMS, report)
    finetune(wd.features, RUN_NAME, ("val",), report, **FINETUNE)
    version, calibration = _assembled(wd, out), None
    if version is None:
        built = assemble(data_root, wd.landmarks, out, wd.run / "model.keras", wd.run / "history.json", ZOOMS,
                         report=report)
        version, calibration = built["version"], built["calibration"]
        with atomic_file(wd.assembled) as tmp:
            tmp.write_text(json.dumps({"out": str(out.resolve()), "version": version}))
    else:
        report(BuildEvent("calibration + export", "skip", detail=f"{out} (model version {version})"))
    embed(data_root, wd.root, out, version, report)
    figures = record(out, evaluate(data_root, wd.root, version, report), report)
    return {"out": str(out), "work": str(wd.root), "version": version, "calibration": calibration,
            "evaluation": figures, "seconds": round(time.time() - t0, 1)}
