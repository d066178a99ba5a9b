"""The load half of ``benchmarks/serve_bench.py``: synthetic galleries, a bounded closed-loop load
generator (threads), and the operations it drives over HTTP and in-process through the library.

* :func:`synthetic_gallery`: a SQLite gallery of ``n`` random unit vectors (128-d float32, 4 faces per
  person) written through the store (``repository.add_face``) with one dummy 112×112 grey crop. Such a
  gallery is only good for timing a search: no query is anyone in it.
* :func:`run_level`: ``clients`` threads share a fixed number of jobs and stop by themselves when the
  jobs are done. A 503 is retried after its ``Retry-After`` (capped), as a well-behaved client would;
  every attempt's status and latency is kept.
* :func:`level_stats`: throughput of completed jobs, p50/p95/p99 of the 200s, the status counts.
* :class:`HttpOps` / :class:`LibraryOps`: verify, identify and enrol, one call = one job.

None of this is part of the installed package.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

#: Longest pause after a 503, seconds (the server says 1 s).
RETRY_CAP_S = 1.0

#: Attempts per job before it is given up (only 503s are retried).
MAX_ATTEMPTS = 60

#: Client-side timeout of one HTTP request, seconds (a request slower than this counts as hung).
CLIENT_TIMEOUT_S = 30.0


# ----------------------------------------------------------------------------------------------
# Synthetic galleries
# ----------------------------------------------------------------------------------------------


def synthetic_gallery(db_url: str, n_faces: int, verifier, faces_per_person: int = 4, seed: int = 0,
                      chunk: int = 5000) -> float:
    """Write ``n_faces`` random unit vectors of ``verifier``'s model into a new gallery; seconds taken.

    People are named ``synthetic NNNNNN`` with ``faces_per_person`` faces each. One write transaction
    per ``chunk`` faces; the last one is audited (``bench-seed``) so the change counter moves.
    """
    from facever.gallery import encode_png
    from facever.gallery.records import _metadata_json
    from facever.store import Database
    from facever.store import repository as repo
    from facever.store.audit_repo import record_write

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    dim = int(verifier.bundle.metadata.embedding_dim)
    version = verifier.model_version
    meta = _metadata_json(verifier)
    crop = encode_png(np.full((112, 112, 3), 128, np.uint8))
    db = Database(db_url, create=True)
    try:
        for start in range(0, n_faces, chunk):
            stop = min(n_faces, start + chunk)
            vectors = rng.standard_normal((stop - start, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with db.write() as session:
                repo.ensure_model(session, version, meta)
                person = None
                for i, vector in zip(range(start, stop), vectors):
                    if person is None or i % faces_per_person == 0:
                        person = repo.get_or_create_person(session, f"synthetic {i // faces_per_person:06d}")
                    face = repo.NewFace(crop_png=crop, source="synthetic", sha256=f"{seed:04d}{i:060d}",
                                        box=[0.0, 0.0, 112.0, 112.0], landmarks=[[0.0, 0.0]] * 5,
                                        detector_score=1.0, quality={"face_size": 112.0})
                    repo.add_face(session, person.id, face, version, vector)
                if stop == n_faces:
                    record_write(session, "bench-seed", "enroll", None, [], {"synthetic_faces": n_faces})
    finally:
        db.close()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------
# The load generator
# ----------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One request: ``status`` (HTTP status, or an error name such as ``timeout``), seconds, job id."""

    status: int | str
    seconds: float
    job: int


@dataclass
class LevelRun:
    """Everything one concurrency level measured."""

    clients: int
    jobs: int
    wall_s: float
    attempts: list[Attempt] = field(default_factory=list)
    job_seconds: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)  # seconds from the start when each job succeeded
    steady_s: float = 0.0  # seconds until the first client found no job left (all clients busy until then)
    done: int = 0
    cpu_s: float = 0.0  # this process's CPU time during the level
    server_cpu_s: float | None = None


#: ``call(job) → (status, retry_after_s | None)``; one callable per client thread.
Call = Callable[[int], tuple[Any, float | None]]


