"""A real ``facever serve`` (uvicorn) on a free loopback port, for end-to-end and browser tests.

>>> with running_server(tmp_path) as srv:          # doctest: +SKIP
...     httpx.get(srv.url + "/readyz")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerHandle:
    """A running service: its base ``url``, database, an admin key, the process and its log file."""

    url: str
    db_url: str
    admin_key: str
    proc: subprocess.Popen
    log_path: Path
    port: int
    env: dict = field(default_factory=dict)

    def make_key(self, name: str, scopes: Sequence[str], rate_per_min: int | None = None) -> str:
        """Create a key in the server's database; return its plaintext."""
        return make_key(self.db_url, name, scopes, rate_per_min)

    def log(self) -> str:
        """What the server wrote so far."""
        return self.log_path.read_text(errors="replace")


def make_key(db_url: str, name: str, scopes: Sequence[str], rate_per_min: int | None = None) -> str:
    """Create an API key in the gallery at ``db_url``; return its plaintext."""
    from facever.keys import KeyStore
    from facever.store.session import Database

    db = Database(db_url, create=True)
    try:
        return KeyStore(db).create(name, list(scopes), rate_per_min)[1]
    finally:
        db.close()


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0, poll_s: float = 0.05) -> float:
    """Poll ``url/readyz`` until 200; return the seconds it took. Raises RuntimeError on timeout/exit."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1.0).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    raise RuntimeError(f"server at {url} not ready after {timeout} s")


@contextmanager
def running_server(tmp_path: Path, workers: int = 1, args: Sequence[str] = (), db_url: str | None = None,
                   with_admin_key: bool = True) -> Iterator[ServerHandle]:
    """Start ``python -m facever serve`` on a free loopback port with a gallery under ``tmp_path``."""
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    db_url = db_url or f"sqlite:///{tmp_path / 'gallery.db'}"
    admin = make_key(db_url, f"admin-{free_port()}", ["admin"]) if with_admin_key else ""
    port = free_port()
    env = {**os.environ, "FACEVER_HOME": str(tmp_path / "home"), "FACEVER_THREADS": "1"}
    log_path = tmp_path / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "facever", "serve", "--port", str(port), "--db", db_url,
                                 "--workers", str(workers), *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    handle = ServerHandle(url, db_url, admin, proc, log_path, port, env)
    try:
        try:
            wait_ready(url, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; server log:\n{handle.log()[-3000:]}") from None
        yield handle
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``timeout`` seconds) and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
