"""Targets, table, plot and markdown of ``benchmarks/serve_bench.py`` (from its results dict).

None of this is part of the installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Targets of issue 17 on the 2-core machine.
RATIO_MIN = 0.90  # HTTP throughput at saturation / the library's
TWO_CLIENT_P95_MAX = 1.5  # × single-client p50
OVERLOAD_P95_MAX = 3.0  # × single-client p50, at 16 clients
STARTUP_MAX_S = 2.0

LABELS = {"verify": "verify (2 photos)", "identify_1000": "identify, 1,000 faces",
          "identify_100000": "identify, 100,000 faces", "enroll": "enrol (1 photo, new person)"}


def label(op: str) -> str:
    """Readable name of an operation key such as ``identify_100000``."""
    if op in LABELS:
        return LABELS[op]
    if op.startswith("identify_"):
        return f"identify, {int(op.split('_')[1]):,} faces"
    return op


def _level(rows: list[dict], clients: int) -> dict | None:
    return next((r for r in rows if r["clients"] == clients), None)


def saturation(rows: list[dict]) -> dict | None:
    """The level of highest throughput."""
    rows = [r for r in rows if r.get("throughput_per_s")]
    return max(rows, key=lambda r: r["throughput_per_s"]) if rows else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value and ``met`` (True / False; None when not measured)."""
    out: list[dict[str, Any]] = []
    for op, data in results["ops"].items():
        http, lib = data["http"], data["library"]
        one = _level(http, 1)
        base = one["p50_ms"] if one else None
        if op != "enroll":
            hs, ls = saturation(http), saturation(lib)
            ratio = hs["throughput_per_s"] / ls["throughput_per_s"] if hs and ls else None
            out.append({"target": f"{label(op)}: HTTP throughput at saturation ≥ {RATIO_MIN:.0%} of the library's",
                        "value": None if ratio is None else f"{ratio:.1%} ({hs['throughput_per_s']:.1f}/s at "
                        f"{hs['clients']} clients vs {ls['throughput_per_s']:.1f}/s at {ls['clients']})",
                        "met": None if ratio is None else ratio >= RATIO_MIN})
        two = _level(http, 2)
        if two and base:
            r = two["p95_ms"] / base
            out.append({"target": f"{label(op)}: p95 at 2 clients ≤ {TWO_CLIENT_P95_MAX} × single-client p50",
                        "value": f"{two['p95_ms']:.0f} ms = {r:.2f} × {base:.0f} ms", "met": r <= TWO_CLIENT_P95_MAX})
        top = max(http, key=lambda x: x["clients"]) if http else None
        if top and base and top["clients"] >= 16:
            r = top["p95_ms"] / base if top["p95_ms"] else float("inf")
            bad = top["other_5xx"] + top["client_errors"] + sum(
                n for s, n in top["statuses"].items() if s not in ("200", "201", "503"))
            out.append({"target": f"{label(op)}: {top['clients']} clients: only 2xx and 503, p95 of the 2xx ≤ "
                        f"{OVERLOAD_P95_MAX} × single-client p50",
                        "value": f"{top['status_503']} × 503, {bad} other; p95 {top['p95_ms']:.0f} ms = {r:.2f} ×",
                        "met": bad == 0 and r <= OVERLOAD_P95_MAX})
    for row in results.get("startup", []):
        out.append({"target": f"startup to /readyz 200 ({row['workers']} worker(s)) ≤ {STARTUP_MAX_S:g} s",
                    "value": f"median {row['median_s']:.2f} s, worst {row['max_s']:.2f} s of {len(row['seconds'])}",
                    "met": row["max_s"] <= STARTUP_MAX_S})
    soak = results.get("soak")
    if soak:
        c, s = soak["check"], soak["summary"]
        out.append({"target": "soak: acknowledged enrolments present, db check clean, no hung request, worker restarted",
                    "value": f"{c['checked_present'] - len(c['missing']) - len(c['faces_missing'])}/"
                    f"{c['checked_present']} present, db check {'clean' if soak['db_check']['ok'] else 'NOT clean'}, "
                    f"{s['timeouts']} timeouts, restart "
                    f"{soak['kill'].get('restart_s', 'none')} s", "met": soak["passed"]})
    return out


