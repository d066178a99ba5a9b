"""Is the face in these frames a live head answering the challenge? Observations, then a decision.

:func:`check_liveness` = :func:`observe_frames` (decode, detect, align, quality, embed: the costly part)
+ :func:`decide` (pure NumPy on the observations; the benchmark calls it on cached observations, so
the figures it reports come from this very code). The checks, in the order a refusal names them:

1. **frames**: at most ``max_frames`` given; at least ``min_frames`` usable ones (a face with an
   inter-ocular distance ≥ ``min_iod_px``, sharpness ≥ ``min_sharpness`` and a face-shaped outer
   quadrilateral), and at least ``min_usable_fraction`` of those given;
2. **identity**: every usable face within ``identity_tau`` (default: the verifier's τ) of the first;
3. **turns**: the capture starts facing the camera (yaw proxy within ``max_start_yaw``); the yaw proxy
   then leaves the first frame's by ``turn_yaw``, one excursion per step, in the requested order (or,
   without a challenge, both directions in any order);
4. **parallax**: the canonical nose (:func:`facever.liveness.geometry.canonical_nose`) at the peak
   of the turns that move the nose to the image right, minus at the peak of those that move it left,
   is at least ``parallax`` (template IOD): the nose stood out of the plane of the eyes and mouth
   corners while the head turned. A flat photo gives ≈ 0 (MTCNN's landmarks on a strongly tilted
   print drift a little as if it had turned: the calibrated threshold clears that drift); a print
   bent the wrong way (concave) gives < 0. It is the signed form of issue 21's homography residual
   between the two turns, measured in the frontal template's units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from facever.liveness import geometry as geo
from facever.liveness.challenge import Challenge
from facever.liveness.thresholds import LivenessThresholds


@dataclass(frozen=True)
class FrameObservation:
    """What one frame shows, for :func:`decide`.

    Attributes:
        index: position of the frame in the capture.
        landmarks: ``(5, 2)`` float pixels of the chosen (largest) face, or None when none was found.
        iod_px: inter-ocular distance, pixels (0 without a face).
        sharpness: variance of the Laplacian of the aligned grey crop (0 without a face).
        embedding: ``(D,)`` unit embedding of the face, or None (not computed: unusable frame).
    """

    index: int
    landmarks: np.ndarray | None = field(default=None, repr=False)
    iod_px: float = 0.0
    sharpness: float = 0.0
    embedding: np.ndarray | None = field(default=None, repr=False)

    def problem(self, t: LivenessThresholds) -> str:
        """Why the frame cannot be used (``""`` when it can)."""
        if self.landmarks is None:
            return "no face"
        if self.iod_px < t.min_iod_px:
            return "face too small"
        if self.sharpness < t.min_sharpness:
            return "too blurry"
        if not geo.usable_geometry(self.landmarks):
            return "landmarks not face-shaped"
        return ""


@dataclass(frozen=True)
class LivenessResult:
    """Outcome of a liveness check.

    Attributes:
        live: every check passed.
        code: ``"live"`` or the first failed check's stable key (``challenge_expired``,
            ``too_many_frames``, ``too_few_usable_frames``, ``identity_changed``, ``not_frontal_start``,
            ``turns_not_seen``, ``wrong_order``, ``no_parallax``).
        reason: one human-readable sentence.
        checks: per check (``frames``, ``identity``, ``turns``, ``parallax``) its figures and ``passed``.
        challenge: the steps asked for (and the challenge id when one was issued).
        steps_seen: the turns read from the frames, subject's directions, in order.
        best_frame: index of the most frontal usable frame (the face to verify), or None.
        embedding: ``(D,)`` embedding of that frame, or None (not part of :meth:`to_dict`).
    """

    live: bool
    code: str
    reason: str
    checks: dict[str, Any]
    challenge: dict[str, Any]
    steps_seen: list[str]
    best_frame: int | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (no embedding)."""
        return {"live": self.live, "code": self.code, "reason": self.reason, "challenge": self.challenge,
                "steps_seen": list(self.steps_seen), "best_frame": self.best_frame, "checks": self.checks}


