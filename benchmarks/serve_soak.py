"""Startup and soak halves of ``benchmarks/serve_bench.py``.

* :func:`startup_times`: seconds from ``python -m facever serve`` being started to ``/readyz`` 200.
* :func:`soak`: ``clients`` clients enrol, identify and remove for ``seconds`` against a server with
  several workers; one worker process is SIGKILLed half way (uvicorn starts a new one). Afterwards
  every acknowledged enrolment (201) that was not removed must be present, every acknowledged
  removal absent, ``facever db check`` clean, and no request may have hung (client timeouts).

None of this is part of the installed package.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from serve_load import CLIENT_TIMEOUT_S, RETRY_CAP_S, child_pids, cmdline, percentile_ms, process_cpu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from service_server import free_port, running_server, stop_process, wait_ready  # noqa: E402

#: What a worker logs once its model and gallery are loaded (facever/service/app.py).
READY_LINE = "worker ready"


def startup_times(db_url: str, home: Path, repeats: int, workers: int = 1, args: Sequence[str] = (),
                  poll_s: float = 0.02, timeout_s: float = 60.0) -> list[float]:
    """Seconds from process start to the first ``/readyz`` 200, ``repeats`` times (each a new process,
    stopped afterwards)."""
    times = []
    env = {**os.environ, "FACEVER_HOME": str(home), "FACEVER_THREADS": os.environ.get("FACEVER_THREADS", "1")}
    for _ in range(repeats):
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "facever", "serve", "--port", str(port), "--db", db_url,
                                 "--workers", str(workers), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc, timeout=timeout_s, poll_s=poll_s)
            times.append(time.perf_counter() - t0)
        finally:
            stop_process(proc, timeout=15)
    return times


def worker_pids(server_pid: int) -> list[int]:
    """uvicorn's worker processes under ``server_pid`` (multiprocessing spawn children; not the
    resource tracker)."""
    return sorted(p for p in child_pids(server_pid) if "spawn_main" in cmdline(p))


class _Soak:
    """Shared state of one soak run (see :func:`soak`)."""

    def __init__(self, url: str, key: str, images: dict[str, bytes], deadline: float) -> None:
        self.url, self.key, self.images, self.deadline = url, key, images, deadline
        self.lock = threading.Lock()
        self.records: list[tuple[float, str, Any, float]] = []  # (time, action, status, seconds)
        self.enrolled: dict[str, list[int]] = {}  # acknowledged (201) → face ids
        self.removed: set[str] = set()  # acknowledged removals
        self.uncertain: set[str] = set()  # a write whose answer never came (connection lost, timeout)

    def request(self, client, action: str, method: str, path: str, **kw):
        """One request, retried after 503 until the deadline; ``(status, json | None)``; records every attempt."""
        import httpx

        while True:
            t0 = time.perf_counter()
            try:
                r = client.request(method, path, **kw)
                status, retry = r.status_code, r.headers.get("retry-after")
            except httpx.TimeoutException:
                status, retry, r = "timeout", None, None
            except httpx.HTTPError as exc:
                status, retry, r = type(exc).__name__, None, None
            with self.lock:
                self.records.append((time.time(), action, status, time.perf_counter() - t0))
            if status != 503 or time.monotonic() > self.deadline:
                break
            time.sleep(min(RETRY_CAP_S, float(retry or RETRY_CAP_S)))
        body = None
        if r is not None and r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
        return status, body

    def client(self, c: int, seed: int) -> None:
        import httpx

        rng = random.Random(seed * 1000 + c)
        mine: list[str] = []
        photos = [self.images["a"], self.images["b"]]
        with httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT_S,
                          headers={"Authorization": f"Bearer {self.key}"}) as http:
            i = 0
            while time.monotonic() < self.deadline:
                roll = rng.random()
                if roll < 0.15 and mine:
                    name = mine.pop(rng.randrange(len(mine)))
                    status, _ = self.request(http, "remove", "DELETE", f"/v1/people/{name}")
                    with self.lock:
                        if status == 200:
                            self.removed.add(name)
                        elif not isinstance(status, int) or status >= 500:
                            self.uncertain.add(name)
                elif roll < 0.55:
                    name = f"soak-{seed}-{c}-{i}"
                    i += 1
                    status, body = self.request(http, "enroll", "POST", f"/v1/people/{name}/faces",
                                                params={"allow_duplicate": "true"},
                                                files={"images": ("e.jpg", photos[i % 2], "image/jpeg")})
                    with self.lock:
                        if status == 201 and body:
                            self.enrolled[name] = [im["face_id"] for im in body["images"] if im["face_id"]]
                            mine.append(name)
                        elif not isinstance(status, int) or status >= 500:
                            self.uncertain.add(name)
                else:
                    self.request(http, "identify", "POST", "/v1/identify",
                                 files={"image": ("q.jpg", photos[rng.randrange(2)], "image/jpeg")})


def _kill_one_worker(server_pid: int, at: float, out: dict[str, Any], server_log: Callable[[], str]) -> None:
    """At ``at`` (monotonic), SIGKILL the busiest uvicorn worker (most CPU over half a second, so
    that requests are in flight); record when a new worker process appears and when the log says a
    worker is ready again."""
    time.sleep(max(0.0, at - time.monotonic()))
    before = worker_pids(server_pid)
    out["workers_before"] = len(before)
    if not before:
        out["error"] = "no uvicorn worker process found under the server"
        return
    cpu0 = {p: process_cpu(p) or 0.0 for p in before}
    time.sleep(0.5)
    busy = {p: (process_cpu(p) or 0.0) - cpu0[p] for p in before}
    victim = max(busy, key=busy.get)
    out["worker_cpu_share_before_kill"] = {str(i): round(busy[p] / 0.5, 2) for i, p in enumerate(before)}
    ready0 = server_log().count(READY_LINE)
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    out["killed_at_epoch"] = time.time()
    while time.monotonic() - t0 < 60:
        now = worker_pids(server_pid)
        if "restart_s" not in out and [p for p in now if p not in before] and len(now) >= len(before):
            out["restart_s"] = round(time.monotonic() - t0, 3)
            out["workers_after"] = len(now)
        if server_log().count(READY_LINE) > ready0:
            out["ready_again_s"] = round(time.monotonic() - t0, 3)
        if "restart_s" in out and "ready_again_s" in out:
            return
        time.sleep(0.05)
    out.setdefault("error", "no new worker (or no readiness line) within 60 s")


def _verify_after(url: str, key: str, st: _Soak) -> dict[str, Any]:
    """Every acknowledged enrolment not removed is present with its faces; acknowledged removals are gone."""
    import httpx

    missing, faces_missing, still_there = [], [], []
    keep = {n: ids for n, ids in st.enrolled.items() if n not in st.removed and n not in st.uncertain}
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S, headers={"Authorization": f"Bearer {key}"}) as http:
        for name, ids in keep.items():
            r = http.get(f"/v1/people/{name}")
            if r.status_code != 200:
                missing.append(name)
            elif not set(ids) <= {f["id"] for f in r.json()["faces"]}:
                faces_missing.append(name)
        for name in st.removed:
            if http.get(f"/v1/people/{name}").status_code != 404:
                still_there.append(name)
    return {"acknowledged_enrolments": len(st.enrolled), "acknowledged_removals": len(st.removed),
            "checked_present": len(keep), "uncertain_writes": len(st.uncertain),
            "missing": missing, "faces_missing": faces_missing, "removed_but_present": still_there}


def _summary(records: list[tuple[float, str, Any, float]], seconds: float) -> dict[str, Any]:
    """Per action: attempts, status counts, p50/p95 ms of the successes; totals of timeouts and errors."""
    out: dict[str, Any] = {}
    for action in ("enroll", "identify", "remove"):
        rows = [r for r in records if r[1] == action]
        ok = [r[3] for r in rows if r[2] in (200, 201)]
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
        out[action] = {"attempts": len(rows), "ok_per_s": round(len(ok) / seconds, 3), "statuses": statuses,
                       "p50_ms": _r(percentile_ms(ok, 50)), "p95_ms": _r(percentile_ms(ok, 95)),
                       "max_ms": _r(max(ok) * 1e3 if ok else None)}
    statuses = [str(r[2]) for r in records]
    out["timeouts"] = statuses.count("timeout")
    out["connection_errors"] = sum(1 for s in statuses if not s.isdigit() and s != "timeout")
    out["other_5xx"] = sum(1 for s in statuses if s.isdigit() and int(s) >= 500 and s != "503")
    out["status_4xx"] = sum(1 for s in statuses if s.isdigit() and 400 <= int(s) < 500)
    out["max_request_s"] = round(max((r[3] for r in records), default=0.0), 3)
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def soak(tmp: Path, db_url: str, images: dict[str, bytes], seconds: float, clients: int = 4, workers: int = 2,
         args: Sequence[str] = (), seed: int = 0) -> dict[str, Any]:
    """The mixed soak (module docstring); JSON-ready results, ``passed`` included."""
    kill: dict[str, Any] = {}
    with running_server(tmp, workers=workers, args=list(args), db_url=db_url) as srv:
        st = _Soak(srv.url, srv.admin_key, images, time.monotonic() + seconds)
        killer = threading.Thread(target=_kill_one_worker, args=(srv.proc.pid, time.monotonic() + seconds / 2, kill, srv.log),
                                  daemon=True)
        threads = [threading.Thread(target=st.client, args=(c, seed), daemon=True) for c in range(clients)]
        t0, epoch0 = time.perf_counter(), time.time()
        killer.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 2 * CLIENT_TIMEOUT_S + 30)
        hung_threads = sum(t.is_alive() for t in threads)
        elapsed = time.perf_counter() - t0
        killer.join(5)
        time.sleep(1.0)  # let a freshly restarted worker finish starting before the checks
        check = _verify_after(srv.url, srv.admin_key, st)
        log = srv.log()
    db_check = subprocess.run([sys.executable, "-m", "facever", "db", "check", "--db", db_url, "--json"],
                              capture_output=True, text=True, env={**os.environ, "FACEVER_HOME": str(tmp / "home")})
    try:
        report = json.loads(db_check.stdout)
    except json.JSONDecodeError:
        report = {"ok": False, "problems": [db_check.stderr.strip()[-500:]]}
    summary = _summary(st.records, elapsed)
    if "killed_at_epoch" in kill:
        kill["killed_at_s"] = round(kill.pop("killed_at_epoch") - epoch0, 2)
    passed = (not check["missing"] and not check["faces_missing"] and not check["removed_but_present"]
              and db_check.returncode == 0 and report.get("ok") is True and summary["timeouts"] == 0
              and hung_threads == 0 and "restart_s" in kill and summary["other_5xx"] == 0)
    return {"seconds": round(elapsed, 1), "clients": clients, "workers": workers, "requests": len(st.records),
            "summary": summary, "kill": kill, "check": check, "hung_client_threads": hung_threads,
            "db_check": {"ok": report.get("ok"), "exit_code": db_check.returncode,
                         "problems": report.get("problems"), "counts": report.get("counts")},
            "server_tracebacks": log.count("Traceback"), "timeline": latency_timeline(sorted(st.records), epoch0),
            "passed": bool(passed)}


def latency_timeline(records: Sequence[tuple[float, str, Any, float]], t0: float,
                     bucket_s: float = 10.0) -> list[dict]:
    """Successes and their p95 (ms) per ``bucket_s`` window from ``t0`` (epoch seconds): the dip
    around the kill shows here."""
    buckets: dict[int, list[float]] = {}
    for t, _, status, s in records:
        if status in (200, 201):
            buckets.setdefault(int((t - t0) // bucket_s), []).append(s)
    return [{"t_s": k * bucket_s, "ok": len(v), "p95_ms": _r(float(np.percentile(v, 95)) * 1e3)}
            for k, v in sorted(buckets.items())]
