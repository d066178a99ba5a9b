"""The HTTP API in-process (FastAPI's TestClient): answers, figures equal to the library's, errors.

The real shipped model and real faces (see service_photos.py); a SQLite gallery per module.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import service_photos as photos  # noqa: E402
from facever.api import FaceVerifier  # noqa: E402
from facever.service.app import create_app  # noqa: E402
from facever.service.settings import ServeSettings  # noqa: E402
from service_server import make_key  # noqa: E402

EILEEN = "Eileen Collins"
GRACE = "Grace Hopper"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svc")
    db_url = f"sqlite:///{tmp / 'gallery.db'}"
    keys = {name: make_key(db_url, name, scopes) for name, scopes in
            [("admin", ["admin"]), ("kiosk", ["verify"]), ("door", ["identify"]), ("hr", ["enroll"])]}
    settings = ServeSettings(db=db_url, max_upload=2 * 10**6, concurrency=2)
    with TestClient(create_app(settings)) as client:
        client.keys = keys
        yield client


def auth(client, name: str) -> dict:
    return {"Authorization": f"Bearer {client.keys[name]}"}


def enrol(client, person: str, *images: bytes, key: str = "admin", **params):
    files = [("images", (f"photo{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    return client.post(f"/v1/people/{person}/faces", files=files, headers=auth(client, key), params=params)


def test_health_and_readiness(service):
    assert service.get("/healthz").json() == {"status": "ok"}
    ready = service.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model_version"] == FaceVerifier().model_version


def test_verify_same_and_different_with_the_library_figures(service):
    files = {"image1": ("a.jpg", photos.astronaut(), "image/jpeg"),
             "image2": ("b.jpg", photos.astronaut_mirrored(), "image/jpeg")}
    r = service.post("/v1/verify", files=files, headers=auth(service, "kiosk"))
    assert r.status_code == 200, r.text
    body = r.json()
    lib = FaceVerifier().verify(photos.astronaut(), photos.astronaut_mirrored()).to_dict()
    assert body["same"] is True and body["inputs"] == ["a.jpg", "b.jpg"]
    assert body["distance"] == pytest.approx(lib["distance"], abs=1e-6)
    assert {k: v for k, v in body.items() if k not in ("distance", "inputs")} == \
        {k: v for k, v in lib.items() if k != "distance"}
    files["image2"] = ("c.jpg", photos.hopper(), "image/jpeg")
    body = service.post("/v1/verify", files=files, headers=auth(service, "kiosk")).json()
    assert body["same"] is False and body["distance"] > body["threshold"]
    assert len(body["faces"]) == 2 and len(body["faces"][0]["box"]) == 4


def test_enrol_identify_verify_person(service):
    r = enrol(service, EILEEN, photos.astronaut(), photos.astronaut_mirrored(), key="hr")
    assert r.status_code == 201, r.text
    assert r.json()["enrolled"] == 2 and [i["source"] for i in r.json()["images"]] == ["photo0.jpg", "photo1.jpg"]
    again = enrol(service, EILEEN, photos.astronaut(), key="hr")
    assert again.status_code == 200 and again.json()["images"][0]["status"] == "skipped"
    assert enrol(service, GRACE, photos.hopper(), key="hr").status_code == 201

    r = service.post("/v1/identify", files={"image": ("q.jpg", photos.hopper_mirrored(), "image/jpeg")},
                     headers=auth(service, "door"), params={"top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gallery"] == {"people": 2, "faces": 3}
    face = body["faces"][0]
    assert face["person"] == GRACE and face["known"] is True and len(face["candidates"]) == 2
    assert face["threshold_policy"] == body["threshold_policy"] and face["expected_fpir"] is not None
    assert body["image"] == "q.jpg" and face["face"]["box"]

    r = service.post(f"/v1/people/{EILEEN}/verify", files={"image": ("q.jpg", photos.astronaut(), "image/jpeg")},
                     headers=auth(service, "door"))
    assert r.status_code == 200 and r.json()["same"] is True and r.json()["person"] == EILEEN
    r = service.post(f"/v1/people/{EILEEN}/verify", files={"image": ("q.jpg", photos.hopper(), "image/jpeg")},
                     headers=auth(service, "door"))
    assert r.status_code == 200 and r.json()["same"] is False


def test_duplicate_identity_is_refused_with_409(service):
    enrol(service, EILEEN, photos.astronaut())
    r = enrol(service, "Someone Else", photos.astronaut_mirrored())
    assert r.status_code == 409 and r.json()["code"] == "duplicate_identity"
    assert r.json()["report"]["images"][0]["status"] == "refused"
    assert service.get("/v1/people/Someone Else", headers=auth(service, "admin")).status_code == 404
    r = enrol(service, "Someone Else", photos.astronaut_mirrored(), allow_duplicate="true")
    assert r.status_code == 201
    assert service.delete("/v1/people/Someone Else", headers=auth(service, "admin")).status_code == 200


def test_enrolment_warns_about_a_look_alike(service):
    """A worse photo of Eileen under a new name passes the duplicate gate and is enrolled (201), and
    the report names her in ``look_alikes``; Grace Hopper is someone else: an empty list."""
    enrol(service, EILEEN, photos.astronaut())
    r = enrol(service, "Look Alike", photos.astronaut_degraded(), key="hr")
    assert r.status_code == 201 and r.json()["enrolled"] == 1
    alikes = r.json()["look_alikes"]
    assert [a["name"] for a in alikes] == [EILEEN]
    assert alikes[0]["source"] == "photo0.jpg" and 0 < alikes[0]["distance"] <= alikes[0]["threshold"]
    r = enrol(service, GRACE, photos.hopper_mirrored())  # a new face of hers (new person or not)
    assert r.status_code == 201 and r.json()["enrolled"] == 1 and r.json()["look_alikes"] == []
    assert service.delete("/v1/people/Look Alike", headers=auth(service, "admin")).status_code == 200


def test_people_paging_search_rename_crop_and_removal(service):
    enrol(service, GRACE, photos.hopper())
    page = service.get("/v1/people", params={"limit": 1}, headers=auth(service, "door")).json()
    assert page["total"] >= 2 and len(page["people"]) == 1
    found = service.get("/v1/people", params={"q": "hopp"}, headers=auth(service, "door")).json()
    assert [p["name"] for p in found["people"]] == [GRACE]
    detail = service.get(f"/v1/people/{GRACE}", headers=auth(service, "door")).json()
    face_id = detail["faces"][0]["id"]

    crop = service.get(f"/v1/people/{GRACE}/faces/{face_id}/crop", headers=auth(service, "admin"))
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg" and crop.content[:2] == b"\xff\xd8"
    assert service.get(f"/v1/people/{GRACE}/faces/{face_id}/crop", headers=auth(service, "door")).status_code == 403
    assert service.get(f"/v1/people/{EILEEN}/faces/{face_id}/crop",  # another person's face id
                       headers=auth(service, "admin")).json()["code"] == "face_not_found"

    r = service.patch(f"/v1/people/{GRACE}", json={"name": "Rear Admiral Hopper"}, headers=auth(service, "admin"))
    assert r.status_code == 200 and r.json()["name"] == "Rear Admiral Hopper"
    r = service.patch("/v1/people/Rear Admiral Hopper", json={"name": EILEEN}, headers=auth(service, "admin"))
    assert r.status_code == 409 and r.json()["code"] == "person_exists"
    r = service.delete(f"/v1/people/Rear Admiral Hopper/faces/{face_id}", headers=auth(service, "admin"))
    assert r.status_code == 200 and r.json()["face_id"] == face_id
    r = service.delete("/v1/people/Rear Admiral Hopper", headers=auth(service, "admin"))
    assert r.status_code == 200
    assert service.get("/v1/people/Rear Admiral Hopper", headers=auth(service, "admin")).json()["code"] == \
        "person_not_found"

    events = service.get("/v1/audit", headers=auth(service, "admin")).json()["events"]
    actions = {(e["action"], e["actor"]) for e in events}
    assert ("rename", "admin") in actions and ("remove", "admin") in actions and ("enroll", "hr") in actions


def test_model_route(service):
    body = service.get("/v1/model", headers=auth(service, "kiosk")).json()
    verifier = FaceVerifier()
    assert body["version"] == verifier.model_version and body["threshold"]["value"] == verifier.threshold
    assert body["open_set"] is True and 0 < body["default_fpir"] < 1


@pytest.mark.parametrize("payload, status, code", [
    (photos.blank, 400, "no_face"),
    (lambda: b"this is not an image at all", 415, "unsupported_media_type"),
    (lambda: photos.astronaut()[:5000], 400, "bad_image"),
    (lambda: b"\xff\xd8\xff" + b"\x00" * 10, 400, "bad_image"),
])
def test_bad_images_are_problem_details(service, payload, status, code):
    files = {"image1": ("a.jpg", payload(), "image/jpeg"), "image2": ("b.jpg", photos.hopper(), "image/jpeg")}
    r = service.post("/v1/verify", files=files, headers=auth(service, "kiosk"))
    assert r.status_code == status, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == code and body["status"] == status and body["type"].endswith(code)
    assert body["instance"] == "/v1/verify" and "Traceback" not in r.text


def test_upload_limits(service):
    big = photos.jpeg(photos.astronaut_rgb(), 100) * 20  # > the 2 MB limit of this fixture
    r = service.post("/v1/identify", files={"image": ("big.jpg", big, "image/jpeg")}, headers=auth(service, "door"))
    assert r.status_code == 413 and r.json()["code"] == "upload_too_large"
    import zlib, struct  # a decompression bomb: 30000 x 30000 grey pixels in a few kB of PNG
    w = h = 30000
    raw = zlib.compress(b"\x00" * (w + 1) * 64, 9)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    r = service.post("/v1/identify", files={"image": ("bomb.png", bomb, "image/png")}, headers=auth(service, "door"))
    assert r.status_code == 413 and r.json()["code"] == "upload_too_large"
    files = [("images", (f"p{i}.jpg", b"x", "image/jpeg")) for i in range(21)]
    r = service.post("/v1/people/x/faces", files=files, headers=auth(service, "admin"))
    assert r.status_code == 413


def test_parameter_errors_are_422(service):
    files = {"image": ("q.jpg", photos.hopper(), "image/jpeg")}
    for params in ({"top_k": 0}, {"fpir": 1.5}, {"faces": "some"}, {"top_k": "many"}):
        r = service.post("/v1/identify", files=files, params=params, headers=auth(service, "door"))
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", params
    r = service.post("/v1/identify", json={"image": "x"}, headers=auth(service, "door"))
    assert r.status_code == 415
    r = service.patch(f"/v1/people/{EILEEN}", json={"nom": "x"}, headers=auth(service, "admin"))
    assert r.status_code == 422
