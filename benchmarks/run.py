"""Run every `benchmarks/bench_*.py`, print one table, write `benchmarks/results/latest.json` and BENCHMARKS.md.

    .venv/bin/python benchmarks/run.py                    # everything (~10 min on 2 CPU cores)
    .venv/bin/python benchmarks/run.py --quick            # fewer repeats, skips the minutes-long demo benchmark
    .venv/bin/python benchmarks/run.py --only split,cli   # some benchmarks (bench_split.py, bench_cli.py)

Protocol: a module's `run()` returns a dict or a list of dicts with the keys name, value, unit, baseline, ratio,
target, ok, note (`ok` is None for figures without a target). A module may set `SLOW = True` (skipped by --quick).
Each module runs in its own child process, so a crash, a hang or a leaked global (MLflow URIs, os.environ) in one
never reaches the others: a missing or failing module becomes a row with ok=False.

Results are merged into `latest.json` by name (so `--only` updates its rows and keeps the others, each with the
time it was measured) and appended to `history.jsonl`; BENCHMARKS.md is regenerated between its markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DOC = REPO / "BENCHMARKS.md"
KEYS = ("name", "value", "unit", "baseline", "ratio", "target", "ok", "note")
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
MODULE_TIMEOUT_S = 1800


def discover() -> dict[str, Path]:
    """`bench_cli.py` → `cli`."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def normalise(raw: Any, module: str) -> list[dict[str, Any]]:
    """Accept the protocol's dict or list of dicts; older modules' {name, seconds, target_s, ok} too."""
    rows = raw if isinstance(raw, list) else [raw]
    out = []
    for r in rows:
        if not isinstance(r, dict):
            out.append(failed_row(module, f"run() returned {type(r).__name__}, not a dict"))
            continue
        r = dict(r)
        if "value" not in r and "seconds" in r:  # bench_bootstrap.py's shape
            r["value"], r["unit"] = r.pop("seconds"), "s"
            if "target_s" in r:
                r["target"] = f"< {r.pop('target_s'):g} s"
        row = {k: r.get(k) for k in KEYS}
        row["name"] = row["name"] or module
        row["module"] = module
        for k in ("value", "baseline", "ratio"):
            if isinstance(row[k], float) and not math.isfinite(row[k]):
                row[k] = None
        if row["ratio"] is None and isinstance(row["value"], int | float) and row["baseline"]:
            row["ratio"] = row["value"] / row["baseline"]
        out.append(row)
    return out


def failed_row(module: str, note: str) -> dict[str, Any]:
    return {"name": module, "value": None, "unit": "", "baseline": None, "ratio": None, "target": "", "ok": False,
            "note": note, "module": module}


def child(path: Path) -> int:
    """In a fresh process: import one module, call run(), print its rows as JSON on the last stdout line."""
    sys.path[:0] = [str(HERE), str(REPO / "src")]
    # SIGTERM (the runner's timeout, a killed run) unwinds like Ctrl-C: the module's finally blocks remove its
    # temp folders and its measured child processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    module = path.stem.removeprefix("bench_")
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        rows = normalise(mod.run(), module)
    except BaseException as e:  # noqa: BLE001 - a failing benchmark is a row, never a crash
        traceback.print_exc()
        last = str(e).strip().splitlines()[-1][:300] if str(e).strip() else ""
        rows = [failed_row(module, f"failed: {type(e).__name__}: {last}")]
    sys.stdout.write("\n" + json.dumps(rows, default=str) + "\n")
    sys.stdout.flush()
    return 0


def run_module(name: str, path: Path, *, quick: bool, verbose: bool) -> list[dict[str, Any]]:
    if quick and _declares_slow(path):
        return [{**failed_row(name, "skipped (--quick)"), "ok": None}]
    env = dict(os.environ, PFP_BENCH_QUICK="1" if quick else "0", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(path)], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=MODULE_TIMEOUT_S)
    except BaseException as e:  # timeout or Ctrl-C: SIGTERM first, so the module removes its temp folders
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        return [failed_row(name, f"timed out after {MODULE_TIMEOUT_S} s")]
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    took = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        rows = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return [failed_row(name, f"crashed: {tail[0][:300]}")]
    if proc.returncode or any(r.get("ok") is False and r.get("note", "").startswith("failed") for r in rows):
        if proc.stderr:
            sys.stderr.write(proc.stderr[-3000:])
    for r in rows:
        r["module_s"] = round(took, 1)
    return rows


