"""`pfp serve` against `mlflow models serve` on the same registered model and images, and a swap under load.

Setup (untimed): a 60-image synthetic dataset at 96 px, split, a 1-epoch training, two registered versions, v1 in
production. Both servers run at once, one worker each, the model's own config (conf 0.25), on loopback.

Latency and throughput: 4 concurrent clients (httpx, keep-alive) send single-image base64 `dataframe_records`
requests; rounds alternate between the two servers (the same machine load on both sides of each ratio). p50 and
p95 over every request of every round; requests/s is the median over rounds. pfp does more per request than
MLflow (it hashes and measures each image, writes the prediction log and stores the image, keeps metrics).
Targets: p50 ≤ 1.1× MLflow's, throughput ≥ 0.9×.

Swap under load: the same 4 clients on `pfp serve` while `pfp rollback --to-version 2` moves production (no
--serve-url: the server notices by polling, every 2 s ± 20 % here). Failed requests must be 0. Swap time = the
alias moved (seen by a 10 Hz registry watcher) → the first answer from v2; target ≤ poll interval + load time.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import REPO, measure, pfp_project, repeats, row, scratch

SLOW = True
CONFIG = {
    "demo": {"n_images": 60, "imgsz": 96, "seed": 0},
    "train": {"epochs": 1, "imgsz": 96, "batch": 4, "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 1}},
    "evaluation": {"imgsz": 96, "batch": 16},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}
CLIENTS = 4
POLL_S = 2.0


def _load(url: str, bodies: list[bytes], n: int, stop: threading.Event | None = None) -> dict:
    """4 clients, `n` requests in all (or until `stop`); latencies, statuses, versions with their times."""
    import httpx

    lat: list[float] = []
    seen: list[tuple[float, int, str]] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(10**9))

    def client() -> None:
        with httpx.Client(timeout=120, headers={"Content-Type": "application/json"}) as c:
            while True:
                i = next(counter)
                if (stop is None and i >= n) or (stop is not None and stop.is_set()):
                    return
                t0 = time.perf_counter()
                try:
                    r = c.post(url + "/invocations", content=bodies[i % len(bodies)])
                except httpx.HTTPError as e:
                    with lock:
                        failures.append(type(e).__name__)
                    continue
                t1 = time.perf_counter()
                with lock:
                    lat.append(t1 - t0)
                    seen.append((time.time(), r.status_code, r.headers.get("x-model-version", "")))
                    if r.status_code != 200:
                        failures.append(str(r.status_code))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"lat": lat, "rps": len(lat) / (time.perf_counter() - t0), "seen": seen, "failures": failures}


def httpx_get_json(url: str) -> dict:
    import httpx

    return httpx.get(url, timeout=10).json()


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] * 1000 if len(xs) > 2 else float("nan")


def run() -> list[dict]:
    sys.path.insert(0, str(REPO))  # tests/serve_procs.py: the servers started as the tests start them
    procs: list[subprocess.Popen] = []
    with scratch("serve") as tmp:
        try:
            return _run(tmp, procs)
        finally:
            from tests.serve_procs import stop

            for p in procs:
                stop(p)


def _run(tmp: Path, procs: list[subprocess.Popen]) -> list[dict]:
    from tests.serve_procs import all_current, free_port, pinged, start_mlflow_serve, start_pfp_serve, wait_until

    cfg, env, pfp = pfp_project(tmp, CONFIG, (["demo-data"], ["split"], ["train"], ["register"], ["register"],
                                              ["promote", "--version", "1"], ["validate"]), SERVING_MODEL_CONFIG="")
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / '.pfp' / 'mlflow.db'}"}
    ports = free_port(), free_port()
    logs = tmp / "pfp.log", tmp / "mlflow.log"
    ours = start_pfp_serve(ports[0], env=env, cwd=tmp, log=logs[0],
                           args=["--config", str(cfg), "--poll-seconds", str(POLL_S)])
    procs.append(ours)
    theirs = start_mlflow_serve("models:/pfp-detector/1", ports[1], env={**env, **store}, cwd=tmp, log=logs[1])
    procs.append(theirs)
    url, mlflow_url = (f"http://127.0.0.1:{p}" for p in ports)
    wait_until(ours, logs[0], lambda: all_current(url, 1))
    wait_until(theirs, logs[1], lambda: pinged(mlflow_url))

    images = [Path(p) for p in (tmp / "dataset" / "test.txt").read_text().split()[:8]]
    bodies = [json.dumps({"dataframe_records": [{"image": base64.b64encode(p.read_bytes()).decode()}]}).encode()
              for p in images]
    n = repeats(300, 100)
    _load(url, bodies, 40)  # warm both (first requests pay lazy imports)
    _load(mlflow_url, bodies, 40)
    rounds: dict[str, list[dict]] = {"pfp": [], "mlflow": []}
    for i in range(repeats(3, 1) * 2):
        name = ("pfp", "mlflow")[i % 2] if i % 4 < 2 else ("mlflow", "pfp")[i % 2]
        rounds[name].append(_load(url if name == "pfp" else mlflow_url, bodies, n))
    lat = {k: [x for r in v for x in r["lat"]] for k, v in rounds.items()}
    rps = {k: statistics.median(r["rps"] for r in v) for k, v in rounds.items()}
    fails = {k: sum(len(r["failures"]) for r in v) for k, v in rounds.items()}
    p50 = {k: _pct(v, 50) for k, v in lat.items()}
    p95 = {k: _pct(v, 95) for k, v in lat.items()}
    theirs.terminate()

    # swap under load: the alias moves by the CLI; the server follows by polling
    moved: list[float] = []
    watch_stop = threading.Event()

    def watch() -> None:
        import sqlite3

        db = sqlite3.connect(str(tmp / ".pfp" / "mlflow.db"))
        while not watch_stop.is_set():
            row_ = db.execute("select version from registered_model_aliases where alias='production'").fetchone()
            if row_ and int(row_[0]) == 2:
                moved.append(time.time())
                return
            time.sleep(0.1)

    stop_load = threading.Event()
    result: dict = {}
    loader = threading.Thread(target=lambda: result.update(_load(url, bodies, 0, stop_load)))
    watcher = threading.Thread(target=watch)
    loader.start()
    watcher.start()
    time.sleep(2)
    rb = measure([pfp, "rollback", "--to-version", "2", "--config", str(cfg)], env=env, cwd=tmp, check=False,
                 timeout=600)
    deadline = time.monotonic() + 120
    while not any(v == "2" for _, _, v in result.get("seen", [])) and time.monotonic() < deadline:
        if all_current(url, 2):
            break
        time.sleep(0.2)
    time.sleep(2)
    stop_load.set()
    watch_stop.set()
    loader.join()
    watcher.join()
    seen = result.get("seen", [])
    first_v2 = min((t for t, _, v in seen if v == "2"), default=None)
    swap_s = (first_v2 - moved[0]) if first_v2 and moved else None
    swap_fail = len(result.get("failures", [])) + (0 if rb.proc.returncode == 0 else 1)
    load_s = None
    try:
        load_s = round(float(httpx_get_json(f"{url}/v2/models/pfp-detector").get("load_seconds")), 2)
    except (OSError, TypeError, ValueError):
        pass
    budget = POLL_S * 1.2 + (load_s or 0)
    note = f"{CLIENTS} clients, {sum(len(v) for v in lat.values())} requests, {repeats(3, 1)} rounds each"
    return [
        row("serve p50 latency", p50["pfp"], "ms", baseline=p50["mlflow"], target="≤ 1.1× mlflow models serve",
            ok=p50["pfp"] <= 1.1 * p50["mlflow"] and fails["pfp"] == 0, note=note),
        row("serve p95 latency", p95["pfp"], "ms", baseline=p95["mlflow"], note=note),
        row("serve throughput", rps["pfp"], "req/s", baseline=rps["mlflow"], target="≥ 0.9× mlflow models serve",
            ok=rps["pfp"] >= 0.9 * rps["mlflow"], note=note + f"; failures pfp {fails['pfp']}, "
                                                             f"mlflow {fails['mlflow']}"),
        row("serve failed requests during a swap", swap_fail, "requests", target="0", ok=swap_fail == 0,
            note=f"{len(seen)} requests while `pfp rollback` moved production 1 → 2 (exit {rb.proc.returncode})"),
        row("serve swap time", swap_s, "s", target=f"≤ poll + load ({budget:.1f} s)",
            ok=swap_s is not None and swap_s <= budget,
            note=f"alias moved → first answer from v2; poll {POLL_S:g} s ±20 %, load + warm-up "
                 f"{load_s if load_s is not None else '?'} s"),
    ]
