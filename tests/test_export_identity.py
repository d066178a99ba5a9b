"""The exported graph's header is part of the model version: a rebuild of the shipped model must
write the same producer name, or it gets a new version although the network is the same."""

from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

from facever.training.export import PRODUCER_NAME  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "default" / "encoder.onnx"


def test_export_writes_the_producer_name_of_the_shipped_graph():
    proto = onnx.load(str(SHIPPED), load_external_data=False)
    assert (proto.producer_name, proto.producer_version) == (PRODUCER_NAME, "")
