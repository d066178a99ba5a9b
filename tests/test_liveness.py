"""facever.liveness: exact geometry on synthetic heads and planes, the challenge protocol, the checks,
the thresholds stored with the model (version unchanged), and the CLI's --live on a video file."""

from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest

from facever.liveness import (Challenge, ChallengeError, ChallengeStore, FrameObservation, LivenessThresholds, decide,
                              detect_turns, new_challenge)
from facever.liveness import geometry as geo

#: A five-point head in inter-ocular units (x right, y down, z away from the camera): pupils at z = 0,
#: the mouth corners 0.6 cm and the nose tip 3.5 cm nearer the camera (an adult of 6.3 cm IOD).
HEAD = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.62, -0.55], [-0.42, 1.1, -0.1], [0.42, 1.1, -0.1]])
#: The same five points flattened onto the plane of the eyes: a photo of the face.
PHOTO = HEAD * [1, 1, 0]
#: MTCNN's landmark noise, per coordinate, in IOD: its points on two camera frames of the same print in
#: the same pose (independent sensor noise and JPEG) differ by 0.012 IOD per coordinate (std, 56 LFW
#: photos rendered by benchmarks/liveness_render.py); the test adds a quarter more.
NOISE = 0.015
T = LivenessThresholds()


def rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points: np.ndarray, yaw: float, pitch: float = 0.0, roll: float = 0.0, distance: float = 6.0,
            iod_px: float = 80.0, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pixel landmarks of ``points`` rotated about their centre and seen by a pinhole camera at
    ``distance`` IOD (≈ 40 cm), frontal IOD ``iod_px``; Gaussian noise of ``noise`` IOD per coordinate."""
    x = (points - points.mean(0)) @ rotation(yaw, pitch, roll).T + [0, 0, distance]
    px = iod_px * distance * x[:, :2] / x[:, 2:3] + [320, 240]
    if noise:
        px = px + (rng or np.random.default_rng(0)).normal(0, noise * iod_px, px.shape)
    return px


def capture(points: np.ndarray, yaws: list[float], emb: np.ndarray | None = None, **kw) -> list[FrameObservation]:
    """Observations of ``points`` at each yaw (same identity, sharp, 80 px IOD)."""
    emb = np.eye(8)[0] if emb is None else emb
    return [FrameObservation(i, project(points, y, **kw), 80.0, 200.0, emb) for i, y in enumerate(yaws)]


# ---- geometry --------------------------------------------------------------------------------------


def test_plane_has_one_canonical_nose_in_every_pose():
    rng = np.random.default_rng(1)
    ref = geo.canonical_nose(project(PHOTO, 0))
    for _ in range(50):
        yaw, pitch, roll = rng.uniform(-40, 40), rng.uniform(-25, 25), rng.uniform(-15, 15)
        lm = project(PHOTO, yaw, pitch, roll, distance=float(rng.uniform(2, 10)))
        np.testing.assert_allclose(geo.canonical_nose(lm), ref, atol=1e-9)
        assert geo.homography_residual(project(PHOTO, 0), lm) < 1e-9


def test_head_turn_moves_the_canonical_nose_with_the_yaw():
    # the nose stands ~0.5 IOD out of the eye-mouth plane: dx ≈ 0.5·tan(yaw), same sign as the yaw proxy
    for yaw in (-30, -15, 15, 30):
        lm = project(HEAD, yaw)
        dx = geo.canonical_nose(lm)[0] - geo.canonical_nose(project(HEAD, 0))[0]
        assert np.sign(dx) == np.sign(geo.yaw_proxy(lm)) != 0
        assert 0.45 < abs(dx) / np.tan(np.radians(abs(yaw))) < 0.6
    assert geo.parallax(project(HEAD, 30), project(HEAD, -30)) > 0.55
    assert abs(geo.parallax(project(PHOTO, 30), project(PHOTO, -30))) < 1e-9


def test_yaw_proxy_sign_and_roll_invariance():
    assert geo.yaw_proxy(project(HEAD, 0)) == pytest.approx(0.0, abs=1e-9)
    # with this camera a positive yaw turns the nose towards the image left
    assert geo.yaw_proxy(project(HEAD, 25)) < -0.15 < 0.15 < geo.yaw_proxy(project(HEAD, -25))
    assert geo.yaw_proxy(project(HEAD, -25, roll=30)) == pytest.approx(geo.yaw_proxy(project(HEAD, -25)), abs=0.02)


def test_degenerate_landmarks_are_not_usable():
    flat = np.array([[0, 0], [10, 0], [5, 0.1], [0, 0.2], [10, 0.2]], float)
    assert not geo.usable_geometry(flat)
    assert not geo.usable_geometry(project(HEAD, 0)[[1, 0, 2, 4, 3]])  # mirrored
    assert geo.usable_geometry(project(HEAD, 30))
    with pytest.raises(ValueError):
        geo.yaw_proxy(np.zeros((5, 2)))


# ---- decisions on exact geometry, and with MTCNN-level noise -------------------------------------


def test_live_head_answering_the_challenge_is_live():
    r = decide(capture(HEAD, [0, -20, -35, -10, 15, 35, 5]), ["left", "right"], T, tau=0.5)
    assert r.live and r.code == "live", r.reason
    assert r.steps_seen == ["left", "right"]
    assert r.checks["parallax"]["value"] > T.parallax
    assert r.best_frame == 0
    json.dumps(r.to_dict())


def test_plane_is_not_live_even_when_its_turns_are_accepted():
    frames = capture(PHOTO, [0, -35, 35], pitch=20, distance=2.0)
    r = decide(frames, ["left", "right"], T, tau=0.5)
    assert not r.live and r.code == "turns_not_seen"  # a tilted photo hardly changes the yaw proxy
    easy = LivenessThresholds(parallax=T.parallax, turn_yaw=0.005)  # suppose the turns were fooled
    r = decide(frames, [s for s in decide(frames, None, easy, 0.5).steps_seen], easy, tau=0.5)
    assert not r.live and r.code == "no_parallax", r.reason
    assert abs(r.checks["parallax"]["value"]) < 1e-6


def test_mtcnn_level_noise_keeps_both_decisions():
    easy = LivenessThresholds(parallax=T.parallax, turn_yaw=0.002)  # planes get past the turns: parallax decides
    rng = np.random.default_rng(5)
    for trial in range(200):
        head = [FrameObservation(i, project(HEAD, y, noise=NOISE, rng=rng), 80.0, 200.0, np.eye(8)[0])
                for i, y in enumerate([0, -40, 40])]
        assert decide(head, ["left", "right"], T, tau=0.5).live, f"trial {trial}"
        yaws = rng.uniform(-40, 40, 3)
        photo = [FrameObservation(i, project(PHOTO, y, rng.uniform(-25, 25), rng.uniform(-15, 15), distance=2.5,
                                             noise=NOISE, rng=rng), 80.0, 200.0, np.eye(8)[0]) for i, y in enumerate(yaws)]
        r = decide(photo, None, easy, tau=0.5)
        assert not r.live, f"trial {trial}: {r.reason}"


# ---- challenge order, frames, identity ------------------------------------------------------------


def test_turns_in_the_wrong_order_are_refused():
    frames = capture(HEAD, [0, -35, 0, 35])
    assert decide(frames, ["left", "right"], T, 0.5).live
    r = decide(frames, ["right", "left"], T, 0.5)
    assert not r.live and r.code == "wrong_order"
    r = decide(frames, ["left", "right", "left"], T, 0.5)
    assert not r.live and r.code == "turns_not_seen"
    mirrored = decide(frames, ["right", "left"], T, 0.5, mirrored=True)  # a selfie preview swaps the sides
    assert mirrored.live


def test_detect_turns_hysteresis():
    t = LivenessThresholds(turn_yaw=0.2, return_fraction=0.5)
    assert [s for s, _ in detect_turns([0, 0.25, 0.15, 0.3, 0.05, -0.3], t)] == [1, -1]  # 0.15: still turned
    assert [s for s, _ in detect_turns([0, 0.25, 0.05, 0.3], t)] == [1, 1]  # back to the middle in between
    assert [s for s, _ in detect_turns([0, 0.25, -0.25], t)] == [1, -1]  # straight across
    assert detect_turns([], t) == []


def test_identity_change_is_refused():
    a, b = np.eye(8)[0], np.eye(8)[1]  # 1.41 apart
    frames = capture(HEAD, [0, -35, 35])
    frames[2] = FrameObservation(2, frames[2].landmarks, 80.0, 200.0, b)
    r = decide(frames, ["left", "right"], T, tau=0.5)
    assert not r.live and r.code == "identity_changed"
    assert r.checks["identity"]["max_distance"] == pytest.approx(np.sqrt(2), abs=1e-3)
    close = a * 0.96 + b * 0.28  # 0.29 from a
    frames[2] = FrameObservation(2, frames[2].landmarks, 80.0, 200.0, close / np.linalg.norm(close))
    assert decide(frames, ["left", "right"], T, tau=0.5).live


def test_too_few_usable_frames():
    frames = capture(HEAD, [0, -35, 35])
    small = [FrameObservation(o.index, o.landmarks, 10.0, 200.0, o.embedding) for o in frames]
    r = decide(small, ["left", "right"], T, 0.5)
    assert not r.live and r.code == "too_few_usable_frames" and "face too small" in r.reason
    blurry = [FrameObservation(o.index, o.landmarks, 80.0, 1.0, o.embedding) for o in frames]
    assert decide(blurry, ["left", "right"], T, 0.5).code == "too_few_usable_frames"
    none = frames + [FrameObservation(k) for k in range(3, 10)]  # most frames without a face
    r = decide(none, ["left", "right"], T, 0.5)
    assert r.code == "too_few_usable_frames" and r.checks["frames"]["problems"] == {"no face": 7}


# ---- the challenge protocol ------------------------------------------------------------------------


def test_new_challenge_steps_order_and_expiry():
    orders = {new_challenge(rng=random.Random(k)).steps for k in range(40)}
    assert orders == {("left", "right"), ("right", "left")}
    three = {new_challenge(rng=random.Random(k), n_steps=3).steps for k in range(200)}
    assert len(three) == 6 and all(set(s) == {"left", "right"} for s in three)
    c = new_challenge(ttl_s=60, now=1000.0)
    assert not c.expired(1059.9) and c.expired(1060.0)
    assert c.id != new_challenge().id and len(c.id) >= 20
    assert c.to_dict()["instructions"][0].startswith("turn your head")
    with pytest.raises(ValueError):
        Challenge("x", ("left", "left"), 0, 1)
    with pytest.raises(ValueError):
        new_challenge(n_steps=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Result:
    def __init__(self, live: bool) -> None:
        self.live, self.reason = live, "test"


def test_store_consumes_once_and_expires():
    clock = Clock()
    store = ChallengeStore(ttl_s=60, result_ttl_s=30, clock=clock)
    c = store.issue()
    assert store.consume(c.id) is c
    with pytest.raises(ChallengeError) as e:
        store.consume(c.id)
    assert e.value.code == "challenge_used" and "already used" in str(e.value)
    store.record(c.id, Result(True))
    assert store.redeem(c.id).live
    with pytest.raises(ChallengeError) as e:
        store.redeem(c.id)
    assert e.value.code == "challenge_used"

    late = store.issue()
    clock.now += 61
    with pytest.raises(ChallengeError) as e:
        store.consume(late.id)
    assert e.value.code == "challenge_expired"
    with pytest.raises(ChallengeError) as e:
        store.consume("no-such-id")
    assert e.value.code == "challenge_unknown"

    failed = store.issue()
    store.consume(failed.id)
    store.record(failed.id, Result(False))
    with pytest.raises(ChallengeError) as e:
        store.redeem(failed.id)
    assert e.value.code == "liveness_failed"
    slow = store.issue()
    store.consume(slow.id)
    store.record(slow.id, Result(True))
    clock.now += 31
    with pytest.raises(ChallengeError) as e:
        store.redeem(slow.id)
    assert e.value.code == "challenge_expired"
    clock.now += 3600
    store.issue()
    assert len(store) == 1  # stale entries are dropped


def test_store_is_thread_safe_and_bounded():
    store = ChallengeStore(max_entries=5)
    c = store.issue()
    wins, barrier = [], threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        try:
            store.consume(c.id)
            wins.append(1)
        except ChallengeError:
            pass

    threads = [threading.Thread(target=take) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wins == [1]
    for _ in range(10):
        store.issue()
    assert len(store) == 5


# ---- thresholds stored with the model --------------------------------------------------------------


def test_thresholds_from_metadata_and_defaults():
    from facever.bundle import BundleMetadata

    assert LivenessThresholds.from_metadata(BundleMetadata("x", 16, alignment="dlib")) == LivenessThresholds()
    meta = BundleMetadata("x", 16, alignment="dlib", liveness={"thresholds": {"parallax": 0.5, "future_field": 1}})
    assert LivenessThresholds.from_metadata(meta).parallax == 0.5
    assert LivenessThresholds.from_json(LivenessThresholds(turn_yaw=0.3).to_json()).turn_yaw == 0.3


def test_shipped_model_carries_thresholds_and_its_version_is_unchanged(tmp_path):
    from facever import config
    from facever.bundle import ENCODER_FILE, METADATA_FILE, load_bundle, read_metadata, write_metadata

    shipped = config.packaged_model_dir()
    meta = read_metadata(shipped)
    assert meta.liveness is not None, "benchmarks/liveness.py --write-bundle models/default was not run"
    stored = meta.liveness["thresholds"]
    assert LivenessThresholds.from_metadata(meta).parallax == stored["parallax"] > 0
    assert set(meta.liveness["figures"]["apcer"]) >= {"flat_print", "bent_print", "screen", "replay"}
    assert load_bundle(shipped).version == "38afd4e763e47fee"  # the version the 0.3 model shipped with
    # and writing other liveness thresholds into a bundle leaves its version alone
    (tmp_path / ENCODER_FILE).symlink_to(shipped / ENCODER_FILE)
    write_metadata(tmp_path, meta)
    before = load_bundle(tmp_path).version
    meta.liveness = {"thresholds": {"parallax": 9.0}}
    write_metadata(tmp_path, meta)
    assert load_bundle(tmp_path).version == before == "38afd4e763e47fee"
    assert json.loads((tmp_path / METADATA_FILE).read_text())["liveness"]["thresholds"]["parallax"] == 9.0


# ---- the whole path: frames → detector → embeddings → decision -----------------------------------


class ScriptedDetector:
    """Gives the i-th frame it sees the i-th landmark set (a head turning, or a plane), box around them."""

    def __init__(self, landmarks: list[np.ndarray]) -> None:
        self.landmarks = list(landmarks)

    def detect(self, image: np.ndarray):
        from facever.detection import Face

        lm = self.landmarks.pop(0).astype(np.float32)
        (x1, y1), (x2, y2) = lm.min(0) - 40, lm.max(0) + 40
        return [Face(box=(float(x1), float(y1), float(x2), float(y2)), landmarks=lm, score=0.99)]

    def detect_batch(self, images):
        return [self.detect(im) for im in images]


def scripted_capture(points: np.ndarray, yaws: list[float], people: list[int]):
    """A NumPy-model verifier (τ 1.0) whose detector plays ``points`` at ``yaws``, and frames of
    synthetic ``people`` (one per frame) as PNG bytes."""
    import cv2
    from conftest import numpy_verifier, person_image, png_bytes

    verifier = numpy_verifier(threshold=1.0)
    verifier.embedder.detector = ScriptedDetector([project(points, y) for y in yaws])
    frames = [png_bytes(cv2.resize(person_image(p), (640, 480), interpolation=cv2.INTER_NEAREST)) for p in people]
    return verifier, frames


def test_check_liveness_end_to_end_and_identity_change():
    from facever.liveness import check_liveness

    verifier, frames = scripted_capture(HEAD, [0, -35, 35], [1, 1, 1])
    r = check_liveness(frames, ["left", "right"], verifier, thresholds=T)
    assert r.live, r.reason
    assert r.checks["identity"]["compared"] == 2 and r.embedding is not None and r.embedding.shape == (128,)
    verifier, frames = scripted_capture(HEAD, [0, -35, 35], [1, 1, 2])  # someone else in the last frame
    r = check_liveness(frames, ["left", "right"], verifier, thresholds=T)
    assert not r.live and r.code == "identity_changed"
    verifier, frames = scripted_capture(PHOTO, [0, -35, 35], [1, 1, 1])
    assert not check_liveness(frames, ["left", "right"], verifier, thresholds=T).live


def test_check_liveness_refuses_expired_challenges_and_floods():
    from facever.liveness import check_liveness

    verifier, frames = scripted_capture(HEAD, [0, -35, 35], [1, 1, 1])
    old = new_challenge(ttl_s=1, now=0.0)
    r = check_liveness(frames, old, verifier, thresholds=T)
    assert not r.live and r.code == "challenge_expired"
    r = check_liveness(frames * 50, None, verifier, thresholds=LivenessThresholds(max_frames=100))
    assert not r.live and r.code == "too_many_frames"


def test_store_answer_then_redeem_once():
    store = ChallengeStore()
    c = store.issue()
    order = {"left": -35, "right": 35}
    verifier, frames = scripted_capture(HEAD, [0] + [order[s] for s in c.steps], [1, 1, 1])
    result = store.answer(c.id, frames, verifier, thresholds=T)
    assert result.live and result.challenge == {"id": c.id, "steps": list(c.steps)}
    assert store.redeem(c.id) is result
    with pytest.raises(ChallengeError):
        store.answer(c.id, frames, verifier, thresholds=T)


# ---- video files and the command line --------------------------------------------------------------


def write_video(path, frames_rgb: list[np.ndarray], fps: float = 10.0) -> None:
    import cv2

    h, w = frames_rgb[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if str(path).endswith(".avi") else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write video here"
    for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_read_video_frames_subsamples_in_order(tmp_path):
    from facever.errors import ImageError
    from facever.liveness import read_video_frames

    write_video(tmp_path / "ramp.mp4", [np.full((120, 160, 3), 8 * i, np.uint8) for i in range(30)])
    frames = read_video_frames(tmp_path / "ramp.mp4", max_frames=8)
    levels = [float(f.mean()) for f in frames]
    assert len(frames) == 8 and frames[0].shape == (120, 160, 3)
    assert levels == sorted(levels) and levels[0] < 10 and levels[-1] > 200
    with pytest.raises(ImageError, match="no such video"):
        read_video_frames(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ImageError):
        read_video_frames(tmp_path / "junk.mp4")


def photo_turning(photo: np.ndarray, yaws: list[float]) -> list[np.ndarray]:
    """A printed photo turned left and right in front of a camera (a homography per frame): a plane."""
    import cv2

    h, w = photo.shape[:2]
    corners = np.array([[-0.5, -0.5 * h / w, 0], [0.5, -0.5 * h / w, 0], [0.5, 0.5 * h / w, 0], [-0.5, 0.5 * h / w, 0]])
    dist = 1.6  # print widths from the camera: close, strong perspective
    f = 0.9 * w * dist  # seen from the front the print fills 90 % of the frame
    out = []
    for yaw in yaws:
        x = corners @ rotation(yaw, 8.0, 0.0).T + [0, 0, dist]
        dst = (f * x[:, :2] / x[:, 2:3] + [w / 2, h / 2]).astype(np.float32)
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        out.append(cv2.warpPerspective(photo, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=(90, 110, 100)))
    return out


@pytest.fixture(scope="module")
def photo_video(tmp_path_factory, astronaut):
    import cv2

    d = tmp_path_factory.mktemp("live")
    write_video(d / "photo_turn.avi", photo_turning(astronaut, [0, -15, -30, -40, -20, 0, 20, 40, 30, 10, 0]))
    cv2.imwrite(str(d / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return d


def test_cli_live_refuses_a_turned_photo(photo_video):
    from typer.testing import CliRunner

    from facever_cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["verify", str(photo_video / "photo_turn.avi"), str(photo_video / "astronaut.png"),
                              "--live", "--json"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    live = data["liveness"]
    assert live["live"] is False and live["code"] in ("turns_not_seen", "no_parallax"), live
    assert live["checks"]["frames"]["usable"] >= 8  # the face was found: refused for being flat, not unseen
    assert data["same"] is None

    res = runner.invoke(app, ["verify", str(photo_video / "missing.avi"), str(photo_video / "astronaut.png"), "--live"])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error:") and "missing.avi" in res.stderr


def test_cli_live_with_an_enrolled_person(photo_video, tmp_path):
    from typer.testing import CliRunner

    from facever_cli.app import app

    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'g.db'}"
    res = runner.invoke(app, ["enroll", "astronaut", str(photo_video / "astronaut.png"), "--db", db])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["verify", str(photo_video / "photo_turn.avi"), "--person", "astronaut", "--live", "--db", db])
    assert res.exit_code == 1 and "not live" in res.stdout, res.output
    # the same photo as a plain verification is accepted: --live is what refuses it
    res = runner.invoke(app, ["verify", str(photo_video / "astronaut.png"), "--person", "astronaut", "--db", db])
    assert res.exit_code == 0, res.output


def test_liveness_imports_no_training_stack():
    import subprocess
    import sys

    code = ("import sys, facever.liveness\n"
            "from facever.liveness import check_liveness, ChallengeStore, read_video_frames\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'sklearn', 'scipy', 'mtcnn', 'fastapi', 'sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
