"""Load, saturation, startup and soak figures of ``facever serve`` (issue 17, "Tests and figures").

Usage (from the repository root, on an otherwise idle machine)::

    python benchmarks/serve_bench.py                  # full run → benchmarks/results/serve.{json,md}, serve_latency.png
    python benchmarks/serve_bench.py --quick          # smoke run (small counts, 10,000-face gallery) → a temp folder

What it does, in one process that starts real servers (``python -m facever serve``) on free loopback
ports, each on a throw-away gallery:

1. Bounded closed-loop load: 1, 2, 4, 8 and 16 concurrent clients (threads, httpx) share a fixed
   number of jobs per level and stop by themselves. Operations: verify (two photos), identify
   against synthetic galleries of 1,000 and 100,000 faces, enrol (one photo, a new person per request).
   The same work runs in-process through the library with the same number of threads, level by level.
2. Startup: seconds from process start to ``/readyz`` 200, a few times (1 and 2 workers).
3. Mixed soak: 4 clients enrol, identify and remove against ``--workers 2`` for ``--soak-seconds``;
   one worker is SIGKILLed half way; afterwards every acknowledged enrolment must be there,
   ``facever db check`` clean and no request hung.

It prints a table and the targets (met / not met), and writes JSON, the latency plot and the
"Service" markdown section. Needs the ``serve`` extra, httpx, matplotlib, scikit-image and matplotlib's
sample photo (as the service tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("FACEVER_THREADS", "1")  # as the servers get it (tests/service_server.py)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import serve_report  # noqa: E402
from serve_load import HttpOps, LibraryOps, level_stats, run_level, synthetic_gallery  # noqa: E402
from serve_soak import soak, startup_times  # noqa: E402
from service_server import running_server  # noqa: E402


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[serve-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 16 jobs per level, galleries of 1,000 and 10,000, 20 s soak, 2 starts; "
                        "writes to a temp folder unless --out-dir is given")
    p.add_argument("--requests", type=int, help="jobs per concurrency level (default 160; quick 16)")
    p.add_argument("--levels", default="1,2,4,8,16", help="concurrent clients per level (default 1,2,4,8,16)")
    p.add_argument("--sizes", help="identify gallery sizes, faces (default 1000,100000; quick 1000,10000)")
    p.add_argument("--ops", default="verify,identify,enroll", help="operations to load (default all)")
    p.add_argument("--soak-seconds", type=float, help="mixed soak length, s (default 120; quick 20; 0 skips it)")
    p.add_argument("--startup-repeats", type=int, help="server starts timed per worker count (default 5; quick 2)")
    p.add_argument("--server-workers", type=int, default=1, help="--workers of the load servers (default 1)")
    p.add_argument("--concurrency", type=int, help="--concurrency of the servers (default: theirs, the core count)")
    p.add_argument("--queue", type=int, help="--queue of the servers (default: theirs, = concurrency)")
    p.add_argument("--out-dir", help="where serve.json, serve.md and serve_latency.png go "
                                     "(default benchmarks/results; quick: a temp folder)")
    p.add_argument("--wait-load", type=float, default=0.0, metavar="MINUTES",
                   help="first wait up to this long for the 1-minute load average to fall below --max-load")
    p.add_argument("--max-load", type=float, default=1.5, help="load average to wait for (default 1.5)")
    p.add_argument("--render-only", action="store_true",
                   help="measure nothing: rewrite serve.md, the plot and the table from the existing serve.json")
    args = p.parse_args(argv)
    args.requests = args.requests or (16 if args.quick else 160)
    args.sizes = [int(x) for x in (args.sizes or ("1000,10000" if args.quick else "1000,100000")).split(",")]
    args.levels = [int(x) for x in args.levels.split(",")]
    args.ops = [op for op in args.ops.split(",") if op]
    args.soak_seconds = args.soak_seconds if args.soak_seconds is not None else (20.0 if args.quick else 120.0)
    if args.startup_repeats is None:
        args.startup_repeats = 2 if args.quick else 5
    return args


def machine() -> dict[str, Any]:
    """CPU, cores, Python and library versions."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for pkg in ("facever", "fastapi", "uvicorn", "httpx", "onnxruntime", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "versions": versions,
            "load_before": round(os.getloadavg()[0], 2)}


