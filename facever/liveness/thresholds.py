"""Liveness thresholds: defaults, and the calibrated values a model bundle carries in its metadata.

The calibrated values live under ``metadata.json``'s ``liveness`` key (``{"thresholds": {...},
"figures": {...}}``), written by ``benchmarks/liveness.py``. They are not part of the model version
(:func:`facever.bundle.model_version` hashes the encoder graph and the test-time views only): the
liveness check is geometry on the detector's landmarks, and the embedding only serves its identity
check, whose threshold is the bundle's own τ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class LivenessThresholds:
    """What :func:`facever.liveness.decide` requires of a capture.

    Attributes:
        parallax: smallest parallax across the turns: the canonical nose ``dx`` at the image-right turn's
            peak minus at the image-left turn's, template IOD units (a live head turned 35° each way
            gives ≈ 0.6–0.8, a flat photo ≈ 0 ± detector drift, a concave print < 0). Calibrated.
        turn_yaw: a turn is seen when the yaw proxy moves this far from the first frame's (frame IOD;
            0.3 ≈ a 30–35° head turn). A live head's parallax grows with its turn (≈ 0.9 × the yaw
            change), so the turns asked for must be large enough for it to clear ``parallax``.
        max_start_yaw: the first usable frame must face the camera: yaw proxy within ± this.
        return_fraction: a turn ends when the yaw proxy comes back within ``return_fraction ×
            turn_yaw`` of the first frame's (hysteresis: noise does not split or merge turns).
        peak_fraction: frames within this fraction of a turn's largest yaw change all count as its
            peak (their canonical noses are averaged, which lowers the noise on dense videos).
        min_iod_px: smallest usable inter-ocular distance, pixels of the frame.
        min_sharpness: smallest usable variance of the Laplacian of the aligned grey crop.
        min_frames: fewest usable frames (a face of usable size, sharpness and shape).
        min_usable_fraction: fewest usable frames as a fraction of the frames given, in [0, 1].
        max_frames: most frames accepted in one capture (bounds the work of one request).
        identity_tau: embedding distance to the first usable frame above which the identity changed;
            None: the verifier's τ.
    """

    parallax: float = 0.5281  # the value benchmarks/liveness.py calibrated for the shipped model
    turn_yaw: float = 0.3
    max_start_yaw: float = 0.15
    return_fraction: float = 0.5
    peak_fraction: float = 0.8
    min_iod_px: float = 24.0
    min_sharpness: float = 10.0
    min_frames: int = 3
    min_usable_fraction: float = 0.5
    max_frames: int = 120
    identity_tau: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "LivenessThresholds":
        """Thresholds from a dict (unknown keys ignored, missing ones default)."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        return replace(cls(), **{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_metadata(cls, metadata: Any) -> "LivenessThresholds":
        """The thresholds stored in a bundle's metadata (its ``liveness`` block), else the defaults."""
        block = getattr(metadata, "liveness", None) or {}
        return cls.from_json(block.get("thresholds") if isinstance(block, dict) else None)
