"""Markdown for ``benchmarks/liveness.py``'s results (``results/liveness.md``)."""

from __future__ import annotations

from typing import Any


def markdown(r: dict[str, Any]) -> str:
    return "# Liveness\n\n(pending)\n"