def run_level(make_call: Callable[[int], tuple[Call, Callable[[], None]]], clients: int, jobs: int,
              server_pid: int | None = None) -> LevelRun:
    """Run ``jobs`` jobs with ``clients`` concurrent clients (threads); returns when all are done.

    Args:
        make_call: ``client index → (call, close)``; ``call(job)`` does one attempt and returns its
            status (200 = success) and the ``Retry-After`` seconds of a 503.
        clients: concurrent clients (threads), each with its own call (and connection).
        jobs: jobs shared by the clients (a job is retried after a 503 until it succeeds or fails
            otherwise, at most :data:`MAX_ATTEMPTS` times).
        server_pid: a process whose CPU time (with its children) is measured over the level.
    """
    counter = itertools.count()
    lock = threading.Lock()
    run = LevelRun(clients, jobs, 0.0)
    calls = [make_call(c) for c in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(call: Call) -> None:
        start.wait()
        while True:
            with lock:
                job = next(counter)
                if job >= jobs and not run.steady_s:
                    run.steady_s = time.perf_counter() - t0
            if job >= jobs:
                return
            t_job = time.perf_counter()
            for _ in range(MAX_ATTEMPTS):
                t_try = time.perf_counter()
                status, retry = call(job)
                took = time.perf_counter() - t_try
                with lock:
                    run.attempts.append(Attempt(status, took, job))
                if status != 503:
                    break
                time.sleep(min(RETRY_CAP_S, retry if retry is not None else RETRY_CAP_S))
            if status in (200, 201):
                with lock:
                    run.done += 1
                    run.job_seconds.append(time.perf_counter() - t_job)
                    run.done_at.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(call,), daemon=True) for call, _ in calls]
    for t in threads:
        t.start()
    cpu0, srv0 = time.process_time(), process_cpu(server_pid)
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    run.wall_s = time.perf_counter() - t0
    run.cpu_s = time.process_time() - cpu0
    srv1 = process_cpu(server_pid)
    run.server_cpu_s = None if srv0 is None or srv1 is None else srv1 - srv0
    for _, close in calls:
        close()
    return run


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` (seconds) in milliseconds; None when empty."""
    return float(np.percentile(np.asarray(values, np.float64), q) * 1e3) if len(values) else None


def level_stats(run: LevelRun) -> dict[str, Any]:
    """JSON-ready figures of one level: throughput, latency of the successes (ms: p50, p95, p99,
    mean, max), status counts, CPU seconds per completed job.

    ``throughput_per_s`` counts the jobs done while every client was still busy (until the first
    one found no job left), so the tail of the run, with fewer clients (some of them asleep after a
    503), does not dilute it; ``overall_per_s`` is all jobs over the whole wall time.
    """
    ok = [a.seconds for a in run.attempts if a.status in (200, 201)]
    statuses: dict[str, int] = {}
    for a in run.attempts:
        statuses[str(a.status)] = statuses.get(str(a.status), 0) + 1
    other_5xx = sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500 and int(s) != 503)
    errors = sum(n for s, n in statuses.items() if not s.isdigit())
    return {
        "clients": run.clients, "jobs": run.jobs, "completed": run.done, "wall_s": round(run.wall_s, 3),
        "throughput_per_s": _steady(run), "steady_s": round(run.steady_s, 3),
        "overall_per_s": round(run.done / run.wall_s, 3) if run.wall_s > 0 else None,
        "p50_ms": _r(percentile_ms(ok, 50)), "p95_ms": _r(percentile_ms(ok, 95)), "p99_ms": _r(percentile_ms(ok, 99)),
        "mean_ms": _r(float(np.mean(ok)) * 1e3 if ok else None), "max_ms": _r(max(ok) * 1e3 if ok else None),
        "job_p95_ms": _r(percentile_ms(run.job_seconds, 95)),
        "attempts": len(run.attempts), "statuses": statuses, "status_503": statuses.get("503", 0),
        "other_5xx": other_5xx, "client_errors": errors,
        "cpu_s_per_job": round(run.cpu_s / run.done, 5) if run.done else None,
        "server_cpu_s_per_job": (round(run.server_cpu_s / run.done, 5)
                                 if run.server_cpu_s is not None and run.done else None),
    }


def _steady(run: LevelRun) -> float | None:
    """Jobs per second done until the first client ran out of jobs (all of them while there is one client)."""
    window = run.steady_s or run.wall_s
    if window <= 0:
        return None
    return round(sum(1 for t in run.done_at if t <= window) / window, 3)


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` and its (waited-for and live) children, from /proc; None
    when unknown."""
    if pid is None:
        return None
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *child_pids(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state); utime=14, stime=15, cutime=16, cstime=17 (1-based)
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
    return total


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            continue
    return out


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ----------------------------------------------------------------------------------------------
# Operations
# ----------------------------------------------------------------------------------------------


def _retry_after(response) -> float | None:
    try:
        return float(response.headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


class HttpOps:
    """HTTP calls of one operation against ``url`` with ``key``; :meth:`factory` gives run_level its clients.

    Operations: ``verify`` (image1, image2), ``identify`` (image, top_k 5), ``enroll`` (one image
    under a new person ``{prefix}-{job}``, ``allow_duplicate=true``).
    """

    def __init__(self, url: str, key: str, images: dict[str, bytes], prefix: str = "bench") -> None:
        self.url, self.key, self.images, self.prefix = url, key, images, prefix

    def factory(self, op: str, tag: str = "") -> Callable[[int], tuple[Call, Callable[[], None]]]:
        """Client maker of ``op`` for :func:`run_level`; ``tag`` keeps enrolled names unique per level."""
        import httpx

        def make(_client: int):
            client = httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT_S,
                                  headers={"Authorization": f"Bearer {self.key}"})
            send = getattr(self, f"_{op}")

            def call(job: int):
                try:
                    r = send(client, f"{tag}-{job}")
                except httpx.TimeoutException:
                    return "timeout", None
                except httpx.HTTPError as exc:
                    return type(exc).__name__, None
                return r.status_code, _retry_after(r)

            return call, client.close

        return make

    def _verify(self, client, job: str):
        return client.post("/v1/verify", files={"image1": ("a.jpg", self.images["a"], "image/jpeg"),
                                                 "image2": ("b.jpg", self.images["b"], "image/jpeg")})

    def _identify(self, client, job: str):
        return client.post("/v1/identify", params={"top_k": 5},
                           files={"image": ("q.jpg", self.images["a"], "image/jpeg")})

    def _enroll(self, client, job: str):
        return client.post(f"/v1/people/{self.prefix}-{job}/faces", params={"allow_duplicate": "true"},
                           files={"images": ("e.jpg", self.images["a"], "image/jpeg")})


class LibraryOps:
    """The same work in-process: ``FaceVerifier.verify``; identify = the verifier's detection and
    embedding, then ``Gallery.search`` under one lock (as the service does); enrol =
    ``Gallery.prepare_enrolment`` outside it and ``commit_enrolment`` under it (as the service does)."""

    def __init__(self, verifier, images: dict[str, bytes], galleries: dict[str, Any], prefix: str = "lib") -> None:
        self.verifier, self.images, self.galleries, self.prefix = verifier, images, galleries, prefix
        self.lock = threading.RLock()

    def factory(self, op: str, gallery: str | None = None, tag: str = ""
                ) -> Callable[[int], tuple[Call, Callable[[], None]]]:
        """Client maker of ``op`` on gallery ``gallery`` for :func:`run_level`; ``tag`` as in HttpOps."""
        work = {"verify": self._verify, "identify": self._identify, "enroll": self._enroll}[op]
        g = self.galleries.get(gallery) if gallery else None

        def make(_client: int):
            def call(job: int):
                try:
                    work(g, f"{tag}-{job}")
                except Exception as exc:  # counted, never hidden
                    return f"error:{type(exc).__name__}", None
                return 200, None

            return call, lambda: None

        return make

    def _verify(self, _g, _job: str) -> None:
        self.verifier.verify(self.images["a"], self.images["b"])

    def _identify(self, g, _job: str) -> None:
        aligned = self.verifier.embedder.find_faces(self.images["a"], faces="all")
        emb = self.verifier.embedder.embed_crops(np.stack([a.crop for a in aligned]))
        with self.lock:
            g.search(emb, top_k=5)

    def _enroll(self, g, job: str) -> None:
        prepared = g.prepare_enrolment(f"{self.prefix}-{job}", [self.images["a"]])
        with self.lock:
            g.commit_enrolment(prepared, allow_duplicate=True)
