"""int8 variants of exported graphs (training side): static QDQ quantisation with onnxruntime.

The encoder runs on onnxruntime's fast u8s8 kernels (uint8 activations × int8 weights, per-channel
weight scales; AVX-512 VNNI / AVX2 dot products): :func:`quantize_encoder` quantises a float
``encoder.onnx`` statically in the QDQ format, after ``quant_pre_process`` (ORT graph optimisation
and shape inference; the symbolic shape pass is skipped: the graph has a dynamic batch only).
Activation ranges come from a :class:`ViewReader`: aligned crops of people the model was trained on,
expanded into exactly the test-time views the float encoder sees at inference
(:func:`facever.alignment.crop_views`, the bundle's ``view_zooms``, each mirrored).

Crops are gathered with the inference pipeline itself: :func:`collect_crops` runs
:func:`facever.training.evaluation.embed_lfw_images` (batched MTCNN, the padded second try, the
face nearest the image centre, the model's alignment) with a :class:`CropRecorder` in place of the
embedder, so nothing is encoded and the crops are exactly those an evaluation would encode.

:func:`build_int8_bundle` makes the inference-only bundle (``models/fast``): the int8 graph, calibrated
τ and open-set data, provenance. :func:`record_mtcnn_inputs`, :func:`quantize_mtcnn` and
:func:`mtcnn_probe` measure whether quantising MTCNN's three stages pays
(``scripts/build_fast_model.py --mtcnn-probe``): on 300 LFW photos the int8 stages were 1.12× *slower*
than float (small convolutions, quantise/dequantise overhead) and changed the face count of 7 images,
so the detector stays float.

This module imports ``onnx`` and ``onnxruntime.quantization`` (never TensorFlow); inference never
imports it: a quantised graph is an ordinary ``encoder.onnx``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from facever.training.atomic import atomic_directory, atomic_file

#: Settings of the shipped int8 encoder (recorded in the bundle's metadata).
QUANT_SETTINGS: dict[str, Any] = {
    "tool": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "per_channel": True,
    "calibrate_method": "MinMax",
    "pre_process": "quant_pre_process(skip_symbolic_shape=True)",
}


class ViewReader:
    """A ``CalibrationDataReader``: batches of the test-time views of aligned crops.

    Args:
        crops: ``(N, S, S, 3)`` uint8 RGB aligned crops (the model's geometry and size).
        zooms: the bundle's ``view_zooms``; ``flip``: its ``flip_tta`` (each view also mirrored).
        input_name: the graph's input name.
        batch: crops per batch (each yields ``len(zooms) · (1 + flip)`` views).

    ``get_next()`` returns ``{input_name: (B·V, S, S, 3) float32 0..255}`` or None when exhausted.
    """

    def __init__(self, crops: np.ndarray, zooms: Sequence[float], flip: bool, input_name: str, batch: int = 4) -> None:
        self.crops = np.asarray(crops)
        self.zooms = [float(z) for z in zooms]
        self.flip = bool(flip)
        self.input_name = input_name
        self.batch = int(batch)
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        """Number of views the reader yields in all."""
        return len(self.crops) * len(self.zooms) * (2 if self.flip else 1)

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        from facever.alignment import crop_views

        for start in range(0, len(self.crops), self.batch):
            views = crop_views(self.crops[start:start + self.batch], self.zooms, flip=self.flip)
            yield {self.input_name: np.concatenate(views).astype(np.float32)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def _reader_class():
    """:class:`ViewReader` registered as onnxruntime's ``CalibrationDataReader`` (an ABC)."""
    from onnxruntime.quantization import CalibrationDataReader

    CalibrationDataReader.register(ViewReader)
    return ViewReader


def quantize_static_qdq(src: str | os.PathLike[str], dst: str | os.PathLike[str], reader: Any,
                        exclude_nodes: Sequence[str] = ()) -> dict[str, Any]:
    """Quantise a float ONNX graph with :data:`QUANT_SETTINGS` (u8 activations, s8 per-channel weights, QDQ).

    Args:
        src: the float graph; ``dst``: where the int8 graph is written (atomically).
        reader: a ``CalibrationDataReader`` (e.g. :class:`ViewReader`).
        exclude_nodes: node names kept in float (after pre-processing).
    Returns the settings used (JSON-ready).

    Every batch counts: MinMax calibration keeps only each tensor's per-batch min and max, so memory is
    small. (onnxruntime 1.32's ``CalibMaxIntermediateOutputs`` is not used: on reaching that count it
    drops the batches collected so far without merging their ranges, so only the last
    ``n_batches mod k`` batches would set the ranges.)
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(exclude_nodes))
        with atomic_file(dst) as tmp_dst:
            shutil.copyfile(out, tmp_dst)
    return {**QUANT_SETTINGS, "nodes_excluded": list(exclude_nodes)}


def graph_input_name(path: str | os.PathLike[str]) -> str:
    """Name of the single input of an ONNX graph."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ValueError(f"{path}: expected one graph input, found {names}")
    return names[0]


def quantize_encoder(src: str | os.PathLike[str], dst: str | os.PathLike[str], crops: np.ndarray,
                     zooms: Sequence[float], flip: bool = True, batch: int = 4) -> dict[str, Any]:
    """Quantise a float ``encoder.onnx`` to int8, calibrated on the test-time views of ``crops``.

    Args:
        crops: ``(N, S, S, 3)`` uint8 aligned crops of people the model was trained on.
        zooms, flip: the bundle's test-time views (``view_zooms``, ``flip_tta``).
    Returns the settings with ``calibration_crops`` and ``calibration_views`` counts.
    """
    reader = _reader_class()(crops, zooms, flip, graph_input_name(src), batch=batch)
    settings = quantize_static_qdq(src, dst, reader)
    settings.update(calibration_crops=int(len(crops)), calibration_views=len(reader),
                    views={"zooms": [float(z) for z in zooms], "mirrored": bool(flip)})
    return settings


# ----------------------------------------------------------------------------------------------
# Crops through the inference pipeline
# ----------------------------------------------------------------------------------------------
class CropRecorder:
    """Stands in for a :class:`facever.embedding.FaceEmbedder`: every crop handed to ``embed_crops``
    is kept (in call order) and zero vectors are returned, so a pipeline that detects, aligns and
    encodes only detects and aligns. Every other attribute is the wrapped embedder's."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self.crops: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    @property
    def embedder(self) -> "CropRecorder":  # so that code taking ``verifier.embedder`` gets the recorder
        return self

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        self.crops.extend(crops)
        return np.zeros((len(crops), int(self._embedder.bundle.metadata.embedding_dim)), np.float32)

    def stacked(self) -> np.ndarray:
        """The recorded crops, ``(M, S, S, 3)`` uint8."""
        size = int(self._embedder.input_size)
        return np.stack(self.crops) if self.crops else np.zeros((0, size, size, 3), np.uint8)


def collect_crops(embedder: Any, root: str | os.PathLike[str], paths: Sequence[str],
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops of ``paths`` (under ``root``) by facever's evaluation pipeline, without encoding.

    :func:`facever.training.evaluation.embed_lfw_images`: batched MTCNN, the padded second try, the
    face nearest the image centre, alignment to the model's template and size.

    Returns ``(crops (M, S, S, 3) uint8, found (len(paths),) bool)``; crops are in path order, one
    per found image.
    """
    from facever.training.evaluation import embed_lfw_images

    recorder = CropRecorder(getattr(embedder, "embedder", embedder))
    res = embed_lfw_images(recorder, root, list(paths), batch_size=batch_size)
    crops = recorder.stacked()
    if len(crops) != int(res.found.sum()):
        raise RuntimeError(f"recorded {len(crops)} crops for {int(res.found.sum())} found faces")
    return crops, np.asarray(res.found, bool)


def cached_crops(cache: str | os.PathLike[str] | None, embedder: Any, root: str | os.PathLike[str],
                 paths: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """:func:`collect_crops`, kept in ``cache`` (a folder, e.g. under ``runs/``; None: no cache) as an
    ``.npz`` named by a hash of the image root, the paths and the model's crop geometry."""
    import hashlib

    emb = getattr(embedder, "embedder", embedder)
    if cache is None:
        return collect_crops(emb, root, paths, batch_size)
    key = hashlib.sha256("\0".join([str(Path(root).resolve()), emb.template_name, str(emb.input_size), *paths])
                         .encode()).hexdigest()[:16]
    path = Path(cache) / f"crops-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["crops"], z["found"]
    crops, found = collect_crops(emb, root, paths, batch_size)
    with atomic_file(path, ".npz") as tmp:
        np.savez(tmp, crops=crops, found=found)
    return crops, found


def training_sample(people: dict[str, set[str]], image_lists: dict[str, dict[str, list[str]]],
                    per_person: int, max_people: dict[str, int], seed: int = 0) -> dict[str, list[str]]:
    """A random sample of training images per dataset: at most ``per_person`` images of at most
    ``max_people[ds]`` people of ``people[ds]`` (seeded; sorted paths ``PERSON/FILE``).

    Args:
        people: ``{dataset: training people}`` (e.g. ``finetune_dlib.split_people(...)["train"]``).
        image_lists: ``{dataset: {person: [file names]}}``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for ds, names in people.items():
        avail = sorted(p for p in names if image_lists.get(ds, {}).get(p))
        chosen = rng.permutation(avail)[:max_people.get(ds, len(avail))]
        paths = []
        for person in sorted(chosen.tolist()):
            files = sorted(image_lists[ds][person])
            pick = rng.permutation(len(files))[:per_person]
            paths += [f"{person}/{files[i]}" for i in sorted(pick.tolist())]
        out[ds] = paths
    return out


# ----------------------------------------------------------------------------------------------
# MTCNN (measured, shipped only if it pays)
# ----------------------------------------------------------------------------------------------
class _ListReader:
    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.name, self.batches, self._i = name, batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.batches):
            return None
        self._i += 1
        return {self.name: self.batches[self._i - 1]}

    def rewind(self) -> None:
        self._i = 0


def record_mtcnn_inputs(detector: Any, images: Sequence[np.ndarray], batch: int = 16,
                        max_batches: int = 64, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The inputs each MTCNN stage (``pnet``/``rnet``/``onet``) receives while ``detector``
    (a :class:`facever.mtcnn_onnx.OnnxMTCNNDetector`) detects ``images``; at most ``max_batches``
    random stage calls kept per stage (seeded)."""
    seen: dict[str, list[np.ndarray]] = {"pnet": [], "rnet": [], "onet": []}
    original = detector._run

    def spy(stage: str, arr: np.ndarray) -> list[np.ndarray]:
        seen[stage].append(np.ascontiguousarray(arr, np.float32).copy())
        return original(stage, arr)

    detector._run = spy
    try:
        for start in range(0, len(images), batch):
            detector.detect_batch(list(images[start:start + batch]))
    finally:
        del detector._run
    rng = np.random.default_rng(seed)
    out = {}
    for stage, arrs in seen.items():
        keep = sorted(rng.permutation(len(arrs))[:max_batches].tolist())
        out[stage] = [arrs[i] for i in keep if len(arrs[i])]
    return out


def quantize_mtcnn(src_dir: str | os.PathLike[str], dst_dir: str | os.PathLike[str],
                   inputs: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """int8 copies (:func:`quantize_static_qdq`) of ``pnet/rnet/onet.onnx`` of ``src_dir`` in ``dst_dir``,
    calibrated on :func:`record_mtcnn_inputs`' batches."""
    settings = {}
    for stage in ("pnet", "rnet", "onet"):
        src = Path(src_dir).joinpath(f"{stage}.onnx")
        with tempfile.TemporaryDirectory() as tmp:  # the packaged graph may be a traversable
            local = Path(tmp) / f"{stage}.onnx"
            local.write_bytes(src.read_bytes())
            reader = _ListReader(graph_input_name(local), inputs[stage])
            settings[stage] = quantize_static_qdq(local, Path(dst_dir) / f"{stage}.onnx", reader)
    return settings


# ----------------------------------------------------------------------------------------------
# The int8 bundle
# ----------------------------------------------------------------------------------------------
def build_int8_bundle(src_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], train_crops: np.ndarray,
                      calib_crops: np.ndarray, calib_labels: np.ndarray, description: str,
                      target_far: float = 1e-2, target_fpir: float = 1e-2,
                      provenance: dict[str, Any] | None = None,
                      view_zooms: Sequence[float] | None = None) -> dict[str, Any]:
    """Write an inference-only int8 bundle (``encoder.onnx`` + ``metadata.json``) made from a float one.

    1. :func:`quantize_encoder` on ``train_crops`` (people the model was trained on) × the source
       bundle's test-time views;
    2. the new graph embeds ``calib_crops`` (held-out people, never trained on) through
       :meth:`facever.embedding.FaceEmbedder.embed_crops`; τ, the logistic head and the open-set
       identification threshold come from :func:`facever.training.calibration.calibrate_bundle`, the
       impostor distribution from :func:`facever.open_set.impostor_distribution` (as the float model's);
    3. the metadata is the source's (architecture, preprocessing, views, provenance, training data,
       liveness) with the calibration replaced, the source's evaluation figures dropped, and
       ``training["quantization"]`` recording the source version, the settings and the crop counts.

    ``view_zooms`` replaces the source's test-time zooms (each still mirrored when the source mirrors):
    fewer views encode faster; the ranges, τ and the open-set data are then those of the new views.

    The directory is written next to ``out_dir`` and swapped in (a failed build leaves the old one).
    Returns ``{"version", "source_version", "calibration", "quantization"}``.
    """
    from facever.bundle import ENCODER_FILE, ModelBundle, load_bundle, model_version, write_metadata
    from facever.embedding import FaceEmbedder
    from facever.open_set import impostor_distribution
    from facever.runtime import OnnxEncoder
    from facever.training.calibration import calibrate_bundle

    src = load_bundle(src_dir)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        meta = src.metadata
        if view_zooms is not None:
            _set_views(meta, [float(z) for z in view_zooms])
        settings = quantize_encoder(Path(src_dir) / ENCODER_FILE, tmp / ENCODER_FILE, train_crops,
                                    meta.view_zooms, bool(meta.flip_tta))
        meta.figures = {}
        meta.threshold = meta.verification_head = meta.open_set = None
        graph = tmp / ENCODER_FILE
        bundle = ModelBundle(OnnxEncoder(graph), meta, model_version(graph, meta), tmp)
        emb = FaceEmbedder(bundle, detector=_NoDetector()).embed_crops(calib_crops)
        figures = calibrate_bundle(bundle, emb, np.asarray(calib_labels), description,
                                   target_far=target_far, target_fpir=target_fpir)
        meta.open_set = impostor_distribution(emb, np.asarray(calib_labels), description=description,
                                              default_fpir=target_fpir)
        import datetime as _dt

        meta.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        meta.training = {**meta.training, "quantization": {
            **settings, "source_model_version": src.version, "calibration_set_crops": int(len(calib_crops)),
            **(provenance or {})}}
        write_metadata(tmp, meta)
    return {"version": model_version(out_dir / ENCODER_FILE, meta), "source_version": src.version,
            "calibration": figures, "quantization": meta.training["quantization"]}


def _set_views(meta: Any, zooms: list[float]) -> None:
    """Set the bundle's test-time zooms and keep its ``preprocessing`` sentence true."""
    if not zooms or any(not 0.5 <= z <= 2.0 for z in zooms):
        raise ValueError(f"view zooms must be 1 or more values in [0.5, 2], got {zooms}")
    meta.view_zooms = zooms
    text = meta.preprocessing or ""
    head, sep, _ = text.partition("test-time views:")
    mirrored = ", each mirrored" if meta.flip_tta else ""
    views = f"test-time views: the crop zoomed by {', '.join(f'{z:g}' for z in zooms)} about its centre{mirrored}; " \
            "embedding = renormalised mean over the views"
    meta.preprocessing = (head + views) if sep else (text + ("; " if text else "") + views)


class _NoDetector:
    """A placeholder detector for an embedder that is only given crops."""

    def detect(self, image):  # pragma: no cover - never called
        raise RuntimeError("this embedder only encodes crops")

    detect_batch = detect


def mtcnn_probe(calib_images: Sequence[np.ndarray], test_images: Sequence[np.ndarray], repeats: int = 3) -> dict[str, Any]:
    """Does quantising MTCNN pay? Float and int8 stages (:func:`quantize_mtcnn`, calibrated on
    ``calib_images``) detect ``test_images`` one at a time, alternating, ``repeats`` passes.

    Returns per-image seconds (median pass) of each, their ratio, and the agreement of the detections:
    images with the same number of faces, and for those, the largest landmark error of matched faces
    (nearest box centres) divided by the float face's inter-ocular distance (median and max), and
    the largest box-score difference.
    """
    import time

    from facever.mtcnn_onnx import OnnxMTCNNDetector, default_model_dir

    base = OnnxMTCNNDetector()
    inputs = record_mtcnn_inputs(base, calib_images)
    with tempfile.TemporaryDirectory() as tmp:
        settings = quantize_mtcnn(default_model_dir(), tmp, inputs)
        q = OnnxMTCNNDetector(model_dir=tmp)
        dets = {"float": base, "int8": q}
        for d in dets.values():  # sessions created before timing
            d.detect(test_images[0])
        times: dict[str, list[float]] = {k: [] for k in dets}
        found: dict[str, list] = {}
        for _ in range(repeats):
            for name, d in dets.items():
                t0 = time.perf_counter()
                found[name] = [d.detect(im) for im in test_images]
                times[name].append((time.perf_counter() - t0) / len(test_images))
    same_count = errs = 0
    lm_err: list[float] = []
    score_diff = 0.0
    for a, b in zip(found["float"], found["int8"]):
        if len(a) != len(b):
            errs += 1
            continue
        same_count += 1
        for fa in a:
            ca = np.array([(fa.box[0] + fa.box[2]) / 2, (fa.box[1] + fa.box[3]) / 2])
            fb = min(b, key=lambda f: float(np.sum((np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]) - ca) ** 2)))
            iod = float(np.linalg.norm(np.asarray(fa.landmarks[0]) - np.asarray(fa.landmarks[1])))
            lm_err.append(float(np.abs(np.asarray(fa.landmarks) - np.asarray(fb.landmarks)).max()) / max(iod, 1e-6))
            score_diff = max(score_diff, abs(float(fa.score) - float(fb.score)))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"n_test_images": len(test_images), "n_calib_images": len(calib_images), "repeats": repeats,
            "seconds_per_image": med, "int8_over_float": med["int8"] / med["float"],
            "images_same_face_count": same_count, "images_other_face_count": errs,
            "landmark_error_over_iod": {"median": float(np.median(lm_err)) if lm_err else None,
                                        "max": float(np.max(lm_err)) if lm_err else None},
            "max_score_difference": score_diff, "settings": {k: v["format"] for k, v in settings.items()}}