def _step_name(sign: int, mirrored: bool) -> str:
    """Subject's direction of a turn whose nose moves to the image right (+1) or left (-1)."""
    return "left" if (sign > 0) != mirrored else "right"


def detect_turns(yaws: Sequence[float], t: LivenessThresholds) -> list[tuple[int, list[int]]]:
    """Excursions of the yaw proxy from its first value: ``[(sign, positions), ...]`` in order, sign
    +1 when the nose moved to the image right; ``positions`` index ``yaws``. A turn starts when the
    change reaches ``turn_yaw`` and ends when it falls back below ``return_fraction × turn_yaw``;
    a jump straight to the other side starts a new turn."""
    if len(yaws) == 0:
        return []
    base = float(yaws[0])
    state, turns = 0, []
    for i, y in enumerate(yaws):
        d = float(y) - base
        if d >= t.turn_yaw:
            new = 1
        elif d <= -t.turn_yaw:
            new = -1
        elif abs(d) < t.return_fraction * t.turn_yaw:
            new = 0
        else:
            new = state
        if new != 0 and new != state:
            turns.append((new, []))
        if new != 0:
            turns[-1][1].append(i)
        state = new
    return turns


def _peak(turn: tuple[int, list[int]], yaws: np.ndarray, noses: np.ndarray, t: LivenessThresholds) -> tuple[float, float, int]:
    """(mean canonical nose dx, mean yaw, extreme position) over a turn's peak frames."""
    sign, pos = turn
    change = sign * (yaws[pos] - yaws[0])
    top = np.asarray(pos)[change >= t.peak_fraction * change.max()]
    return float(noses[top, 0].mean()), float(yaws[top].mean()), int(np.asarray(pos)[change.argmax()])


def _parallax_figures(turns, yaws: np.ndarray, noses: np.ndarray, lms: list[np.ndarray],
                      t: LivenessThresholds) -> dict[str, Any]:
    """The decision value: the canonical nose at the peak of the image-right turns minus at the peak
    of the image-left turns (template IOD; > 0 when the nose stood out of the eye–mouth plane). Also,
    for reference, each turn's move from the frontal frames before the first turn (signed in the
    turn's direction) and issue 21's unsigned homography residual between the two extreme frames."""
    figures: dict[str, Any] = {"threshold": t.parallax, "value": None, "per_step": [], "passed": False}
    if not turns:
        return figures
    near = [i for i in range(max(turns[0][1][0], 1)) if abs(yaws[i] - yaws[0]) < t.return_fraction * t.turn_yaw] or [0]
    ref = float(noses[near, 0].mean())
    peaks = [_peak(turn, yaws, noses, t) for turn in turns]
    signs = [s for s, _ in turns]
    figures["per_step"] = [round(s * (p[0] - ref), 4) for s, p in zip(signs, peaks)]
    if 1 in signs and -1 in signs:
        right = [p for s, p in zip(signs, peaks) if s > 0]
        left = [p for s, p in zip(signs, peaks) if s < 0]
        value = float(np.mean([p[0] for p in right]) - np.mean([p[0] for p in left]))
        a, b = max(right, key=lambda p: p[1])[2], min(left, key=lambda p: p[1])[2]
        figures.update(value=round(value, 4), passed=bool(value >= t.parallax),
                       yaw_range=round(float(np.mean([p[1] for p in right]) - np.mean([p[1] for p in left])), 4),
                       homography_residual=round(geo.homography_residual(lms[b], lms[a]), 4))
    return figures


