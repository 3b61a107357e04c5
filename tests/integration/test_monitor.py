"""`pfp monitor` on real tiny models, a real SQLite registry and prediction-log lines made by the real pyfunc.

One project (a copy of the session's trained one, tests/reliability.py tiny_trained): v1 (20 epochs, the good model),
v2 (1 epoch, the weaker one) and v3 (v1's weights registered again: the same quality). Two registry states are kept
as snapshots of PFP_HOME and copied for each test: `weak` (production v2 after v1: history [1, 2]) and `same`
(production v3 after v1: history [1, 3]).

Traffic is the test split's images (and brightened / resized copies) predicted by the production version through its
registered pyfunc (what `pfp serve` runs), written as CONTRACTS §3 lines, with the images stored content-addressed and
the labels delivered as `<sha256>.txt` files, as a labelling team would.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import uuid
from pathlib import Path

import pytest
from tests.helpers import client, pfp, pfp_json, write_config
from tests.reliability import tiny_project, use_training

# The module fixture registers three versions (and, when it is the session's first user, trains the two models of
# tiny_trained): up to ~2 min on a quiet 2-core machine, ~7 min on a saturated one; it counts against the first
# test's timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
MODEL = "pfp-detector"
WINDOW = 16  # the test split has 16 images: one window = one pass over it
MONITOR = {"min_labelled": 12, "failure_limit": 2, "inconclusive_limit": 2, "label_wait": "0s",
           "bootstrap_resamples": 500, "window": str(WINDOW), "drift": {"min_samples": 10}}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    # a copy of the session's trained project (tests/reliability.py tiny_trained: demo-data, split, and `pfp train`
    # of the strong config (here `good`, 20 epochs) and of `weak` (1 epoch), one study each)
    root = tiny_project(tmp_path_factory, "monitor")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("PFP_HOME", str(root / ".pfp"))
    good = write_config(root / "good.yaml", train__search={"n_trials": 1, "study_name": "good"}, monitor=MONITOR)
    weak = write_config(root / "weak.yaml", train__epochs=1, train__search={"n_trials": 1, "study_name": "weak"},
                        monitor=MONITOR)
    use_training(root, "strong")  # what `pfp train --config good.yaml` leaves
    for args in (("register",), ("promote",), ("validate",)):
        r = pfp(*args, "--config", str(good))
        assert r.exit_code == 0, (args, r.output)
    use_training(root, "weak")  # what `pfp train --config weak.yaml` leaves
    r = pfp("register", "--config", str(weak))
    assert r.exit_code == 0, r.output
    r = pfp("register", "--training-info", str(root / "strong_info.json"), "--config", str(good))
    assert r.exit_code == 0, r.output
    snapshots = {}
    for name, version in (("weak", 2), ("same", 3)):  # each state in its own PFP_HOME: a new store URI each
        snapshots[name] = root / f"home-{name}"
        shutil.copytree(root / ".pfp", snapshots[name])
        mp.setenv("PFP_HOME", str(snapshots[name]))
        r = pfp("rollback", "--to-version", str(version), "--reason", "test setup", "--config", str(good))
        assert r.exit_code == 0, r.output
    yield {"root": root, "cfg": good, "snapshots": snapshots, "predictions": {}}
    mp.undo()


@pytest.fixture
def project(base, tmp_path, monkeypatch):
    """A fresh copy of one registry state per test: `project("weak")` or `project("same")`."""

    def make(state: str) -> dict:
        home = tmp_path / ".pfp"
        shutil.copytree(base["snapshots"][state], home)
        monkeypatch.setenv("PFP_HOME", str(home))
        log_dir = home / "predictions"
        return {**base, "home": home, "log": log_dir, "labels": log_dir / "labels"}

    return make


def split_images_of(base) -> list[Path]:
    lst = base["root"] / "dataset" / "test.txt"
    return sorted((lst.parent / ln.strip()).resolve() for ln in lst.read_text().splitlines() if ln.strip())


def _variant(path: Path, variant: str) -> bytes:
    from PIL import Image, ImageEnhance

    if variant == "plain":
        return path.read_bytes()
    im = Image.open(path).convert("RGB")
    if variant == "bright":
        im = ImageEnhance.Brightness(im).enhance(2.2)
    elif variant == "resized":
        im = im.resize((im.width * 5 // 3, im.height * 5 // 3))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def traffic(base, version: int, variant: str = "plain") -> list[dict]:
    """The test images (as sent) predicted by `version` through its registered pyfunc; cached for the module."""
    key = (version, variant)
    if key not in base["predictions"]:
        from pfp_mlops.adapters.pyfunc_predict import PyfuncPredictor
        from pfp_mlops.services.context import Context
        from pfp_mlops.settings import load_config, load_settings

        Context(load_settings(), load_config(base["cfg"])).registry  # noqa: B018 - MLflow's URIs for load_model
        out_dir = base["root"] / "sent" / variant
        out_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for src in split_images_of(base):
            dst = out_dir / src.name
            dst.write_bytes(_variant(src, variant))
            files.append((src, dst))
        preds = PyfuncPredictor(f"models:/{MODEL}/{version}").predict([d for _, d in files])
        rows = []
        for (src, dst), (w, h, boxes) in zip(files, preds, strict=True):
            label = src.parent.parent / "labels" / (src.stem + ".txt")
            rows.append({"bytes": dst.read_bytes(), "width": w, "height": h, "label": label.read_text(),
                         "boxes": [{"class_id": b.class_id, "class_name": "x", "confidence": b.confidence,
                                    "xyxy": [b.x1, b.y1, b.x2, b.y2]} for b in boxes]})
        base["predictions"][key] = rows
    return base["predictions"][key]


def replay(p: dict, version: int, *, t0: float, variant: str = "plain", label: int | None = None,
           file: str = "predictions-w1.jsonl") -> list[str]:
    """One pass of traffic as `pfp serve` logs it (one line per image, 1 s apart), images stored, `label` of them
    (all by default) labelled as `<sha256>.txt`. Returns the sha256 list."""
    p["log"].mkdir(parents=True, exist_ok=True)
    p["labels"].mkdir(parents=True, exist_ok=True)
    shas = []
    with (p["log"] / file).open("a", encoding="utf-8") as f:
        for i, row in enumerate(traffic(p, version, variant)):
            sha = hashlib.sha256(row["bytes"]).hexdigest()
            img = p["log"] / "images" / sha[:2] / f"{sha}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            img.write_bytes(row["bytes"])
            f.write(json.dumps({"schema": 1, "request_id": uuid.uuid4().hex, "image_index": 0, "ts": t0 + i,
                                "time": "", "model": MODEL, "version": version, "alias": "production",
                                "run_id": "r", "image_sha256": sha, "width": row["width"], "height": row["height"],
                                "latency_ms": 5.0, "boxes": row["boxes"]}) + "\n")
            if label is None or i < label:
                (p["labels"] / f"{sha}.txt").write_text(row["label"])
            shas.append(sha)
    return shas


T0 = 1_764_590_400.0  # 2025-12-01 12:00 UTC: every window is long closed


def monitor(p: dict, *args: str) -> tuple[int, dict]:
    return pfp_json("monitor", "run", "--config", str(p["cfg"]), *args)


def alias_version(name: str = "production") -> int:
    return int(client().get_model_version_by_alias(MODEL, name).version)


def monitoring_run(version: int):
    exp = client().get_experiment_by_name("pfp-monitoring")
    runs = client().search_runs([exp.experiment_id], filter_string=f"tags.`pfp.version` = '{version}'")
    assert len(runs) == 1
    return runs[0]


def alerts(p: dict) -> list[dict]:
    path = p["home"] / "alerts.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def test_weaker_production_fails_twice_and_is_rolled_back(project, tmp_path):
    """v2 (1 epoch) serves after v1: each window's ΔmAP50 interval (v2 − v1 shadow-scored on the same stored images)
    lies below 0. The first failing window changes nothing (exit 0); the second reaches failure_limit: rollback to
    v1 through the lifecycle (ledger reason `monitor: …`), an alert, exit 13. MLflow holds one step per window."""
    p = project("weak")
    replay(p, 2, t0=T0)
    code, out = monitor(p)
    assert code == 0, out
    (w,) = out["result"]["windows"]
    assert (w["version"], w["verdict"], w["fail_streak"], w["previous_version"]) == (2, "fail", 1, 1), w
    assert w["delta_ci"][1] < 0 and w["previous_map50"] > w["map50"]
    assert alias_version() == 2
    replay(p, 2, t0=T0 + 100)
    code, out = monitor(p)
    assert code == 13, out
    assert out["error"]["type"] == "RegressionRolledBack"
    r = out["result"]
    assert [w["step"] for w in r["windows"]] == [1] and r["windows"][0]["fail_streak"] == 2
    assert r["rollback"]["from_version"] == 2 and r["rollback"]["to_version"] == 1
    assert alias_version() == 1
    assert client().get_model_version(MODEL, "2").tags["stage"] == "rolled_back"
    exp = client().get_experiment_by_name("pfp-lifecycle")
    entry = client().search_runs([exp.experiment_id], filter_string="tags.`pfp.action` = 'rollback'",
                                 order_by=["attributes.start_time DESC"], max_results=1)[0].data.tags
    assert entry["pfp.reason"].startswith("monitor: v2 failed 2 consecutive windows")
    assert [a["event"] for a in alerts(p)][-1] == "monitor"
    run = monitoring_run(2)
    for key in ("map50", "previous_map50", "delta_ci_high", "drift.image_size", "verdict_code"):
        hist = client().get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in hist) == [0, 1], key
    assert [m.value for m in client().get_metric_history(run.info.run_id, "verdict_code")] == [2.0, 2.0]
    from mlflow.artifacts import download_artifacts

    got = Path(download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path),
                                  tracking_uri=client()._tracking_client.tracking_uri))
    assert (got / "series.png").read_bytes()[:4] == b"\x89PNG"
    details = sorted((got / "windows").glob("*.json"))
    assert [d.name for d in details] == ["0000-n0.json", "0001-n1.json"]
    assert json.loads(details[0].read_text())["performance"]["bootstrap"]["n_resamples"] == 500
    # a rerun with no new data computes nothing and does not roll back again
    code, out = monitor(p)
    assert code == 0 and out["result"]["windows"] == [] and out["result"]["rollback"] is None
    status = pfp_json("status", "--config", str(p["cfg"]))[1]["result"]
    assert status["monitor"]["version"] == 1


def test_same_quality_passes(project):
    """v3 = v1's weights: the shadow scores equal the logged ones, ΔmAP50 interval [0, 0] → pass, nothing moves."""
    p = project("same")
    replay(p, 3, t0=T0)
    code, out = monitor(p)
    assert code == 0, out
    (w,) = out["result"]["windows"]
    assert (w["verdict"], w["previous_version"], w["delta_ci"]) == ("pass", 1, [0.0, 0.0]), w
    assert w["map50"] == w["previous_map50"] and w["map50"] > 0
    assert w["drift_alerts"] == []  # the test split itself: the reference's own distribution
    assert alias_version() == 3


