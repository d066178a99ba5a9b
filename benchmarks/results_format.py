"""Formatting helpers and plots of the benchmark report (used by ``make_results.py`` and the
``results_*`` section renderers): percentages, spreads of seconds, paired ratios, Markdown tables,
and the PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SYSTEMS = ("facever", "face_recognition")
LABELS = {"facever": "facever", "face_recognition": "face_recognition (dlib)"}
COLOURS = {"facever": "tab:blue", "face_recognition": "tab:orange"}


def pct(x: float | None, digits: int = 2) -> str:
    """``0.9712`` → ``97.12%``; None → ``—``."""
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def ms(stat: dict[str, Any] | None, digits: int = 1) -> str:
    """A spread of seconds as ``median ms [min–max]``."""
    if not stat:
        return "—"
    f = 1000.0
    return f"{stat['median'] * f:.{digits}f} [{stat['min'] * f:.{digits}f}–{stat['max'] * f:.{digits}f}]"


def secs(stat: dict[str, Any] | None, digits: int = 2) -> str:
    """A spread as ``median [min–max]``."""
    if not stat:
        return "—"
    return f"{stat['median']:.{digits}f} [{stat['min']:.{digits}f}–{stat['max']:.{digits}f}]"


def ratio(stat: dict[str, Any] | None) -> str:
    """Paired ratios as ``median× [min–max]``."""
    if not stat:
        return "—"
    return f"{stat['median']:.2f}× [{stat['min']:.2f}–{stat['max']:.2f}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def tar_value(entry: dict[str, Any] | None, key: str) -> float | None:
    """TAR at FAR ``key`` (``"0.001"``) of a scored entry, None when absent or not resolvable."""
    t = ((entry or {}).get("tar_at_far") or {}).get(key)
    return t["tar"] if t and t.get("resolvable") else None


def tar(entry: dict[str, Any], key: str) -> str:
    """TAR at FAR ``key`` with its τ, or why it is missing."""
    t = (entry.get("tar_at_far") or {}).get(key)
    if t is None:
        return "—"
    if not t["resolvable"]:
        return f"n/r ({entry['n_impostor']:,} impostor pairs)"
    return f"{pct(t['tar'])} (τ {t['threshold']:.3f})"


def img(md_dir: Path, png: Path, alt: str) -> str:
    """Markdown image link to ``png``, relative to the report's folder."""
    return f"![{alt}]({Path(os.path.relpath(png, md_dir)).as_posix()})"


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4.5), dpi=110)


def _save(fig, ax, path: Path, title: str, legend: dict | None = None, grid_axis: str = "both") -> Path:
    """Title, grid and legend, then write the figure to ``path``."""
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", axis=grid_axis, alpha=0.3)
    ax.legend(**(legend or {"fontsize": 8}))
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_roc(section: dict[str, Any], title: str, path: Path) -> Path:
    """Both systems' ROC (TAR against log FAR) with their default-threshold operating points."""
    fig = _figure()
    ax = fig.add_subplot()
    floor = 1.0
    for system in SYSTEMS:
        r = section.get(system) or {}
        if not r.get("roc"):
            continue
        far, tar_ = r["roc"]["far"], r["roc"]["tar"]
        floor = min(floor, far[0])
        ax.plot(far, tar_, lw=1.6, color=COLOURS[system],
                label=f"{LABELS[system]} (AUC {r['roc_auc']:.4f}, EER {pct(r['eer'])})")
        dt = r.get("default_threshold")
        if dt:
            ax.plot([max(dt["far"], far[0])], [dt["tar"]], "o", color=COLOURS[system], ms=6,
                    label=f"{LABELS[system]} default τ={dt['value']:.3f}")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    return _save(fig, ax, path, title, legend={"fontsize": 7, "loc": "lower right"})


def plot_search(section: dict[str, Any], path: Path) -> Path:
    """Median search latency per query against gallery size (log-log, min–max bars)."""
    fig = _figure()
    ax = fig.add_subplot()
    sizes = [int(n) for n in section["sizes"]]
    for system in SYSTEMS:
        stats = [section["by_size"][str(n)][system] for n in sizes]
        med = [s["median"] * 1000 for s in stats]
        lo = [(s["median"] - s["min"]) * 1000 for s in stats]
        hi = [(s["max"] - s["median"]) * 1000 for s in stats]
        ax.errorbar(sizes, med, yerr=[lo, hi], marker="o", capsize=3, color=COLOURS[system], label=LABELS[system])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gallery size (faces)")
    ax.set_ylabel("latency per query (ms)")
    return _save(fig, ax, path, "1:K search latency (in memory, one query)")


def plot_stages(section: dict[str, Any], path: Path) -> Path:
    """Median per-image latency of each stage, both systems side by side."""
    fig = _figure()
    ax = fig.add_subplot()
    stages = [s for s in section["stages"] if s not in ("total", "detection_batched")]
    width = 0.38
    for k, system in enumerate(SYSTEMS):
        vals = [((section["stages"][s].get(system) or {}).get("median") or 0.0) * 1000 for s in stages]
        ax.bar([i + (k - 0.5) * width for i in range(len(stages))], vals, width, color=COLOURS[system], label=LABELS[system])
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("ms per image (median of repeats)")
    return _save(fig, ax, path, "Per-image latency by stage, one image at a time", grid_axis="y")