def decide(observations: Sequence[FrameObservation], steps: Sequence[str] | None, thresholds: LivenessThresholds,
           tau: float, mirrored: bool = False, challenge_id: str | None = None) -> LivenessResult:
    """The liveness decision on observed frames (no images, no model: pure arithmetic).

    Args:
        observations: one per frame, in capture order.
        steps: the turns asked for (subject's directions), or None to accept what the frames show
            when it holds both directions.
        thresholds: see :class:`LivenessThresholds`.
        tau: identity threshold (embedding distance) when ``thresholds.identity_tau`` is None.
        mirrored: the frames are mirror images (a selfie preview): image directions are swapped.
        challenge_id: recorded in the result.
    """
    t = thresholds
    asked = list(steps) if steps is not None else None
    challenge = {"id": challenge_id, "steps": asked}
    usable = [o for o in observations if not o.problem(t)]
    problems: dict[str, int] = {}
    for o in observations:
        if o.problem(t):
            problems[o.problem(t)] = problems.get(o.problem(t), 0) + 1
    need = max(t.min_frames, int(np.ceil(t.min_usable_fraction * len(observations))))
    checks: dict[str, Any] = {"frames": {"given": len(observations), "usable": len(usable), "needed": need,
                                         "problems": problems, "passed": len(usable) >= need}}
    yaws = np.array([geo.yaw_proxy(o.landmarks) for o in usable])
    noses = np.array([geo.canonical_nose(o.landmarks) for o in usable]).reshape(-1, 2)
    best = usable[int(np.argmin(np.abs(yaws)))] if usable else None

    embs = [o.embedding for o in usable if o.embedding is not None]
    identity_tau = float(t.identity_tau if t.identity_tau is not None else tau)
    dists = [float(np.linalg.norm(e - embs[0])) for e in embs[1:]]
    checks["identity"] = {"max_distance": round(max(dists), 4) if dists else None, "tau": identity_tau,
                          "compared": len(dists), "passed": len(embs) == len(usable) and max(dists, default=0.0) <= identity_tau}

    turns = detect_turns(yaws, t)
    seen = [_step_name(s, mirrored) for s, _ in turns]
    wanted_ok = (seen == asked) if asked is not None else set(seen) == {"left", "right"}
    frontal_start = bool(len(yaws)) and abs(float(yaws[0])) <= t.max_start_yaw
    checks["turns"] = {"steps_seen": seen, "steps_asked": asked, "turn_yaw": t.turn_yaw,
                       "frontal_start": frontal_start, "max_start_yaw": t.max_start_yaw,
                       "yaw_first": round(float(yaws[0]), 4) if len(yaws) else None,
                       "yaw_min": round(float(yaws.min()), 4) if len(yaws) else None,
                       "yaw_max": round(float(yaws.max()), 4) if len(yaws) else None,
                       "passed": bool(wanted_ok and frontal_start)}
    checks["parallax"] = _parallax_figures(turns, yaws, noses, [o.landmarks for o in usable], t)

    code, reason = _verdict(checks, asked, seen)
    if asked is None:
        challenge["steps"] = seen
    return LivenessResult(live=code == "live", code=code, reason=reason, checks=checks, challenge=challenge,
                          steps_seen=seen, best_frame=best.index if best is not None else None,
                          embedding=best.embedding if best is not None else None)


def _verdict(checks: dict[str, Any], asked: list[str] | None, seen: list[str]) -> tuple[str, str]:
    f, ident, turns, par = checks["frames"], checks["identity"], checks["turns"], checks["parallax"]
    if not f["passed"]:
        why = ", ".join(f"{n} {p}" for p, n in f["problems"].items()) or "none given"
        return "too_few_usable_frames", f"only {f['usable']} of {f['given']} frames usable (need {f['needed']}; {why})"
    if not ident["passed"]:
        return "identity_changed", (f"the face changed during the capture (distance {ident['max_distance']} "
                                    f"> τ {ident['tau']:.4f})")
    if not turns["passed"] and not turns["frontal_start"]:
        return "not_frontal_start", (f"the capture must start facing the camera (yaw proxy {turns['yaw_first']} "
                                     f"beyond ±{turns['max_start_yaw']})")
    if not turns["passed"]:
        if asked is not None and sorted(seen) == sorted(asked):
            return "wrong_order", f"turns seen {seen}, asked {asked} in that order"
        what = f"asked {asked}" if asked is not None else "a turn to each side is needed"
        return "turns_not_seen", f"turns seen {seen or 'none'}; {what}"
    if not par["passed"]:
        return "no_parallax", (f"no 3D parallax across the turns ({par['value']} < {par['threshold']}): "
                               "a flat picture, not a head")
    return "live", "live: the requested turns were seen, with 3D parallax, by one face"