#: Why a target is missed where the cause is known (investigated with py-spy and CPU time per request).
CAUSES = {
    "enrol": "An enrolment detects and embeds outside the gallery lock (`Gallery.prepare_enrolment`) and holds "
             "the lock only for the duplicate gate and the write (`commit_enrolment`); what is left above the "
             "targets is the write itself (one SQLite transaction with WAL and secure_delete, serialised by the "
             "database) and the two cores being busy at 2 clients.",
    "identify": "HTTP costs ≈ 5 ms of server CPU per request over the library's ≈ 70 ms (routing, multipart, key "
                "lookup, two change-counter reads, JSON) plus ≈ 1.5 ms for the client on the same two cores: about "
                "9 % together, so the 90 % ratio is met only narrowly, and noise from other processes decides it.",
    "library_enrol": "The library's enrolment threads take the one lock in no fixed order (Python's locks are not "
                     "fair), hence its low p50 and very long p95 from 8 threads on; the service's limiter queues in "
                     "arrival order. Compare their throughputs, not their tails.",
    "tail": "At 2 clients the two requests already take both cores, so anything else runnable (the load "
            "generator, the server's event loop, other users' jobs: see the load average above) lands in their "
            "p95; at 16 clients an admitted request also waits for the one queued ahead of it (queue = slots = 2). "
            "Both targets are near their limits on 2 cores and move with the background load between runs.",
    "startup": "With --workers 2 the supervisor starts (≈ 0.6 s: CLI, key check), then both workers import the app and "
               "load the model at once on the 2 cores (≈ 1 s CPU each); the first ready worker answers /readyz.",
}


def explain_misses(results: dict[str, Any]) -> list[str]:
    """Known causes of the targets this run missed (see :data:`CAUSES`)."""
    missed = [t["target"] for t in results.get("targets", []) if t["met"] is False]
    out = []
    if any(t.startswith("enrol") for t in missed):
        out.append(CAUSES["enrol"])
    if "enroll" in results.get("ops", {}):
        out.append(CAUSES["library_enrol"])
    if any(t.startswith("identify") and "throughput" in t for t in missed):
        out.append(CAUSES["identify"])
    if any(t.startswith(("identify", "verify")) and "p95" in t for t in missed):
        out.append(CAUSES["tail"])
    if any(t.startswith("startup") for t in missed):
        out.append(CAUSES["startup"])
    return out


def _fmt(x: Any, nd: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{nd}f}" if isinstance(x, (int, float)) else str(x)