def _declares_slow(path: Path) -> bool:
    return any(line.replace(" ", "").startswith("SLOW=True") for line in path.read_text().splitlines())


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
        mem_gib = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    versions = {}
    for dist in ("pfp-mlops", "torch", "torchvision", "ultralytics-opencv-headless", "ultralytics", "mlflow", "dvc",
                 "pandas", "typer"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "memory_gib": mem_gib, "os": platform.platform(),
            "python": platform.python_version(), "versions": versions, "git_commit": commit,
            "load_avg_start": [round(x, 2) for x in os.getloadavg()]}


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if unit == "s" and v < 10:
            return f"{v:.3f}"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def ok_text(ok: Any) -> str:
    return "–" if ok is None else ("yes" if ok else "NO")


def table(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        unit = r.get("unit") or ""
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        out.append([r["name"], fmt(r["value"], unit), unit, fmt(r["baseline"], unit), ratio, r.get("target") or "",
                    ok_text(r["ok"]), r.get("note") or ""])
    return out


def print_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    head = ["name", "value", "unit", "baseline", "ratio", "target", "ok", "note"]
    body = table(rows)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    print()
    print(machine_line(info))
    print(line(head))
    print(line(["-" * w for w in widths]))
    for b in body:
        print(line(b))


def machine_line(info: dict[str, Any]) -> str:
    v = info["versions"]
    yolo = v.get("ultralytics-opencv-headless", v.get("ultralytics", "?"))
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}, "
            f"torch {v.get('torch', '?')}, ultralytics {yolo}, "
            f"mlflow {v.get('mlflow', '?')}, dvc {v.get('dvc', '?')}; load average {info['load_avg_start']} at start")


def write_results(rows: list[dict[str, Any]], info: dict[str, Any], *, quick: bool, argv: list[str],
                  results: Path = RESULTS, doc_path: Path = DOC) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for r in rows:
        r["measured_at"] = now
        r["quick"] = quick
    latest_path = results / "latest.json"
    merged: dict[str, dict[str, Any]] = {}
    if latest_path.is_file():
        try:
            for r in json.loads(latest_path.read_text()).get("results", []):
                merged[r["name"]] = r
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            merged = {}
    fresh_modules = {r["module"] for r in rows}
    merged = {k: r for k, r in merged.items() if r.get("module") not in fresh_modules}
    for r in rows:
        if r.get("note") == "skipped (--quick)" and any(m.get("module") == r["module"] for m in merged.values()):
            continue
        merged[r["name"]] = r
    doc = {"generated_at": now, "command": " ".join(["benchmarks/run.py", *argv]), "machine": info,
           "results": sorted(merged.values(), key=lambda r: (r.get("module", ""), r.get("measured_at", "")))}
    latest_path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    with (results / "history.jsonl").open("a") as fh:
        fh.write(json.dumps({"generated_at": now, "command": doc["command"], "machine": info, "results": rows},
                            default=str) + "\n")
    update_doc(doc, doc_path)
    return latest_path


def update_doc(doc: dict[str, Any], doc_path: Path = DOC) -> None:
    """Regenerate the results block of BENCHMARKS.md; the hand-written text around it stays."""
    info = doc["machine"]
    lines = [START, "", f"Latest results (`{doc['command']}`, {doc['generated_at']}, commit {info.get('git_commit')}):",
             "", f"Machine: {machine_line(info)}.", "",
             "| name | value | unit | baseline | ratio | target | ok | note | measured |",
             "| --- | ---: | --- | ---: | ---: | --- | --- | --- | --- |"]
    for r, cells in zip(doc["results"], table(doc["results"]), strict=True):
        cells = [c.replace("|", "\\|") for c in cells]
        quick = " (quick)" if r.get("quick") else ""
        lines.append("| " + " | ".join([*cells, f"{r.get('measured_at', '')[:16]}{quick}"]) + " |")
    lines += ["", END]
    block = "\n".join(lines)
    text = doc_path.read_text() if doc_path.is_file() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc_path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated benchmark names (bench_NAME.py)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip the minutes-long benchmarks")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/ and BENCHMARKS.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for latest.json and history.jsonl")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file whose results block is rewritten")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the benchmarks' own stderr")
    args = parser.parse_args(argv)
    found = discover()
    names = list(found)
    if args.only:
        names = [n.strip().removeprefix("bench_").removesuffix(".py") for n in args.only.split(",") if n.strip()]
    info = machine()
    rows: list[dict[str, Any]] = []
    for name in names:
        print(f"… {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if name not in found:
            got = [failed_row(name, f"missing: benchmarks/bench_{name}.py does not exist")]
        else:
            got = run_module(name, found[name], quick=args.quick, verbose=args.verbose)
        rows += got
        print(f"  {name}: {len(got)} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(rows, info)
    if not args.no_write:
        path = write_results(rows, info, quick=args.quick, argv=argv, results=args.results, doc_path=args.doc)
        print(f"\nwrote {path} and {args.doc}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