def observe_frames(frames: Sequence[Any], verifier: Any, thresholds: LivenessThresholds | None = None) -> list[FrameObservation]:
    """Decode, detect (largest face), align and measure each frame; embed the usable ones.

    Args:
        frames: RGB ``(H, W, 3)`` uint8 arrays, encoded image bytes, or paths, of one capture.
        verifier: a :class:`facever.FaceVerifier` (its detector and model are used).
        thresholds: which faces are worth embedding (default: the verifier's bundle's).
    Raises:
        facever.ImageError: a frame cannot be decoded.
    """
    from facever.detection import select_faces
    from facever.embedding import align_faces, detect_padded
    from facever.imaging import load_image

    t = thresholds or LivenessThresholds.from_metadata(verifier.bundle.metadata)
    embedder = verifier.embedder
    images = [load_image(f, name=f"frame {i}") for i, f in enumerate(frames)]
    found = embedder.detector.detect_batch(images) if images else []
    obs: list[FrameObservation] = []
    crops: dict[int, np.ndarray] = {}  # observation position → aligned crop worth embedding
    for i, (rgb, faces) in enumerate(zip(images, found)):
        faces = faces or detect_padded(embedder.detector, rgb)
        if not faces:
            obs.append(FrameObservation(index=i))
            continue
        aligned = align_faces(rgb, select_faces(faces, "largest"), embedder.input_size, embedder.template_name)[0]
        o = FrameObservation(index=i, landmarks=np.asarray(aligned.face.landmarks, np.float64),
                             iod_px=geo.inter_ocular(aligned.face.landmarks), sharpness=aligned.quality.sharpness)
        if not o.problem(t):
            crops[i] = aligned.crop
        obs.append(o)
    if crops:
        embs = embedder.embed_crops(np.stack(list(crops.values())))
        for i, e in zip(crops, embs):
            o = obs[i]
            obs[i] = FrameObservation(o.index, o.landmarks, o.iod_px, o.sharpness, e)
    return obs


def check_liveness(frames: Sequence[Any], challenge: Challenge | Sequence[str] | None, verifier: Any,
                   thresholds: LivenessThresholds | None = None, mirrored: bool = False,
                   now: float | None = None) -> LivenessResult:
    """Decide whether ``frames`` of one capture show a live head answering ``challenge``.

    Args:
        frames: RGB ``(H, W, 3)`` uint8 arrays, encoded image bytes or paths, in capture order.
        challenge: a :class:`Challenge` (checked for expiry), the steps asked for, or None to read
            the steps from the frames' own motion (both directions required).
        verifier: a :class:`facever.FaceVerifier` (detector, embedding model, τ).
        thresholds: default: those calibrated in the verifier's bundle, else the defaults.
        mirrored: the frames are mirror images (e.g. taken from a selfie preview).
        now: the time to check expiry at (seconds since the epoch; default: now).
    Returns:
        a :class:`LivenessResult`; refusals are results (``live=False``), not exceptions.
    Raises:
        facever.ImageError: a frame cannot be decoded.
    """
    t = thresholds or LivenessThresholds.from_metadata(verifier.bundle.metadata)
    steps = list(challenge.steps) if isinstance(challenge, Challenge) else (list(challenge) if challenge is not None else None)
    cid = challenge.id if isinstance(challenge, Challenge) else None
    early = None
    if isinstance(challenge, Challenge) and challenge.expired(now):
        early = ("challenge_expired", "the challenge expired before it was answered; ask for a new one")
    elif len(frames) > t.max_frames:
        early = ("too_many_frames", f"{len(frames)} frames given, at most {t.max_frames} accepted")
    if early is not None:
        return LivenessResult(live=False, code=early[0], reason=early[1], checks={}, challenge={"id": cid, "steps": steps},
                              steps_seen=[])
    observations = observe_frames(frames, verifier, t)
    return decide(observations, steps, t, tau=float(verifier.threshold), mirrored=mirrored, challenge_id=cid)