def test_too_few_labels_is_inconclusive_and_alerts_after_the_limit(project):
    """4 labelled images per window (< min_labelled 12): inconclusive, never a rollback; the second in a row alerts."""
    p = project("weak")
    replay(p, 2, t0=T0, label=4)
    replay(p, 2, t0=T0 + 100, label=4)
    code, out = monitor(p)
    assert code == 0, out
    ws = out["result"]["windows"]
    assert [w["verdict"] for w in ws] == ["inconclusive", "inconclusive"]
    assert "labelled images < min_labelled 12" in ws[0]["reason"] and ws[0]["labelled"] == 4
    assert [a["event"] for a in out["result"]["alerts"]] == ["monitor_inconclusive"]
    assert alias_version() == 2


def test_shifted_inputs_fire_drift_signals_without_a_rollback(project):
    """Resized (×5/3) and brightened copies of the test images served by v3: the image-size signal (and the box
    signals) exceed their thresholds → drift alerts; the labelled verdict is the model's (same weights → pass), so
    production stays. The unshifted window next to them raises none."""
    p = project("same")
    replay(p, 3, t0=T0, variant="resized")
    replay(p, 3, t0=T0 + 100, variant="bright")
    code, out = monitor(p)
    assert code == 0, out
    resized, bright = out["result"]["windows"]
    assert "image_size" in resized["drift_alerts"] and resized["drift"]["image_size"] == 1.0
    assert bright["drift_alerts"], bright["drift"]
    assert "image_size" not in bright["drift_alerts"]
    drift_alerts = [a for a in alerts(p) if a["event"] == "monitor_drift"]
    assert len(drift_alerts) == 2 and out["result"]["rollback"] is None
    assert alias_version() == 3