def wait_for_quiet(minutes: float, max_load: float) -> list[float]:
    """Wait (checking every 30 s) up to ``minutes`` for the 1-minute load average below ``max_load``;
    the loads seen."""
    seen = [round(os.getloadavg()[0], 2)]
    deadline = time.monotonic() + minutes * 60
    while seen[-1] >= max_load and time.monotonic() < deadline:
        log(f"load average {seen[-1]} ≥ {max_load}: waiting")
        time.sleep(30)
        seen.append(round(os.getloadavg()[0], 2))
    return seen


def size_library_blas() -> str:
    """Size this process's BLAS as ``facever serve`` sizes its own (cli/serve.py): ``FACEVER_THREADS``
    threads unless a BLAS variable is set; returns what the library side runs with."""
    from facever.runtime import default_threads
    from facever_cli.serve import BLAS_THREAD_VARS

    given = {v: os.environ[v] for v in BLAS_THREAD_VARS if v in os.environ}
    if given:
        return "from the environment: " + ", ".join(f"{k}={v}" for k, v in given.items())
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=default_threads(), user_api="blas")
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas")


def server_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.concurrency:
        out += ["--concurrency", str(args.concurrency)]
    if args.queue is not None:
        out += ["--queue", str(args.queue)]
    return out


def load_op(name: str, http: HttpOps, lib: LibraryOps, op: str, gallery: str | None, levels: list[int],
            jobs: int, server_pid: int) -> dict[str, list[dict]]:
    """Warm up, then each level over HTTP and in-process."""
    for i in range(3):  # first requests load the gallery matrix, warm caches
        run_level(http.factory(op, f"warm{i}"), 1, 2, server_pid)
        run_level(lib.factory(op, gallery, f"warm{i}"), 1, 2)
    out: dict[str, list[dict]] = {"http": [], "library": []}
    for clients in levels:
        h = level_stats(run_level(http.factory(op, f"c{clients}"), clients, jobs, server_pid))
        lb = level_stats(run_level(lib.factory(op, gallery, f"c{clients}"), clients, jobs))
        out["http"].append(h)
        out["library"].append(lb)
        log(f"{name:>16} {clients:>2} clients: HTTP {h['throughput_per_s']}/s p50 {h['p50_ms']} p95 {h['p95_ms']} ms "
            f"({h['status_503']} × 503) | library {lb['throughput_per_s']}/s p50 {lb['p50_ms']} p95 {lb['p95_ms']} ms")
    return out


def run_loads(args: argparse.Namespace, tmp: Path, verifier, images: dict[str, bytes]) -> tuple[dict, dict]:
    """Every operation's levels; also the seconds each synthetic gallery took to write."""
    from facever.gallery import Gallery

    built: dict[str, float] = {}

    def gallery(name: str, n: int) -> str:
        url = f"sqlite:///{tmp / name}.db"
        built[name] = round(synthetic_gallery(url, n, verifier), 1)
        log(f"synthetic gallery {name}: {n:,} faces in {built[name]} s")
        return url

    plan: list[tuple[str, str, int | None]] = []
    if "verify" in args.ops:
        plan.append(("verify", "verify", None))
    if "identify" in args.ops:
        plan += [(f"identify_{n}", "identify", n) for n in args.sizes]
    if "enroll" in args.ops:
        plan.append(("enroll", "enroll", args.sizes[0]))
    ops: dict[str, Any] = {}
    for name, op, size in plan:
        srv_url = gallery(f"{name}-http", size or 0)
        lib_url = gallery(f"{name}-lib", size or 0) if op == "enroll" else srv_url
        with running_server(tmp / name, workers=args.server_workers, args=server_args(args), db_url=srv_url) as srv:
            g = Gallery(lib_url, verifier=verifier) if size else None
            try:
                http = HttpOps(srv.url, srv.admin_key, images, prefix="http")
                lib = LibraryOps(verifier, images, {name: g}, prefix="lib")
                ops[name] = load_op(name, http, lib, op, name, args.levels, args.requests, srv.proc.pid)
                ops[name]["server_tracebacks"] = srv.log().count("Traceback")
            finally:
                if g is not None:
                    g.close()
    return ops, built


