"""Shared fixtures: small real face photo from scikit-image, tiny model bundles."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photo with one frontal face (NASA, public domain) shipped inside scikit-image."""
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory):
    """A random-weight resnet_s bundle at 32×32 input with a threshold (saved to disk)."""
    from facever.encoder.bundle import BundleMetadata, ModelBundle, Threshold
    from facever.encoder.network import build_encoder

    model = build_encoder("resnet_s", input_size=32, width=8)
    meta = BundleMetadata(architecture="resnet_s", input_size=32,
                          threshold=Threshold(value=0.8, far=0.01, frr=0.1, target="test"))
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    ModelBundle(model, meta, version="").save(path)
    return path