def test_restart_computes_each_window_once(project, monkeypatch):
    """Killed after the window reached MLflow but before the state file was written: the rerun adopts that window
    from its MLflow tag and computes only the next one; every metric has exactly one value per step."""
    from pfp_mlops.adapters.monitor_store import MonitorStore

    p = project("same")
    replay(p, 3, t0=T0)
    replay(p, 3, t0=T0 + 100)
    real = MonitorStore.log_window

    def crash_after_first(self, run_id, step, *a, **kw):
        real(self, run_id, step, *a, **kw)
        raise KeyboardInterrupt  # the process dies here: MLflow has step 0, the state file does not

    monkeypatch.setattr(MonitorStore, "log_window", crash_after_first)
    r = pfp("monitor", "run", "--config", str(p["cfg"]))
    assert r.exit_code == 130
    monkeypatch.setattr(MonitorStore, "log_window", real)
    code, out = monitor(p)
    assert code == 0, out
    assert out["result"]["adopted"] == 1 and [w["step"] for w in out["result"]["windows"]] == [1]
    run = monitoring_run(3)
    for key in ("map50", "predictions", "drift.image_size"):
        assert sorted(m.step for m in client().get_metric_history(run.info.run_id, key)) == [0, 1], key
    code, out = monitor(p)
    assert code == 0 and out["result"]["windows"] == [] and out["result"]["adopted"] == 0
    st = pfp_json("monitor", "status", "--config", str(p["cfg"]))[1]["result"]
    assert [v["windows"] for v in st["versions"]] == [2]


