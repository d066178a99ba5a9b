"""Markdown of the speed and footprint sections of the report: per-image stages, cold command-line
processes, enrolment, search latency, environment size. Each function returns lines and appends the
PNGs it writes to ``written``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results_format import SYSTEMS, img, ms, num, plot_search, plot_stages, ratio, secs, table


def speed_lines(sp: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    notes = sp["notes"]
    lines = ["## Speed per image: one face, one image at a time", "",
             f"{sp['n_images']} LFW images (250×250), one at a time, largest face (as `facever verify` and "
             f"`face_recognition.face_encodings` work); {sp['repeats']} repeats alternating between the systems. "
             "Each cell: median over images, then median [min–max] over repeats, in ms. Ratio = facever / "
             "face_recognition per repeat, median [min–max]; below 1 means facever is faster.", ""]
    rows = []
    for stage, e in sp["stages"].items():
        what = ("sum of the stages, images where a face was found" if stage == "total" else
                " / ".join(filter(None, [notes["facever"].get(stage), notes["face_recognition"].get(stage)])))
        label = {"total": "**total**", "detection_batched": "detection, batched"}.get(stage, stage)
        rows.append([label, ms(e.get("facever")), ms(e.get("face_recognition")), ratio(e.get("ratio")), what])
    lines += table(["stage", "facever ms", "face_recognition ms", "ratio", "what is timed (facever / peer)"], rows) + [""]
    found = sp.get("n_faces_found", {})
    lines += [f"Faces found: facever {found.get('facever')}, face_recognition {found.get('face_recognition')} of "
              f"{sp['n_images']}. Landmarks come with MTCNN's detection in facever; dlib's alignment happens inside "
              "its encoder call (—: no separate stage).", ""]
    png = plot_stages(sp, out_dir / "speed_stages.png")
    written.append(png)
    return lines + [img(md_dir, png, "latency by stage"), ""]


CASE_LABELS = {"verify": "verify two photos", "missing_file": "error: missing file", "bad_option": "error: bad option"}


def cli_lines(cli: dict[str, Any]) -> list[str]:
    if "cases" not in cli:  # a compare.json written before the error paths were measured
        cli = {**cli, "cases": {"verify": {k: cli[k] for k in ("commands", "ratio", *SYSTEMS)}}}
        for s in SYSTEMS:
            cli["cases"]["verify"][s] = {"rc": [], "stderr_lines": [], "stderr": "", **cli[s]}
    lines = ["## Cold command-line process", "",
             f"A new process per run ({' vs '.join(Path(p).name for p in cli['images'])}); {cli['repeats']} timed runs "
             "per case and system, alternating, after one untimed run of each. Median [min–max]; peak memory is the "
             "process's maximum resident set (`wait4` rusage). Ratio = facever / face_recognition per repeat.", ""]
    rows = []
    for case, c in cli["cases"].items():
        label = CASE_LABELS.get(case, case)
        rows.append([f"{label}: wall time (s)", secs(c["facever"]["wall_s"], 3), secs(c["face_recognition"]["wall_s"], 3),
                     ratio(c["ratio"]["wall_s"])])
        rows.append([f"{label}: peak memory (MB)", secs(c["facever"]["maxrss_mb"], 0),
                     secs(c["face_recognition"]["maxrss_mb"], 0), ratio(c["ratio"]["maxrss_mb"])])
        rows.append([f"{label}: CPU time (s)", secs(c["facever"]["cpu_s"], 3), secs(c["face_recognition"]["cpu_s"], 3), "—"])
        rows.append([f"{label}: exit code, stderr lines"] + [
            f"{'/'.join(map(str, c[s]['rc']))}, {'/'.join(map(str, c[s]['stderr_lines']))}" for s in SYSTEMS] + ["—"])
    lines += table(["", "facever", "face_recognition", "ratio"], rows) + [""]
    lines += ["Commands (`KNOWN`: a temporary folder holding the first image):", ""]
    for case, c in cli["cases"].items():
        for s in SYSTEMS:
            lines.append(f"- {CASE_LABELS.get(case, case)}, {s}: `{c['commands'][s]}`")
    lines.append("")
    for case in ("missing_file", "bad_option"):
        c = cli["cases"].get(case)
        if c:
            for s in SYSTEMS:
                err = c[s]["stderr"].splitlines()
                shown = err[-1] if err else "(nothing)"
                lines.append(f"- {CASE_LABELS[case]}, {s}: last stderr line `{shown[:160]}`"
                             + (f" ({len(err)} lines)" if len(err) > 1 else ""))
    return lines + [""]


def enroll_lines(en: dict[str, Any], peer_rate: float | None) -> list[str]:
    lines = ["## Enrolment throughput", ""]
    if en.get("status") != "ok":
        return lines + [f"Not measured: `{en.get('command')}` failed (exit {en.get('rc')}).", "",
                        "```", (en.get("stderr_tail") or "").strip()[-1500:], "```", ""]
    r = en["results"]
    lines += [f"`{en['command']}`: facever's `Gallery.enroll`, person by person, into a new temporary SQLite gallery "
              "(decode, hash, detect, align, quality check, batched embedding, one transaction per person; the first "
              "person is an untimed warm-up, model loading excluded). face_recognition has no gallery; its nearest "
              "equivalent, encoding one image at a time, is shown for reference.", ""]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
    lines += table(["", "facever", "face_recognition"], [
        ["images/s", f"**{r['images_per_s']:.1f}**", f"{num(peer_rate, 1)} (encoding only, accuracy run)"],
        ["images / people", f"{r['images']:,} / {r['people']}", "—"],
        ["outcomes", outcomes, "—"],
        ["database growth per face", f"{r['db_bytes_per_face'] / 1024:.1f} KiB", "—"],
        ["process peak memory", f"{en['maxrss_mb']:.0f} MB", "—"],
    ]) + [""]
    return lines


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list) and len(value) > 8:
        return [(prefix, f"[{len(value)} values]")]
    return [(prefix, value)]


def gallery_lines(g: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    lines = ["## Search latency against gallery size", "",
             f"One query against random 128-d vectors, in memory. facever: `{g['facever_function']}` (float32 unit "
             f"vectors, one face per person). face_recognition has no gallery; its equivalent is "
             f"`{g['peer_function']}`, given one float64 array (its fastest input). Median per query over queries, "
             "then median [min–max] over repeats, in ms.", ""]
    rows = []
    for n in g["sizes"]:
        e = g["by_size"][str(n)]
        rows.append([f"{int(n):,}", ms(e["facever"], 3), ms(e["face_recognition"], 3), ratio(e["ratio"]),
                     f"{e['facever_matrix_mb']:.0f} / {e['face_recognition_matrix_mb']:.0f}"])
    lines += table(["faces", "facever ms", "face_recognition ms", "ratio", "matrix MB (facever / peer)"], rows) + [""]
    png = plot_search(g, out_dir / "search_latency.png")
    written.append(png)
    lines += [img(md_dir, png, "search latency"), ""]
    db = g.get("facever_db") or {}
    lines += ["### facever's gallery (`benchmarks/gallery_bench.py`)", ""]
    if db.get("status") != "ok":
        lines += [f"Not measured in this run: {db.get('note') or db.get('status')}"
                  + (f" (exit {db.get('rc')})" if db.get("rc") is not None else "") + ".", ""]
    else:
        lines += [f"From `{db['command']}` ({db['wall_s']:.0f} s, peak {db['maxrss_mb']:.0f} MB):", ""]
        if db.get("results") is not None:
            lines += table(["figure", "value"], [[k, v] for k, v in _flatten(db["results"])]) + [""]
        else:
            lines += ["```", db.get("stdout", "").rstrip(), "```", ""]
    return lines


def env_lines(env: dict[str, Any]) -> list[str]:
    lines = ["## Environment size and install time", ""]
    if env.get("status") != "ok":
        return lines + [f"Not measured: `bash benchmarks/env_size.sh` failed (exit {env.get('rc')}).", "",
                        "```", (env.get("stderr_tail") or "").strip()[-1500:], "```", ""]
    r = env["results"]
    fv, fr = r["facever"], r["face_recognition"]
    cache = r.get("pip_cache") or {}
    lines += [f"`bash benchmarks/env_size.sh` ({env['source']}): a fresh virtual environment each ({r['python']}) under "
              f"/tmp, removed afterwards. facever: `{fv['command']}` from a copy of the working tree (inference only; "
              f"TensorFlow is the `facever[train]` extra). face_recognition: `{fr['command']}`. **pip's cache was "
              f"warm** ({cache.get('dir')}, {cache.get('mb')} MB, and this machine's local package index): no "
              "download, so a first install elsewhere takes longer. Install time excludes creating the venv.", ""]
    top = lambda e: ", ".join(f"{p['package']} {p['mb']}" for p in e["largest"])  # noqa: E731
    lines += table(["", "facever", "face_recognition", "ratio"], [
        ["venv on disk (MB)", f"**{fv['mb']}**", str(fr["mb"]), f"{fv['mb'] / fr['mb']:.2f}×"],
        ["of which the bare venv (pip)", str(fv["bare_venv_mb"]), str(fr["bare_venv_mb"]), "—"],
        ["install time (s)", f"{fv['install_s']:.1f}", f"{fr['install_s']:.1f}", f"{fv['install_s'] / fr['install_s']:.2f}×"],
        ["packages installed", str(fv["n_packages"]), str(fr["n_packages"]), "—"],
        ["largest (MB)", top(fv), top(fr), "—"],
    ]) + [""]
    lines += [f"Check of the fresh facever environment: {fv.get('check')}; `facever verify A B --json` exit "
              f"{fv.get('verify_rc')} in {num(fv.get('verify_s'), 2)} s (first run, cold file cache).", ""]
    return lines
