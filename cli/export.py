"""``facever export``: write the inference graph of a trained bundle (build time; needs facever[train])."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import JSON_OPTION, handle_errors, out, print_json


def export(
    bundle: Path = typer.Argument(..., help="Bundle directory with model.keras, weights.npz, or a compact "
                                            "encoder.onnx to rebuild from."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a copy there (default: update BUNDLE in place)."),
    half: bool = typer.Option(False, "--half", help="Store weights as float16 (half the size)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Export a bundle's encoder to ONNX (encoder.onnx), checked against Keras, for the light runtime.

    The exported graph's outputs are compared with the Keras model's before it is written; its
    content hash is the model version.

    Example:

        facever export runs/m1/bundle --half
    """
    with handle_errors(as_json):
        from facever.training.bundle import load_trainable

        trainable = load_trainable(bundle)
        target = out_dir or bundle
        version = trainable.save(target, half=half)
    result = {"bundle": str(target), "version": version}
    if as_json:
        print_json(result)
    else:
        out.print(f"exported {target}/encoder.onnx (model version {version})", markup=False)
