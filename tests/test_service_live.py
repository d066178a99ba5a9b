"""End to end against a real uvicorn server on a free loopback port: startup, several workers on one
gallery, a slow body that must not hold an inference slot, the access log, refusals at start."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import service_photos as photos  # noqa: E402
from service_server import free_port, running_server  # noqa: E402


def _auth(srv) -> dict:
    return {"Authorization": f"Bearer {srv.admin_key}"}


def _identify(url: str, headers: dict) -> str | None:
    with httpx.Client(timeout=30) as c:  # a new connection each time: any worker may answer
        r = c.post(url + "/v1/identify", files={"image": ("q.jpg", photos.hopper_mirrored(), "image/jpeg")},
                   headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["faces"][0]["person"]


def test_two_workers_see_each_others_writes_at_once(tmp_path):
    with running_server(tmp_path, workers=2) as srv:
        headers = _auth(srv)
        assert _identify(srv.url, headers) is None  # both workers have loaded the (empty) gallery...
        assert _identify(srv.url, headers) is None
        r = httpx.post(srv.url + "/v1/people/Grace%20Hopper/faces", headers=headers, timeout=30,
                       files=[("images", ("g.jpg", photos.hopper(), "image/jpeg"))])
        assert r.status_code == 201, r.text
        pids = set()
        for _ in range(8):  # ...and every later identify, by either worker, sees the enrolment
            assert _identify(srv.url, headers) == "Grace Hopper"
        assert httpx.delete(srv.url + "/v1/people/Grace%20Hopper", headers=headers).status_code == 200
        for _ in range(8):
            assert _identify(srv.url, headers) is None
        log = srv.log()
        assert "POST /v1/identify 200" in log and f"key={srv.admin_key.split('_')[0]}" not in log
        assert srv.admin_key not in log and "Bearer" not in log
        del pids


def test_slow_body_times_out_without_holding_the_inference_slot(tmp_path):
    with running_server(tmp_path, args=["--concurrency", "1", "--queue", "0", "--body-timeout", "1.5"]) as srv:
        body = b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v1/identify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + srv.admin_key.encode() +
                  b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n" + body)
        # while that client trickles, the only inference slot is free for others
        files = {"image1": ("a.jpg", photos.hopper(), "image/jpeg"), "image2": ("b.jpg", photos.hopper(), "image/jpeg")}
        r = httpx.post(srv.url + "/v1/verify", files=files, headers=_auth(srv), timeout=30)
        assert r.status_code == 200, r.text
        s.settimeout(10)
        answer = b""
        start = time.perf_counter()
        while b"\r\n\r\n" not in answer and time.perf_counter() - start < 10:
            s.sendall(b"x")
            time.sleep(0.2)
            try:
                s.setblocking(False)
                answer += s.recv(4096)
            except (BlockingIOError, ConnectionError):
                pass
            finally:
                s.setblocking(True)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def _serve(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facever", "serve", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_refuses_unsafe_binds_with_one_line(tmp_path):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    r = _serve("--host", "0.0.0.0", "--port", str(free_port()), "--db", db)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "without API keys" in r.stderr
    r = _serve("--host", "0.0.0.0", "--no-auth", "--db", db)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "loopback" in r.stderr
    r = _serve("--max-upload", "lots", "--db", db)
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_python_client_mirrors_the_library(tmp_path):
    from facever import NoFaceError, PersonNotFoundError
    from facever.api import FaceVerifier
    from facever.client import Client, ServiceError

    with running_server(tmp_path) as srv:
        client = Client(srv.url, srv.admin_key)
        result = client.verify(photos.astronaut(), photos.hopper())
        lib = FaceVerifier().verify(photos.astronaut(), photos.hopper())
        assert result.same is False and abs(result.distance - lib.distance) < 1e-6
        report = client.enroll("Grace Hopper", [photos.hopper(), photos.hopper()])
        assert report.enrolled == 1 and report.skipped == 1
        faces = client.identify(photos.hopper_mirrored())
        assert faces[0].person == "Grace Hopper" and faces[0].expected_fpir is not None
        assert [p.name for p in client.people()] == ["Grace Hopper"]
        assert client.verify_person(photos.hopper_mirrored(), "Grace Hopper").same
        client.rename("Grace Hopper", "G. Hopper")
        assert client.remove("G. Hopper") == 1
        with pytest.raises(NoFaceError):
            client.identify(photos.blank())
        with pytest.raises(PersonNotFoundError):
            client.remove("Nobody")
        with pytest.raises(ServiceError) as exc:
            Client(srv.url, "fv_000000000000_wrongwrongwrongwrong").people()
        assert exc.value.status == 401 and exc.value.code == "unauthorized"


@pytest.mark.postgres
def test_two_workers_on_postgresql_share_one_gallery(tmp_path, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("the SQLite case is test_two_workers_see_each_others_writes_at_once")
    with running_server(tmp_path, workers=2, db_url=db_url) as srv:
        headers = _auth(srv)
        assert _identify(srv.url, headers) is None
        r = httpx.post(srv.url + "/v1/people/Grace%20Hopper/faces", headers=headers, timeout=30,
                       files=[("images", ("g.jpg", photos.hopper(), "image/jpeg"))])
        assert r.status_code == 201, r.text
        for _ in range(6):
            assert _identify(srv.url, headers) == "Grace Hopper"
        index = httpx.post(srv.url + "/v1/identify", headers=headers, timeout=30,
                           files={"image": ("q.jpg", photos.hopper(), "image/jpeg")}).json()["index"]
        assert index["backend"] == "pgvector", index
        assert httpx.delete(srv.url + "/v1/people/Grace%20Hopper", headers=headers).status_code == 200
        for _ in range(6):
            assert _identify(srv.url, headers) is None
