"""Security battery of the HTTP API: keys and scopes on every route, hostile uploads and names,
HEAD/OPTIONS, CORS, rate limits, back-pressure, and never a 500 for anything a client sends."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import service_photos as photos  # noqa: E402
from facever.service.app import create_app  # noqa: E402
from facever.service.limits import InferenceLimiter, RateLimiter  # noqa: E402
from facever.service.problems import Problem  # noqa: E402
from facever.service.settings import ServeSettings  # noqa: E402
from service_server import make_key  # noqa: E402

SCOPES = ("verify", "identify", "enroll", "admin")


def _files(kind: str):
    img = ("a.jpg", photos.hopper(), "image/jpeg")
    return {"verify2": {"image1": img, "image2": img}, "one": {"image": img},
            "many": [("images", img)], None: None}[kind]


#: (method, path, scope, body kind) of every /v1 route.
ROUTES = [
    ("POST", "/v1/verify", "verify", "verify2"),
    ("POST", "/v1/identify", "identify", "one"),
    ("POST", "/v1/people/Grace%20Hopper/verify", "identify", "one"),
    ("GET", "/v1/people", "identify", None),
    ("GET", "/v1/people/Grace%20Hopper", "identify", None),
    ("POST", "/v1/people/Grace%20Hopper/faces", "enroll", "many"),
    ("PATCH", "/v1/people/Grace%20Hopper", "admin", "json"),
    ("DELETE", "/v1/people/Nobody", "admin", None),
    ("DELETE", "/v1/people/Grace%20Hopper/faces/999", "admin", None),
    ("GET", "/v1/people/Grace%20Hopper/faces/1/crop", "admin", None),
    ("GET", "/v1/keys", "admin", None),
    ("POST", "/v1/keys", "admin", "json"),
    ("DELETE", "/v1/keys/nobody", "admin", None),
    ("GET", "/v1/audit", "admin", None),
    ("GET", "/v1/model", None, None),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sec")
    db_url = f"sqlite:///{tmp / 'gallery.db'}"
    keys = {scope: make_key(db_url, f"only-{scope}", [scope]) for scope in SCOPES}
    keys["revoked"] = make_key(db_url, "gone", list(SCOPES))
    keys["slow"] = make_key(db_url, "slow", ["verify"], rate_per_min=2)
    from facever.keys import KeyStore
    from facever.store.session import Database
    db = Database(db_url)
    KeyStore(db).revoke("gone")
    db.close()
    with TestClient(create_app(ServeSettings(db=db_url, max_upload=3 * 10**6)), raise_server_exceptions=False) as c:
        c.keys = keys
        c.post("/v1/people/Grace%20Hopper/faces", files=[("images", ("g.jpg", photos.hopper(), "image/jpeg"))],
               headers={"Authorization": f"Bearer {keys['admin']}"})
        yield c


def call(client, method, path, kind, headers=None, params=None):
    body = {"name": "zz-key", "scopes": ["verify"]} if path == "/v1/keys" else {"name": "Grace H"}
    if kind == "json":
        return client.request(method, path, json=body, headers=headers, params=params)
    return client.request(method, path, files=_files(kind), headers=headers, params=params)


@pytest.mark.parametrize("method, path, scope, kind", ROUTES)
def test_every_route_needs_a_valid_key(service, method, path, scope, kind):
    for headers in (None, {"Authorization": "Bearer fv_000000000000_nope-nope-nope-nope"},
                    {"Authorization": f"Bearer {service.keys['revoked']}"}, {"Authorization": "Basic abc"},
                    {"X-API-Key": "garbage" * 1000}):
        r = call(service, method, path, kind, headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["code"] == "unauthorized" and "WWW-Authenticate" in r.headers
    # a key in the query string is ignored
    r = call(service, method, path, kind, params={"key": service.keys["admin"], "api_key": service.keys["admin"]})
    assert r.status_code == 401


@pytest.mark.parametrize("method, path, scope, kind", ROUTES)
def test_every_route_enforces_its_scope(service, method, path, scope, kind):
    for held in SCOPES:
        r = call(service, method, path, kind, {"X-API-Key": service.keys[held]})
        allowed = scope is None or held == scope or held == "admin"
        if allowed:
            assert r.status_code not in (401, 403), (held, r.text)
        else:
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (held, r.text)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "x'; DROP TABLE people;--", "Zoë 李 ✓", "%2F%25", "  pad  "])
def test_hostile_names_round_trip(service, name):
    from urllib.parse import quote

    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    path = "/v1/people/" + quote(name, safe="")
    r = service.post(path + "/faces", files=[("images", ("e.jpg", photos.astronaut(), "image/jpeg"))],
                     headers=admin, params={"allow_duplicate": "true"})
    assert r.status_code == 201, r.text
    assert r.json()["person"] == name
    assert service.get(path, headers=admin).json()["name"] == name
    assert service.delete(path, headers=admin).json()["person"] == name
    assert service.get("/v1/people", headers=admin).json()["total"] == 1  # only Grace Hopper is left


def test_overlong_and_control_character_names_are_422(service):
    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    files = [("images", ("e.jpg", photos.astronaut(), "image/jpeg"))]
    assert service.post("/v1/people/" + "x" * 10_000 + "/faces", files=files, headers=admin).status_code == 422
    assert service.post("/v1/people/a%0Ab/faces", files=files, headers=admin).status_code == 422
    r = service.patch("/v1/people/Grace%20Hopper", json={"name": "y" * 10_000}, headers=admin)
    assert r.status_code == 422


def test_malformed_multipart_and_methods_never_500(service):
    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    bad = [
        service.post("/v1/verify", content=b"--xx\r\nContent-Disposition: form-data; name=\"image1\"\r\n\r\nabc",
                     headers={**admin, "Content-Type": "multipart/form-data; boundary=xx"}),
        service.post("/v1/verify", content=b"garbage", headers={**admin, "Content-Type": "multipart/form-data"}),
        service.post("/v1/identify", headers=admin),
        service.request("HEAD", "/v1/people", headers=admin),
        service.request("OPTIONS", "/v1/verify"),
        service.request("PUT", "/v1/verify", headers=admin),
        service.get("/v1/nothing-here", headers=admin),
        service.get("/v1/people/Grace%20Hopper/faces/notanumber/crop", headers=admin),
        service.get("/v1/audit", params={"since": "yesterday"}, headers=admin),
    ]
    for r in bad:
        assert 400 <= r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text)
        if r.request.method != "HEAD":
            assert r.json()["code"] and "Traceback" not in r.text


def test_cors_is_off_by_default_and_on_when_asked(service, tmp_path):
    r = service.options("/v1/verify", headers={"Origin": "https://evil.example",
                                               "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    settings = ServeSettings(db=f"sqlite:///{tmp_path / 'g.db'}", cors_origins=["https://app.example"])
    with TestClient(create_app(settings)) as c:
        r = c.options("/v1/verify", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert r.headers.get("access-control-allow-origin") == "https://app.example"
        r = c.options("/v1/verify", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers


def test_rate_limit_answers_429(service):
    files = {"image1": ("a.jpg", photos.hopper(), "image/jpeg"), "image2": ("b.jpg", photos.hopper(), "image/jpeg")}
    codes = [service.post("/v1/verify", files=files, headers={"X-API-Key": service.keys["slow"]}).status_code
             for _ in range(3)]
    assert codes[:2] == [200, 200] and codes[2] == 429


def test_rate_limiter_refills():
    now = [0.0]
    rl = RateLimiter(clock=lambda: now[0])
    rl.check("k", 60)  # one token a second, bursts of 60
    for _ in range(59):
        rl.check("k", 60)
    with pytest.raises(Problem) as exc:
        rl.check("k", 60)
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    now[0] += 1.0
    rl.check("k", 60)


def test_inference_limiter_refuses_past_the_queue_at_once():
    limiter = InferenceLimiter(slots=1, queue=1)
    gate = threading.Event()

    async def scenario():
        first = asyncio.ensure_future(limiter.run(gate.wait, 5))
        second = asyncio.ensure_future(limiter.run(lambda: "queued"))
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        with pytest.raises(Problem) as exc:
            await limiter.run(lambda: "too many")
        refused_in = time.perf_counter() - start
        gate.set()
        return await first, await second, exc.value, refused_in

    first, second, problem, refused_in = asyncio.run(scenario())
    assert first is True and second == "queued"
    assert problem.status == 503 and problem.code == "overloaded" and problem.headers["Retry-After"]
    assert refused_in < 0.05
    assert limiter.admitted == 0


def test_security_headers_and_no_auth_identity(tmp_path):
    settings = ServeSettings(db=f"sqlite:///{tmp_path / 'g.db'}", no_auth=True)
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/people")
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    with pytest.raises(ValueError):
        ServeSettings(host="0.0.0.0", no_auth=True).check()


def test_docs_and_page_are_served_without_a_cdn(service):
    docs = service.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert service.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    spec = service.get("/openapi.json").json()
    assert "/v1/verify" in spec["paths"] and "/v1/people/{person}/faces" in spec["paths"]


def test_key_lifecycle_through_the_api_and_revocation_on_the_next_request(service):
    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    r = service.post("/v1/keys", json={"name": "tmp-kiosk", "scopes": ["verify", "identify"]}, headers=admin)
    assert r.status_code == 201 and r.json()["key"].startswith("fv_")
    token = r.json()["key"]
    listed = service.get("/v1/keys", headers=admin).json()["keys"]
    assert "tmp-kiosk" in [k["name"] for k in listed] and token not in str(listed)
    assert service.get("/v1/people", headers={"X-API-Key": token}).status_code == 200
    assert service.post("/v1/keys", json={"name": "tmp-kiosk", "scopes": ["verify"]}, headers=admin).status_code == 409
    assert service.post("/v1/keys", json={"name": "bad name!", "scopes": ["verify"]}, headers=admin).status_code == 422
    assert service.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=admin).status_code == 422
    assert service.delete("/v1/keys/tmp-kiosk", headers=admin).status_code == 200
    assert service.get("/v1/people", headers={"X-API-Key": token}).status_code == 401
    assert service.delete("/v1/keys/nobody", headers=admin).status_code == 404
    actions = [e["action"] for e in service.get("/v1/audit", headers=admin).json()["events"]]
    assert "key_create" in actions and "key_revoke" in actions


def test_database_unreachable_is_503_with_retry_after(service, monkeypatch):
    from facever.errors import DatabaseError

    def down(*_a, **_k):
        raise DatabaseError("gallery.db: database is unreachable (connection refused)")

    monkeypatch.setattr(service.app.state.service.gallery, "sync", down)
    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    r = service.post("/v1/identify", files={"image": ("q.jpg", photos.hopper(), "image/jpeg")}, headers=admin)
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable" and r.headers["Retry-After"]
    r = service.get("/readyz")
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable"