def level_table(results: dict[str, Any]) -> list[str]:
    """Markdown rows: one per operation × concurrency, HTTP beside the library."""
    rows = ["| operation | clients | HTTP /s | library /s | ratio | HTTP p50 / p95 / p99 ms | library p50 / p95 ms "
            "| 503s | other errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for op, data in results["ops"].items():
        for h in data["http"]:
            lib = _level(data["library"], h["clients"]) or {}
            ratio = (h["throughput_per_s"] / lib["throughput_per_s"]
                     if lib.get("throughput_per_s") and h.get("throughput_per_s") else None)
            other = h["other_5xx"] + h["client_errors"] + sum(
                n for s, n in h["statuses"].items() if s.isdigit() and 400 <= int(s) < 500)
            rows.append(f"| {label(op)} | {h['clients']} | {_fmt(h['throughput_per_s'], 1)} | "
                        f"{_fmt(lib.get('throughput_per_s'), 1)} | {_fmt(ratio and ratio * 100, 0)} % | "
                        f"{_fmt(h['p50_ms'])} / {_fmt(h['p95_ms'])} / {_fmt(h['p99_ms'])} | "
                        f"{_fmt(lib.get('p50_ms'))} / {_fmt(lib.get('p95_ms'))} | {h['status_503']} | {other} |")
    return rows


def target_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown rows of the targets."""
    out = ["| target | measured | met |", "|---|---|---|"]
    for t in rows:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        out.append(f"| {t['target']} | {t['value']} | {met} |")
    return out


def console(results: dict[str, Any]) -> str:
    """The plain-text table printed at the end of a run."""
    lines = [f"{'operation':<26} {'cl':>3} {'HTTP/s':>7} {'lib/s':>7} {'ratio':>6} {'p50':>6} {'p95':>6} "
             f"{'p99':>6} {'lib p50':>7} {'lib p95':>7} {'503':>5} {'other':>5}"]
    for op, data in results["ops"].items():
        for h in data["http"]:
            lib = _level(data["library"], h["clients"]) or {}
            ratio = (h["throughput_per_s"] / lib["throughput_per_s"]
                     if lib.get("throughput_per_s") and h.get("throughput_per_s") else None)
            other = sum(n for s, n in h["statuses"].items() if s not in ("200", "201", "503"))
            lines.append(f"{label(op):<26} {h['clients']:>3} {_fmt(h['throughput_per_s'], 1):>7} "
                         f"{_fmt(lib.get('throughput_per_s'), 1):>7} {_fmt(ratio and ratio * 100, 0):>5}% "
                         f"{_fmt(h['p50_ms']):>6} {_fmt(h['p95_ms']):>6} {_fmt(h['p99_ms']):>6} "
                         f"{_fmt(lib.get('p50_ms')):>7} {_fmt(lib.get('p95_ms')):>7} {h['status_503']:>5} {other:>5}")
    lines.append("")
    for t in results["targets"]:
        met = "n/a" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        lines.append(f"[{met:>7}] {t['target']}: {t['value']}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """p50 and p95 latency against concurrency, one panel per operation, HTTP and library."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ops = list(results["ops"])
    if not ops:
        return
    fig, axes = plt.subplots(1, len(ops), figsize=(4.2 * len(ops), 3.8), squeeze=False)
    for ax, op in zip(axes[0], ops):
        for mode, color in (("http", "tab:blue"), ("library", "tab:gray")):
            rows = results["ops"][op][mode]
            x = [r["clients"] for r in rows]
            for q, style in (("p50_ms", "-o"), ("p95_ms", "--s")):
                ax.plot(x, [r[q] for r in rows], style, color=color, ms=4,
                        label=f"{'HTTP' if mode == 'http' else 'library'} {q[:3]}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(results["settings"]["levels"], [str(c) for c in results["settings"]["levels"]])
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(label(op), fontsize=10)
        ax.set_xlabel("concurrent clients")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"facever serve on {results['machine']['cores']} cores: latency against concurrency "
                 f"(HTTP: 2xx only; past the queue the rest get 503)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any], plot_name: str) -> str:
    """The "Service" section for RESULTS.md."""
    m, s = results["machine"], results["settings"]
    lines = ["## Service", "",
             f"`facever serve` under a bounded closed-loop load over loopback ({results['date']}, "
             f"{m['cores']} cores, {m['cpu']}, load average {m['load_before']} before / {m['load_after']} after; "
             f"facever {m['versions'].get('facever')}, uvicorn {m['versions'].get('uvicorn')}):", "",
             "```bash", results["command"], "```", "",
             f"Server: `facever serve` with {s['server_workers']} worker(s), default limits ({s['server_concurrency']} "
             f"inference slot(s), queue {s['server_queue']}), `FACEVER_THREADS={s['facever_threads']}`. "
             f"{s['requests']} jobs per level, shared by 1–16 clients (httpx, one thread and connection each); a 503 "
             "is retried after its Retry-After (≤ 1 s). The library rows do the same work in-process with the same "
             "number of threads (verify: `FaceVerifier.verify`; identify: detection and embedding, then "
             "`Gallery.search` under one lock, as the service does; enrol: `Gallery.prepare_enrolment` outside that lock, `commit_enrolment` under it). "
             "Latencies are of the successful requests. Throughput counts the jobs done while every client "
             "still had work (until the first one found none left): at 8 and 16 clients the last jobs wait out a "
             "1 s Retry-After with the server idle, which says nothing about its capacity (`overall_per_s` in the "
             "JSON keeps the plain figure). The BLAS of both sides runs one thread per call, as `facever serve` "
             f"sets it (library: {s.get('library_blas_threads', '–')}).", "",
             f"Galleries are **synthetic**: {' and '.join(f'{n:,}' for n in s['gallery_sizes'])} random unit vectors "
             "(4 per person) written through the store with a dummy grey crop, for search timing only; the query "
             "photo (scikit-image's astronaut) is nobody in them. Verify compares her with Grace Hopper "
             "(matplotlib's sample).", "",
             "### Targets", "", *target_table(results["targets"]), "",
             "### Throughput and latency", "", *level_table(results), "",
             f"![latency against concurrency](results/{plot_name})", ""]
    if results.get("startup"):
        lines += ["### Startup", "", "| workers | seconds to /readyz 200 (each start) | median |", "|---:|---|---:|"]
        for row in results["startup"]:
            lines.append(f"| {row['workers']} | {', '.join(f'{x:.2f}' for x in row['seconds'])} | {row['median_s']:.2f} |")
        lines.append("")
    soak = results.get("soak")
    if soak:
        sm, k, c = soak["summary"], soak["kill"], soak["check"]
        lines += ["### Mixed soak", "",
                  f"{soak['clients']} clients enrol (40 %), identify (45 %) and remove (15 %) for {soak['seconds']:.0f} s "
                  f"against `--workers {soak['workers']}`; one worker SIGKILLed at {k.get('killed_at_s', '–')} s, "
                  f"a new one running {k.get('restart_s', '–')} s later and ready after {k.get('ready_again_s', '–')} s "
                  f"(the other worker kept serving). Cores used by each worker in the half second before the kill: "
                  f"{' / '.join(str(v) for v in k.get('worker_cpu_share_before_kill', {}).values()) or '–'} (the "
                  "busier one is killed; a client's keep-alive connection stays with the worker that accepted it, "
                  "so a few clients need not spread over the workers).", "",
                  "| action | attempts | ok/s | p50 / p95 / max ms | statuses |", "|---|---:|---:|---:|---|"]
        for action in ("enroll", "identify", "remove"):
            a = sm[action]
            lines.append(f"| {action} | {a['attempts']} | {a['ok_per_s']:.2f} | {_fmt(a['p50_ms'])} / {_fmt(a['p95_ms'])} / "
                         f"{_fmt(a['max_ms'])} | {', '.join(f'{k_}: {v}' for k_, v in sorted(a['statuses'].items()))} |")
        lines += ["", f"Acknowledged enrolments {c['acknowledged_enrolments']}, removals {c['acknowledged_removals']}; "
                  f"{c['checked_present']} checked present afterwards: missing {len(c['missing'])}, faces missing "
                  f"{len(c['faces_missing'])}; removed but present {len(c['removed_but_present'])}; writes left "
                  f"unanswered by the kill {c['uncertain_writes']}. Client timeouts {sm['timeouts']}, connection errors "
                  f"{sm['connection_errors']}, other 5xx {sm['other_5xx']}; `facever db check` "
                  f"{'clean' if soak['db_check']['ok'] else 'NOT clean: ' + '; '.join(soak['db_check']['problems'] or [])}.",
                  ""]
    notes = list(results.get("notes", [])) + explain_misses(results)
    if notes:
        lines += ["### Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
