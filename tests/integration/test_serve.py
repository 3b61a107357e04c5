"""`pfp serve` as real processes on loopback, with real registered (tiny) models: MLflow-scoring compatibility,
zero dropped requests while `pfp rollback` moves the alias, a broken version on the alias, the prediction log, and
SIGTERM during traffic. One module fixture registers three versions of the same weights (the 20-epoch training of
the session's trained project, tests/reliability.py tiny_trained); one two-worker server serves them for the whole
module (the tests run in order and build on each other)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers import client, pfp, write_config
from tests.reliability import tiny_project, use_training
from tests.serve_procs import (
    BIN,
    all_current,
    free_port,
    get_json,
    pinged,
    start_mlflow_serve,
    start_pfp_serve,
    stop,
    wait_until,
)

pytestmark = pytest.mark.slow
MODEL = "pfp-detector"
ANSWERED: list[dict[str, Any]] = []  # every 200 /invocations of pfp serve: request id, version, image hashes
_LOCK = threading.Lock()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tiny_project(tmp_path_factory, "serve")  # demo-data (96 px), split, trained: see tiny_trained
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("PFP_HOME", str(root / ".pfp"))
    mp.setenv("PFP_PREDICTION_LOG_DIR", str(root / "predlog"))
    cfg = write_config(root / "tiny.yaml", serve={"confirm_timeout_s": 8, "poll_seconds": 1})
    use_training(root, "strong")  # what `pfp train` of TINY leaves
    t0 = time.monotonic()
    for args in (("register",), ("promote", "--version", "1"), ("validate",)):
        r = pfp(*args, "--config", str(cfg))
        assert r.exit_code == 0, (args, r.output)
        print(f"{args[0]}: {time.monotonic() - t0:.1f}s")
    for _ in range(2):  # v2, v3: the same weights logged and registered again (as `pfp register` leaves them,
        _register_copy(root)  # without re-running its evaluation and fresh-process check: ~30 s each here)
    yield root, cfg
    mp.undo()


def _register_copy(root: Path) -> int:
    """A new version with its own copy of the artifacts (so breaking one breaks only that one), v1's tags."""
    import mlflow

    from pfp_mlops.adapters import packaging

    c = client()
    v1 = c.get_model_version(MODEL, "1")
    weights = Path(json.loads((root / "runs" / "training_info.json").read_text())["weights"])
    mlflow.set_tracking_uri(c.tracking_uri)
    uri = packaging.log_pyfunc(weights, run_id=v1.run_id, imgsz=96)
    mv = c.create_model_version(MODEL, uri, run_id=v1.run_id, tags={**v1.tags, "stage": "candidate"})
    return int(mv.version)


@pytest.fixture(scope="module")
def servers(project):
    """`pfp serve --workers 2` following production (v1) and `mlflow models serve` of v1, side by side."""
    import os

    root, cfg = project
    env = dict(os.environ)
    ports = free_port(), free_port()
    logs = root / "pfp-serve.log", root / "mlflow-serve.log"
    ours = start_pfp_serve(ports[0], env=env, cwd=root, log=logs[0],
                           args=["--config", str(cfg), "--workers", "2", "--poll-seconds", "1"])
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / '.pfp' / 'mlflow.db'}"}
    theirs = start_mlflow_serve(f"models:/{MODEL}/1", ports[1], env={**env, **store}, cwd=root, log=logs[1])
    url, mlflow_url = (f"http://127.0.0.1:{p}" for p in ports)
    try:
        t0 = time.monotonic()
        wait_until(ours, logs[0], lambda: all_current(url, 1))
        wait_until(theirs, logs[1], lambda: pinged(mlflow_url))
        print(f"servers ready: {time.monotonic() - t0:.1f}s")
        yield {"url": url, "mlflow_url": mlflow_url, "proc": ours, "mlflow": theirs, "log": logs[0],
               "root": root, "cfg": cfg, "env": env}
    finally:
        stop(ours)
        stop(theirs)