def write_outputs(results: dict[str, Any], out_dir: Path) -> int:
    """serve.json, the plot and serve.md in ``out_dir``; print the table; 0 when no target is missed."""
    json_path, md_path, png_path = out_dir / "serve.json", out_dir / "serve.md", out_dir / "serve_latency.png"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    serve_report.plot(results, png_path)
    md_path.write_text(serve_report.markdown(results, png_path.name))
    print(serve_report.console(results))
    shown = [p.relative_to(REPO) if p.is_relative_to(REPO) else p for p in (json_path, md_path, png_path)]
    log("wrote " + ", ".join(str(p) for p in shown))
    return 0 if all(t["met"] is not False for t in results["targets"]) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        out_dir = Path(args.out_dir) if args.out_dir else HERE / "results"
        results = json.loads((out_dir / "serve.json").read_text())
        results["targets"] = serve_report.targets(results)
        return write_outputs(results, out_dir)
    loads_seen = wait_for_quiet(args.wait_load, args.max_load) if args.wait_load else []
    from facever.api import FaceVerifier
    from facever.service.settings import default_concurrency
    import service_photos

    out_dir = Path(args.out_dir) if args.out_dir else (
        Path(tempfile.gettempdir()) / "facever-serve-bench" if args.quick else HERE / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    log(f"{info['cores']} cores, load average {info['load_before']}; {args.requests} jobs per level {args.levels}")
    verifier = FaceVerifier()
    blas = size_library_blas()
    images = {"a": service_photos.astronaut(), "b": service_photos.hopper()}
    conc = args.concurrency or default_concurrency()
    results: dict[str, Any] = {
        "benchmark": "serve", "quick": args.quick, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/serve_bench.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:])),
        "machine": info,
        "settings": {"levels": args.levels, "requests": args.requests, "gallery_sizes": args.sizes,
                     "server_workers": args.server_workers, "server_concurrency": conc,
                     "server_queue": args.queue if args.queue is not None else conc,
                     "facever_threads": os.environ.get("FACEVER_THREADS"), "library_blas_threads": blas,
                     "soak_seconds": args.soak_seconds,
                     "model_version": verifier.model_version},
        "notes": ["Galleries are synthetic (random unit vectors with a dummy crop, written with "
                  "facever.store.repository.add_face): for search timing only.",
                  "Fixed while measuring (cli/serve.py): numpy's OpenBLAS ran a thread per core for the gallery "
                  "search and left them spinning, taking the cores from the other request's detection; identify "
                  "against 100,000 faces then ran at 15 requests/s over HTTP and 20/s in-process (p95 at 2 clients "
                  "2.4 × single p50). `facever serve` now sizes BLAS like onnxruntime, FACEVER_THREADS threads per "
                  "call (default 1)."],
    }
    if args.quick:
        results["notes"].append("--quick: a smoke run with small counts; not figures to report.")
    if loads_seen:
        results["machine"]["load_waited"] = loads_seen
    with tempfile.TemporaryDirectory(prefix="facever-serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        results["ops"], results["gallery_build_s"] = run_loads(args, tmp, verifier, images)
        if args.startup_repeats:
            url = f"sqlite:///{tmp / 'startup.db'}"
            synthetic_gallery(url, args.sizes[0], verifier)
            results["startup"] = []
            for workers in (1, 2):
                secs = startup_times(url, tmp / "startup-home", args.startup_repeats, workers, server_args(args))
                results["startup"].append({"workers": workers, "seconds": [round(s, 3) for s in secs],
                                           "median_s": round(statistics.median(secs), 3), "max_s": round(max(secs), 3)})
                log(f"startup, {workers} worker(s): {results['startup'][-1]['seconds']} s")
        if args.soak_seconds > 0:
            url = f"sqlite:///{tmp / 'soak.db'}"
            synthetic_gallery(url, args.sizes[0], verifier)
            log(f"soak: {args.soak_seconds:g} s, 4 clients, 2 workers, one SIGKILLed half way")
            results["soak"] = soak(tmp / "soak", url, images, args.soak_seconds, args=server_args(args))
            log(f"soak passed: {results['soak']['passed']}")
    info["load_after"] = round(os.getloadavg()[0], 2)
    results["targets"] = serve_report.targets(results)
    return write_outputs(results, out_dir)


if __name__ == "__main__":
    sys.exit(main())
