"""Liveness over HTTP: challenges shared through the database, answered once, redeemed once, and the
person-verify gate that requires the same face as the one that passed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

import service_photos as photos  # noqa: E402
from facever.api import FaceVerifier  # noqa: E402
from facever.liveness import LivenessResult  # noqa: E402
from facever.liveness.shared_store import DatabaseChallengeStore  # noqa: E402
from facever.service.app import create_app  # noqa: E402
from facever.service.settings import ServeSettings  # noqa: E402
from facever.store.session import Database  # noqa: E402
from service_server import make_key  # noqa: E402


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    db_url = f"sqlite:///{tmp / 'gallery.db'}"
    key = make_key(db_url, "admin", ["admin"])
    with TestClient(create_app(ServeSettings(db=db_url))) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        client.db_url = db_url
        client.post("/v1/people/Eileen%20Collins/faces", files=[("images", ("e.jpg", photos.astronaut(), "image/jpeg"))])
        yield client


def tilted_print_frames(n: int = 9) -> list[bytes]:
    """A flat photo turned in front of the camera (a homography per frame): the classic print attack."""
    img = cv2.cvtColor(photos.astronaut_rgb(), cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    frames = []
    for yaw in np.linspace(-0.35, 0.35, n):
        shrink = w * 0.25 * abs(yaw)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        near, far = (0, shrink) if yaw > 0 else (shrink, 0)
        dst = np.float32([[0, near], [w, far], [w, h - far], [0, h - near]])
        warped = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h))
        frames.append(cv2.imencode(".jpg", warped)[1].tobytes())
    return frames + frames[::-1]


def test_challenge_answer_is_single_use_and_a_print_is_refused(service):
    r = service.post("/v1/liveness/challenge")
    assert r.status_code == 201
    challenge = r.json()
    assert set(challenge["steps"]) == {"left", "right"} and challenge["instructions"]
    files = [("frames", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(tilted_print_frames())]
    r = service.post(f"/v1/liveness/{challenge['id']}", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["live"] is False and r.json()["reason"]
    again = service.post(f"/v1/liveness/{challenge['id']}", files=files)
    assert again.status_code == 409 and again.json()["code"] == "challenge_used"
    r = service.post("/v1/people/Eileen%20Collins/verify", params={"liveness": challenge["id"]},
                     files={"image": ("q.jpg", photos.astronaut(), "image/jpeg")})
    assert r.status_code == 403 and r.json()["code"] == "liveness_failed"
    r = service.post("/v1/liveness/not-a-challenge", files=files)
    assert r.status_code == 404 and r.json()["code"] == "challenge_unknown"


def test_verify_person_needs_a_passed_challenge_for_the_same_face(service):
    db = Database(service.db_url)
    book = DatabaseChallengeStore(db)  # another process's book on the same database
    verifier = FaceVerifier()
    live_face = verifier.embed(photos.astronaut_mirrored())
    ids = []
    for _ in range(2):
        challenge = book.issue()
        book.consume(challenge.id)
        book.record(challenge.id, LivenessResult(live=True, code="live", reason="passed", checks={},
                                                 challenge={"id": challenge.id, "steps": list(challenge.steps)},
                                                 steps_seen=list(challenge.steps), best_frame=0, embedding=live_face))
        ids.append(challenge.id)
    db.close()
    photo = {"image": ("q.jpg", photos.astronaut(), "image/jpeg")}
    r = service.post("/v1/people/Eileen%20Collins/verify", params={"liveness": ids[0]}, files=photo)
    assert r.status_code == 200, r.text
    assert r.json()["same"] is True and r.json()["liveness"]["live"] is True
    r = service.post("/v1/people/Eileen%20Collins/verify", params={"liveness": ids[0]}, files=photo)
    assert r.status_code == 409 and r.json()["code"] == "challenge_used"
    other = {"image": ("q.jpg", photos.hopper(), "image/jpeg")}
    r = service.post("/v1/people/Eileen%20Collins/verify", params={"liveness": ids[1]}, files=other)
    assert r.status_code == 403 and r.json()["code"] == "liveness_face_mismatch"


def test_expired_challenge_is_refused(tmp_path):
    now = [1000.0]
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    book = DatabaseChallengeStore(db, ttl_s=5, clock=lambda: now[0])
    challenge = book.issue()
    now[0] += 6
    from facever.liveness import ChallengeError

    with pytest.raises(ChallengeError) as exc:
        book.consume(challenge.id)
    assert exc.value.code == "challenge_expired"
    db.close()