def _images(root: Path, n: int) -> list[Path]:
    return [Path(p) for p in (root / "dataset" / "test.txt").read_text().split()[:n]]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _post(c: httpx.Client, url: str, payload: Any, content_type: str = "application/json",
          images: list[Path] | None = None) -> httpx.Response:
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    r = c.post(url + "/invocations", content=body, headers={"Content-Type": content_type})
    if r.status_code == 200 and "x-request-id" in r.headers:
        with _LOCK:
            ANSWERED.append({"request_id": r.headers["x-request-id"], "version": int(r.headers["x-model-version"]),
                             "sha": [hashlib.sha256(p.read_bytes()).hexdigest() for p in images or []]})
    return r


def _cli(servers, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([str(BIN / "pfp"), *args, "--config", str(servers["cfg"]), "--serve-url", servers["url"],
                           "--json"], cwd=servers["root"], env=servers["env"], capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 3)
    if isinstance(x, list):
        return [_round(v) for v in x]
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    return x


def test_same_answers_as_mlflow_models_serve(servers):
    """The same requests to `mlflow models serve` and to `pfp serve` (both v1): same statuses, same predictions,
    for the four JSON formats, CSV, image paths, and bad input (400) and content types (415)."""
    imgs = _images(servers["root"], 3)
    b64 = [_b64(p) for p in imgs]
    hello = base64.b64encode(b"hello").decode()
    cases: list[tuple[str, str, Any, list[Path]]] = [
        ("records", "application/json", {"dataframe_records": [{"image": b} for b in b64]}, imgs),
        ("split", "application/json; charset=utf-8",
         {"dataframe_split": {"columns": ["image"], "data": [[b] for b in b64[:2]]}}, imgs[:2]),
        ("instances", "application/json", {"instances": [{"image": b64[0]}]}, imgs[:1]),
        ("inputs", "application/json", {"inputs": {"image": [b64[1]]}}, imgs[1:2]),
        ("paths", "application/json", {"dataframe_records": [{"image": str(p)} for p in imgs]}, imgs),
        ("csv", "text/csv", "image\n" + "\n".join(b64[:2]) + "\n", imgs[:2]),
        ("not json", "application/json", "{oops", []),
        ("no format key", "application/json", {"data": [1]}, []),
        ("two format keys", "application/json", {"inputs": {"image": [b64[0]]}, "instances": [{"image": b64[0]}]},
         []),
        ("a list", "application/json", [1, 2], []),
        ("not an image", "application/json", {"dataframe_records": [{"image": hello}]}, []),
        ("not base64", "application/json", {"dataframe_records": [{"image": "no such file"}]}, []),
        ("text/plain", "text/plain", "x", []),
        ("latin-1", "application/json; charset=latin-1", {"inputs": {"image": [b64[0]]}}, []),
        ("unknown parameter", "application/json; format=pandas-split", {"inputs": {"image": [b64[0]]}}, []),
    ]
    detections = 0
    with httpx.Client(timeout=60) as c:
        for label, ctype, payload, used in cases:
            theirs = _post(c, servers["mlflow_url"], payload, ctype)
            ours = _post(c, servers["url"], payload, ctype, used)
            assert ours.status_code == theirs.status_code, (label, ours.text[:300], theirs.text[:300])
            assert ours.headers["x-model-version"] == "1" and ours.headers["x-model-name"] == MODEL, label
            assert ours.headers["x-model-alias"] == "production" and ours.headers["x-model-run-id"], label
            if theirs.status_code == 200:
                assert _round(ours.json()) == _round(theirs.json()), label
                detections += len(ours.json()["predictions"])
            elif ours.headers["content-type"].startswith("application/json"):
                body = ours.json()
                assert body["error_code"] == theirs.json()["error_code"], label
                assert "stack_trace" not in body and "Traceback" not in ours.text, label
            else:
                assert ours.status_code == 415 and theirs.headers["content-type"].startswith("text/plain"), label
        assert detections > 0
        for route in ("/ping", "/health", "/version"):
            ours, theirs = c.get(servers["url"] + route), c.get(servers["mlflow_url"] + route)
            assert ours.status_code == theirs.status_code == 200, route
            assert ours.headers["x-model-version"] == "1"
        assert c.get(servers["url"] + "/version").text == c.get(servers["mlflow_url"] + "/version").text
        big = "x" * (21 * 1024 * 1024)
        assert c.post(servers["url"] + "/invocations", content=big,
                      headers={"Content-Type": "application/json"}).status_code == 413
        meta = c.get(f"{servers['url']}/v2/models/{MODEL}").json()
        assert meta["versions"] == ["1"] and meta["alias"] == "production"
        assert c.get(servers["url"] + "/v2/models/other").status_code == 404
        assert c.get(servers["url"] + "/v2/health/live").status_code == 200
    stop(servers["mlflow"])


def _swaps(log: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for pid, old, new in re.findall(r"swap: pid (\d+) (nothing|v\d+) -> v(\d+)", log.read_text(errors="replace")):
        out.setdefault(int(pid), []).append(f"{old}->v{new}")
    return out


def test_zero_dropped_requests_while_rollbacks_move_the_alias(servers):
    """≥ 1,000 requests from 4 concurrent clients while `pfp rollback --to-version 2` and then `pfp rollback`
    move production 1 → 2 → 1: every answer is 200, X-Model-Version is 1 before the first move, 2 between the
    moves (once the server confirmed), 1 after, never anything else; each worker logs exactly one swap per move;
    the confirmation is in the ledger."""
    url, imgs = servers["url"], _images(servers["root"], 4)
    payloads = [({"dataframe_records": [{"image": _b64(p)}]}, [p]) for p in imgs]
    records: list[tuple[float, float, int, str]] = []
    errors: list[str] = []
    done = threading.Event()

    def client_loop(k: int) -> None:
        with httpx.Client(timeout=120) as c:
            i = k
            while not (done.is_set() and len(records) >= 1000) and len(records) < 5000:
                payload, used = payloads[i % len(payloads)]
                i += 1
                t0 = time.monotonic()
                try:
                    r = _post(c, url, payload, images=used)
                except httpx.HTTPError as e:
                    errors.append(repr(e))
                    continue
                with _LOCK:
                    records.append((t0, time.monotonic(), r.status_code, r.headers.get("x-model-version", "")))

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        moves = []
        for args, target in ((("rollback", "--to-version", "2"), 2), (("rollback",), 1)):
            t0 = time.monotonic()
            code, out, err = _cli(servers, *args)
            moves.append((t0, time.monotonic()))
            assert code == 0, (out, err)
            assert out["result"]["to_version"] == target
            assert out["result"]["serving"]["ok"] is True, out["result"]["serving"]
            assert out["result"]["serving"]["served_version"] == target
            time.sleep(3)
    finally:
        done.set()
        for t in threads:
            t.join(300)
    assert not errors, errors[:5]
    assert len(records) >= 1000
    assert {s for _, _, s, _ in records} == {200}
    assert {v for *_, v in records} == {"1", "2"}
    (m1_start, m1_done), (m2_start, m2_done) = moves
    assert {v for t0, t1, _, v in records if t1 < m1_start} == {"1"}
    assert {v for t0, t1, _, v in records if t0 > m1_done and t1 < m2_start} == {"2"}
    assert {v for t0, t1, _, v in records if t0 > m2_done} == {"1"}
    swaps = _swaps(servers["log"])
    assert len(swaps) == 2, swaps
    assert all(s == ["nothing->v1", "v1->v2", "v2->v1"] for s in swaps.values()), swaps
    exp = client().get_experiment_by_name("pfp-lifecycle")
    runs = client().search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=2)
    assert [r.data.tags.get("pfp.serving_ok") for r in runs] == ["true", "true"]
    assert {r.data.tags.get("pfp.serving_version") for r in runs} == {"1", "2"}


def test_a_broken_version_on_the_alias_keeps_the_old_one_serving(servers):
    """v3's weights are corrupted in the artifact store, then forced onto production: the server keeps
    answering with v1, stays ready, counts the failed reloads and alerts; the rollback warns (exit 0, the
    registry change stands). Moving the alias to v2 makes it follow again."""
    root, url = servers["root"], servers["url"]
    model_id = client().get_model_version(MODEL, "3").source.rstrip("/").rsplit("/", 1)[-1]
    broken = list((root / ".pfp" / "artifacts").rglob(f"{model_id}/artifacts/artifacts/*.pt"))
    assert broken
    for p in broken:
        p.write_bytes(b"not a torch checkpoint")
    before = _metric(url, "pfp_serve_reload_failures_total")
    code, out, err = _cli(servers, "rollback", "--to-version", "3", "--force")
    assert code == 0, (out, err)
    assert out["result"]["to_version"] == 3 and out["result"]["serving"]["ok"] is False
    assert "pfp: warning: serving:" in err and "did not follow to v3" in err
    status, ready = get_json(url + "/v2/health/ready")
    assert status == 200 and ready["version"] == 1 and ready["alias_version"] == 3 and not ready["all_current"]
    assert all("reload to v3 failed" in (w["last_error"] or "") for w in ready["workers"])
    with httpx.Client(timeout=60) as c:
        img = _images(root, 1)
        for _ in range(5):
            r = _post(c, url, {"dataframe_records": [{"image": _b64(img[0])}]}, images=img)
            assert r.status_code == 200 and r.headers["x-model-version"] == "1"
    assert _metric(url, "pfp_serve_reload_failures_total") >= before + 2  # both workers
    alerts = [json.loads(x) for x in (root / ".pfp" / "alerts.jsonl").read_text().splitlines()]
    assert any(a.get("event") == "serve_reload_failed" and a.get("version") == 3 for a in alerts)
    code, out, err = _cli(servers, "rollback", "--to-version", "2")
    assert code == 0 and out["result"]["serving"]["ok"] is True, (out, err)
    assert all_current(url, 2)


def test_prediction_log_has_one_line_per_answered_image(servers):
    """Every answered request is in the log: one schema-1 line per image, the version that answered, the sha256
    of the bytes sent; the images are stored content-addressed."""
    logdir = servers["root"] / "predlog"
    expected = {a["request_id"]: a for a in ANSWERED}
    want = sum(len(a["sha"]) for a in ANSWERED)
    deadline = time.monotonic() + 20
    while True:
        lines = [ln for f in sorted(logdir.glob("predictions*.jsonl")) for ln in f.read_text().splitlines()]
        if len(lines) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    rows = [json.loads(ln) for ln in lines]
    assert len(rows) == want
    by_request: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_request.setdefault(row["request_id"], []).append(row)
    assert set(by_request) == set(expected)
    for rid, got in by_request.items():
        got.sort(key=lambda r: r["image_index"])
        assert [r["image_sha256"] for r in got] == expected[rid]["sha"]
        assert {r["version"] for r in got} == {expected[rid]["version"]}
        assert all(r["schema"] == 1 and r["model"] == MODEL and r["alias"] == "production" and r["run_id"]
                   and r["width"] == 96 and r["height"] == 96 and isinstance(r["boxes"], list) for r in got)
    assert any(r["boxes"] for r in rows)
    sha = rows[0]["image_sha256"]
    assert list((logdir / "images" / sha[:2]).glob(f"{sha}.*"))


def test_sigterm_lets_in_flight_requests_finish(servers):
    """SIGTERM while four 24-image requests are being scored: all four answer 200 with their detections, the
    server exits 0, both workers stop cleanly and their last log lines are written."""
    url, proc, root = servers["url"], servers["proc"], servers["root"]
    imgs = (_images(root, 8) * 3)[:24]
    payload = {"dataframe_records": [{"image": _b64(p)} for p in imgs]}
    results: list[Any] = [None] * 4

    def one(k: int) -> None:
        try:
            with httpx.Client(timeout=120) as c:
                results[k] = _post(c, url, payload, images=imgs)
        except httpx.HTTPError as e:
            results[k] = e

    threads = [threading.Thread(target=one, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.6)
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(120)
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in results), results
    assert all(r.headers["x-model-version"] == "2" for r in results)
    assert proc.wait(60) == 0
    log = servers["log"].read_text(errors="replace")
    assert log.count("worker stopped") == 2
    ids = {r.headers["x-request-id"] for r in results}
    logged = {json.loads(ln)["request_id"] for f in (root / "predlog").glob("predictions*.jsonl")
              for ln in f.read_text().splitlines()}
    assert ids <= logged
