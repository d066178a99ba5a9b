"""Start a private, throw-away PostgreSQL server for the store tests (no system service touched).

Uses the PostgreSQL binaries Debian installs under ``/usr/lib/postgresql/*/bin`` (or ``pg_ctl`` on
PATH). ``initdb`` refuses to run as root, so as root the data directory is handed to the
``postgres`` system user and the commands run through ``su``. The server listens on a free
loopback port with its socket in the temporary directory, and is stopped by :meth:`stop`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class PrivateServer:
    url: str
    data_dir: str
    bindir: str
    as_postgres: bool

    def stop(self) -> None:
        _run(self.bindir, ["pg_ctl", "-D", self.data_dir, "-m", "immediate", "stop"], self.as_postgres, check=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("pg_ctl")
    return os.path.dirname(on_path) if on_path else None


def _run(bindir: str, args: list[str], as_postgres: bool, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [os.path.join(bindir, args[0])] + args[1:]
    if as_postgres:
        cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(c) for c in cmd)]
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_private_server() -> tuple[PrivateServer | None, str]:
    """``(server, "")`` or ``(None, reason)``."""
    bindir = _bindir()
    if bindir is None:
        return None, "no PostgreSQL server installed (Debian: apt-get install postgresql)"
    try:
        import psycopg2  # noqa: F401  (the driver the store tests use)
    except ImportError:
        return None, "psycopg2 is not installed (pip install '.[postgres]')"
    as_postgres = os.geteuid() == 0
    data_dir = tempfile.mkdtemp(prefix="facever-pg-")
    try:
        if as_postgres:
            shutil.chown(data_dir, "postgres")
        _run(bindir, ["initdb", "-D", data_dir, "-A", "trust", "-U", "postgres"], as_postgres)
        port = _free_port()
        opts = f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(bindir, ["pg_ctl", "-D", data_dir, "-o", opts, "-l", os.path.join(data_dir, "log"), "-w", "start"], as_postgres)
        _run(bindir, ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "facever_test"], as_postgres)
    except (subprocess.SubprocessError, OSError, KeyError, LookupError) as exc:
        shutil.rmtree(data_dir, ignore_errors=True)
        return None, f"could not start a private PostgreSQL server ({exc})"
    return PrivateServer(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/facever_test", data_dir, bindir, as_postgres), ""
