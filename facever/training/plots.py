"""ROC and distance-histogram plots (matplotlib, imported only when plotting)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from sklearn.metrics import auc as _auc
from sklearn.metrics import roc_curve

from facever.training.metrics import MAX_DISTANCE, _prepare, _require_both

# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def save_plots(distances: np.ndarray, same: np.ndarray, out_dir: str | os.PathLike[str], label: str) -> list[str]:
    """Write a ROC curve (TAR vs FAR, log FAR axis) and a genuine/impostor distance histogram.

    Args:
        distances, same: labelled pairs (NaN distances count as 2.0).
        out_dir: folder (created) for ``{label}_roc.png`` and ``{label}_hist.png``.
        label: title and file name stem.

    Returns:
        The paths written.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'facever[plots]'``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'facever[plots]'") from exc
    d, s, _ = _prepare(distances, same)
    _require_both(s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "plot"
    fpr, tpr, _ = roc_curve(s, -d)
    floor = 1.0 / max(int((~s).sum()), 1)
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(np.maximum(fpr, floor), tpr, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(f"{label}: ROC (AUC {_auc(fpr, tpr):.4f})")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    roc_path = out / f"{stem}_roc.png"
    fig.savefig(roc_path)
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    bins = np.linspace(0.0, MAX_DISTANCE, 101)
    ax.hist(d[s], bins=bins, density=True, alpha=0.6, label=f"genuine ({int(s.sum())})")
    ax.hist(d[~s], bins=bins, density=True, alpha=0.6, label=f"impostor ({int((~s).sum())})")
    ax.set_xlabel("distance")
    ax.set_ylabel("density")
    ax.set_title(f"{label}: distances")
    ax.legend()
    fig.tight_layout()
    hist_path = out / f"{stem}_hist.png"
    fig.savefig(hist_path)
    return [str(roc_path), str(hist_path)]