def test_bad_input_is_counted_never_a_crash(project):
    """A corrupt line, a half-written last line, a line of a version the registry does not have, labels of an image
    nobody sent and a malformed label file: all reported and counted; the good window is still computed."""
    p = project("same")
    shas = replay(p, 3, t0=T0)
    (p["labels"] / f"{shas[0]}.txt").write_text("0 0.5 0.5 1.7 0.2\n")  # w > 1
    (p["labels"] / f"{'ab' * 32}.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # an image never logged
    with (p["log"] / "predictions-w2.jsonl").open("w") as f:
        f.write("{not json\n")
        f.write(json.dumps({"schema": 1, "request_id": "b" * 32, "image_index": 0, "ts": T0 + 50, "model": MODEL,
                            "version": 99, "image_sha256": "c" * 64, "width": 96, "height": 96, "boxes": []}) + "\n")
        f.write('{"schema": 1, "request_id": "tru')  # a write in progress
    code, out = monitor(p)
    assert code == 0, out
    r = out["result"]
    assert (r["log"]["corrupt"], r["log"]["partial"]) == (1, 1)
    assert r["log"]["problems"] == ["predictions-w2.jsonl:1: not JSON"]
    assert r["unknown_versions"] == {"99": 1}
    assert (r["labels"]["bad"], r["labels"]["unknown_images"]) == (1, 1)
    assert "w=1.7 outside [0, 1]" in r["labels"]["problems"][0]
    (w,) = r["windows"]
    assert w["labelled"] == 15 and w["verdict"] == "pass"
    tmpl = pfp("monitor", "label-template", "--config", str(p["cfg"]))
    assert tmpl.exit_code == 0
    lines = tmpl.stdout.strip().splitlines()
    assert lines[0].startswith("sha256,") and {ln.split(",")[0] for ln in lines[1:]} == {shas[0], "c" * 64}
    code, out = pfp_json("monitor", "watch", "--every", "1s", "--max-runs", "2", "--config", str(p["cfg"]))
    assert code == 0 and out["result"] == {"runs": 2, "windows": 0, "rollbacks": [], "errors": []}, out


def test_end_to_end_through_pfp_serve(project, tmp_path, monkeypatch):
    """`pfp serve` (loopback, one worker) serves production v2; the test images are sent to /invocations twice, the
    server writes the prediction log and stores the images; labels are delivered by sha256. `pfp monitor run
    --serve-url` computes two failing windows, rolls back to v1 and the server is confirmed on v1.

    The server runs with MLflow's SERVING_MODEL_CONFIG (conf 0.001, as the serving tests use); the monitor, given the
    same environment, shadow-scores v1 and computes the reference with the same settings."""
    import base64
    import os

    import httpx
    from tests.serve_procs import MODEL_CONFIG, all_current, free_port, start_pfp_serve, stop, wait_until

    p = project("weak")
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    proc = start_pfp_serve(port, env=dict(os.environ), cwd=p["root"], log=log,
                           args=["--config", str(p["cfg"]), "--workers", "1", "--poll-seconds", "1"])
    try:
        wait_until(proc, log, lambda: all_current(url, 2))
        images = split_images_of(p)
        with httpx.Client(timeout=60) as c:
            for _ in range(2):
                for img in images:
                    body = {"dataframe_records": [{"image": base64.b64encode(img.read_bytes()).decode()}]}
                    r = c.post(url + "/invocations", json=body)
                    assert r.status_code == 200 and r.headers["x-model-version"] == "2", r.text
        files = lambda: list(p["log"].glob("predictions*.jsonl"))  # noqa: E731
        wait_until(proc, log, lambda: sum(len(f.read_text().splitlines()) for f in files()) == 2 * WINDOW, 60)
        p["labels"].mkdir(parents=True, exist_ok=True)
        for img in images:
            sha = hashlib.sha256(img.read_bytes()).hexdigest()
            (p["labels"] / f"{sha}.txt").write_text((img.parent.parent / "labels" / f"{img.stem}.txt").read_text())
        monkeypatch.setenv("SERVING_MODEL_CONFIG", MODEL_CONFIG)
        code, out = monitor(p, "--serve-url", url)
        assert code == 13, out
        r = out["result"]
        assert [(w["verdict"], w["fail_streak"]) for w in r["windows"]] == [("fail", 1), ("fail", 2)], r["windows"]
        assert r["log"]["predictions"] == 2 * WINDOW and r["labels"]["labelled_images"] == WINDOW
        assert (r["rollback"]["from_version"], r["rollback"]["to_version"]) == (2, 1)
        assert r["serving"]["ok"] is True and r["serving"]["served_version"] == 1, r["serving"]
        assert all_current(url, 1) and alias_version() == 1
        assert sorted(m.step for m in client().get_metric_history(monitoring_run(2).info.run_id, "map50")) == [0, 1]
    finally:
        stop(proc)


def test_sigkill_mid_window_then_rerun_computes_each_window_once(project, tmp_path):
    """A real `pfp monitor run` process is SIGKILLed as soon as its first window is in the state file (so during the
    second); the rerun computes what is missing and every window has exactly one MLflow step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    p = project("same")
    for k in range(3):
        replay(p, 3, t0=T0 + 100 * k)
    state = p["home"] / "monitor" / "state.json"
    out = (tmp_path / "killed.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "pfp"), "monitor", "run", "--config", str(p["cfg"])],
                            env=dict(os.environ), cwd=p["root"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            windows = json.loads(state.read_text())["models"][MODEL]["3"]["windows"]
        except (OSError, ValueError, KeyError):
            windows = []
        if len(windows) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    code, res = monitor(p)
    assert code == 0, res
    assert 1 <= len(res["result"]["windows"]) <= 2  # the killed run had computed one or two, never all three
    run = monitoring_run(3)
    for key in ("map50", "predictions", "verdict_code"):
        assert sorted(m.step for m in client().get_metric_history(run.info.run_id, key)) == [0, 1, 2], key
    assert [w["window"] for w in json.loads(state.read_text())["models"][MODEL]["3"]["windows"]] == ["n0", "n1", "n2"]


def test_time_windows_and_late_lines(project):
    """`--window 1h`: aligned hourly windows, each computed once; lines that arrive later for an hour already
    computed are counted as late, never folded into a computed window."""
    p = project("same")
    replay(p, 3, t0=T0)
    replay(p, 3, t0=T0 + 3600)
    code, out = monitor(p, "--window", "1h")
    assert code == 0, out
    assert [(w["window"], w["predictions"], w["verdict"]) for w in out["result"]["windows"]] == [
        (f"t{int(T0)}", WINDOW, "pass"), (f"t{int(T0) + 3600}", WINDOW, "pass")]
    replay(p, 3, t0=T0 + 20)  # late: into the first hour
    code, out = monitor(p, "--window", "1h")
    assert code == 0 and out["result"]["windows"] == [] and out["result"]["late"] == {"3": WINDOW}, out
