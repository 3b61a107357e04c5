"""The pure parts of `pfp serve`: the model holder's swap and in-flight counts, the images of a request, MLflow's
content-type rules, the prediction-log line format and its writer (rotation, image store)."""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from pfp_mlops.adapters.mlflow_scoring import ScoringError, parse_request
from pfp_mlops.serving import state
from pfp_mlops.serving.holder import ModelHolder, Served
from pfp_mlops.serving.images import boxes_by_image, image_values, read_image
from pfp_mlops.serving.predlog import PredictionLog, iso_time, log_lines


def _served(version: int, freed: list[int] | None = None) -> Served:
    return Served("m", version, f"run{version}", "production", object(),
                  on_free=(lambda s: freed.append(s.version)) if freed is not None else None)


def _png(w: int = 8, h: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_holder_swap_frees_the_old_model_only_after_its_last_request():
    """A request keeps the version it started with across a swap; the old model is freed when it finishes."""
    freed: list[int] = []
    holder = ModelHolder()
    holder.swap(_served(1, freed))
    with holder.acquire() as first:
        assert first is not None and first.version == 1 and first.in_flight == 1
        holder.swap(_served(2, freed))
        assert holder.current.version == 2
        assert freed == [] and first.model is not None  # still in flight
        with holder.acquire() as second:
            assert second.version == 2
    assert freed == [1] and first.model is None and first.freed
    assert holder.retired() == []
    holder.swap(_served(3, freed))  # an idle old model is freed at once
    assert freed == [1, 2]


def test_holder_counts_concurrent_requests():
    """Acquire/release from many threads leaves the count at zero and frees the retired model exactly once."""
    freed: list[int] = []
    holder = ModelHolder()
    holder.swap(_served(1, freed))
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(200):
            with holder.acquire():
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    holder.swap(_served(2, freed))
    for t in threads:
        t.join()
    assert freed == [1]
    assert holder.current.in_flight == 0
    with ModelHolder().acquire() as nothing:
        assert nothing is None


def test_read_image_accepts_base64_and_paths(tmp_path: Path):
    """Base64 bytes and an existing file path give the same sha256, size and extension."""
    data = _png(8, 6)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    a = read_image(0, base64.b64encode(data).decode())
    b = read_image(1, str(path))
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    assert (a.width, a.height, a.ext) == (8, 6, "png")


@pytest.mark.parametrize(("value", "needle"), [
    ("not base64 !!", "neither an existing file path nor valid base64"),
    (base64.b64encode(b"hello").decode(), "not a readable image"),
    ("", "empty"),
    (12, "expected a string"),
])
def test_bad_images_are_clear_400s(value, needle):
    """A value that is no image is a 400 naming the image index and what is wrong."""
    with pytest.raises(ScoringError) as e:
        read_image(3, value)
    assert e.value.status == 400
    body = json.loads(e.value.content)
    assert body["error_code"] == "BAD_REQUEST" and "image 3" in body["message"] and needle in body["message"]


@pytest.mark.slow  # pandas
def test_image_values_need_an_image_column():
    import pandas as pd

    assert image_values(pd.DataFrame({"image": ["a", "b"]})) == ["a", "b"]
    assert image_values({"image": ["a"]}) == ["a"]
    with pytest.raises(ScoringError) as e:
        image_values(pd.DataFrame({"img": ["a"]}))
    assert e.value.status == 400


class _Meta:
    def get_input_schema(self):
        return None


class _Model:
    metadata = _Meta()


@pytest.mark.slow  # imports mlflow's scoring server (~2.5 s)
@pytest.mark.parametrize(("content_type", "status"), [
    (None, 415), ("text/plain", 415), ("application/json; charset=latin-1", 415),
    ("application/json; format=pandas-split", 415),
])
def test_content_type_rules_follow_mlflow(content_type, status):
    """Unsupported type, charset or parameter: 415 text/plain, as MLflow's scoring server answers."""
    with pytest.raises(ScoringError) as e:
        parse_request(b"{}", content_type, _Model())
    assert e.value.status == status and e.value.media_type == "text/plain"


@pytest.mark.slow
@pytest.mark.parametrize("payload", [
    {"dataframe_records": [{"image": "x"}, {"image": "y"}]},
    {"dataframe_split": {"columns": ["image"], "data": [["x"], ["y"]]}},
    {"instances": [{"image": "x"}, {"image": "y"}]},
    {"inputs": {"image": ["x", "y"]}},
])
def test_the_four_mlflow_request_formats_parse_to_the_image_column(payload):
    """dataframe_records / dataframe_split / instances / inputs all give the images in request order."""
    parsed = parse_request(json.dumps(payload).encode(), "application/json; charset=utf-8", _Model())
    assert [str(v) for v in image_values(parsed.data)] == ["x", "y"]


@pytest.mark.slow
@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"foo": 1}', b'{"inputs": 1, "instances": 2}'])
def test_malformed_json_is_400_with_mlflow_error_json(body):
    with pytest.raises(ScoringError) as e:
        parse_request(body, "application/json", _Model())
    assert e.value.status == 400
    assert json.loads(e.value.content)["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def test_log_lines_follow_schema_1():
    """One line per image, same request id, CONTRACTS §3 keys and types, boxes in pixels."""
    from collections import namedtuple

    row = namedtuple("row", ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"])

    class Preds(list):  # the shape of the model's DataFrame, without importing pandas
        def itertuples(self, index=False):
            return iter(self)

    images = [read_image(0, base64.b64encode(_png(8, 6)).decode()),
              read_image(1, base64.b64encode(_png(4, 4)).decode())]
    preds = Preds([row(1, 0, "rock", 0.9, 1.0, 2.0, 3.0, 4.0)])
    boxes = boxes_by_image(preds, 2)
    lines = log_lines(request_id="a" * 32, ts=1764594000.1234, model="m", version=3, alias="production",
                      run_id="r", images=images, boxes=boxes, latency_ms=12.345)
    rows = [json.loads(x) for x in lines]
    assert len(rows) == 2 and {r["request_id"] for r in rows} == {"a" * 32}
    assert set(rows[0]) == {"schema", "request_id", "image_index", "ts", "time", "model", "version", "alias",
                            "run_id", "image_sha256", "width", "height", "latency_ms", "boxes"}
    assert rows[0]["schema"] == 1 and rows[0]["version"] == 3 and rows[0]["time"] == "2025-12-01T13:00:00.123Z"
    assert [r["image_index"] for r in rows] == [0, 1] and rows[0]["boxes"] == []
    assert rows[1]["boxes"] == [{"class_id": 0, "class_name": "rock", "confidence": 0.9,
                                 "xyxy": [1.0, 2.0, 3.0, 4.0]}]
    assert (rows[1]["width"], rows[1]["height"]) == (4, 4)
    assert iso_time(0.5) == "1970-01-01T00:00:00.500Z"


def test_prediction_log_rotates_stores_images_once_and_uploads_finished_files(tmp_path: Path):
    """Past max_bytes a new file starts; each image is stored once, content-addressed; closed files are handed
    to the uploader; every line is complete JSON."""
    uploaded: list[str] = []
    plog = PredictionLog(tmp_path, max_bytes=2048, upload=lambda p, key: uploaded.append(key)).start()
    img = read_image(0, base64.b64encode(_png()).decode())
    line = json.dumps({"schema": 1, "pad": "x" * 500})
    for _ in range(10):
        plog.put([line], [img])
    plog.close()
    files = sorted(tmp_path.glob("predictions*.jsonl"))
    assert len(files) >= 2
    assert sum(len(f.read_text().splitlines()) for f in files) == 10
    assert all(json.loads(x)["schema"] == 1 for f in files for x in f.read_text().splitlines())
    assert sorted(k for k in uploaded if k.endswith(".jsonl")) == [f.name for f in files]
    assert [k for k in uploaded if not k.endswith(".jsonl")] == [f"images/{img.sha256[:2]}/{img.sha256}.png"]
    stored = list((tmp_path / "images").rglob("*.png"))
    assert [p.name for p in stored] == [f"{img.sha256}.png"] and stored[0].parent.name == img.sha256[:2]
    assert stored[0].read_bytes() == img.data


def test_prediction_log_never_blocks_a_full_queue(tmp_path: Path):
    """A full queue drops (and counts) instead of blocking the request."""
    drops: list[int] = []
    plog = PredictionLog(tmp_path, queue_size=1, on_drop=lambda: drops.append(1))  # writer not started
    plog.put(["{}"], [])
    plog.put(["{}"], [])
    assert plog.dropped == 1 and drops == [1]


def test_worker_state_summary(tmp_path: Path):
    """all_current only when every expected worker serves the version the alias held at the latest check."""
    import os

    state.reset(tmp_path, workers=2, model="m", alias="production")
    me = {"pid": os.getpid(), "version": 2, "alias_version": 2, "alias_checked": 10.0}
    state.write_worker(tmp_path, me)
    s = state.summary(tmp_path, me=me)
    assert s["alias_version"] == 2 and s["expected_workers"] == 2 and not s["all_current"]  # one of two
    (tmp_path / "worker-1.json").write_text(json.dumps({"pid": 1, "version": 2, "alias_version": 3,
                                                        "alias_checked": 11.0}))
    s = state.summary(tmp_path, me=me)  # pid 1 (init) is alive: counted; it saw v3 last
    assert s["alias_version"] == 3 and not s["all_current"]
    (tmp_path / "worker-1.json").write_text(json.dumps({"pid": 1, "version": 2, "alias_version": 2,
                                                        "alias_checked": 11.0}))
    assert state.summary(tmp_path, me=me)["all_current"]
    assert state.reload_marker(tmp_path) == 0
    assert state.request_reload(tmp_path) == state.reload_marker(tmp_path) > 0


class _FakeServer:
    """A real HTTP server on loopback answering /admin/reload and /v2/health/ready like `pfp serve`."""

    def __init__(self, ready: dict, reload_status: int = 202) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.ready, self.reloads, self.auth = ready, 0, []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                outer.reloads += 1
                outer.auth.append(self.headers.get("Authorization"))
                self._send(reload_status, {"reload": "requested"})

            def do_GET(self):
                self._send(200, outer.ready)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_confirm_serving_ok_when_every_worker_serves_the_version():
    from pfp_mlops.services.serving import confirm_serving

    srv = _FakeServer({"model": "m", "version": 4, "expected_workers": 2,
                       "workers": [{"pid": 1, "version": 4}, {"pid": 2, "version": 4}]})
    try:
        out = confirm_serving(srv.url, model="m", version=4, timeout_s=2, token="tok", poll_s=0.05)
    finally:
        srv.close()
    assert out["ok"] is True and out["served_version"] == 4 and "2 worker(s)" in out["message"]
    assert srv.reloads == 1 and srv.auth == ["Bearer tok"]
    assert set(out) == {"url", "ok", "served_version", "seconds", "message"}


def test_confirm_serving_warns_when_a_worker_does_not_follow():
    """One worker still on v3 after the bound: ok False, the message names what the workers serve and why."""
    from pfp_mlops.services.serving import confirm_serving

    srv = _FakeServer({"model": "m", "version": 3, "expected_workers": 2,
                       "workers": [{"pid": 1, "version": 4},
                                   {"pid": 2, "version": 3, "last_error": "reload to v4 failed: boom"}]})
    try:
        out = confirm_serving(srv.url, model="m", version=4, timeout_s=0.15, poll_s=0.05)
    finally:
        srv.close()
    assert out["ok"] is False
    assert "did not follow to v4" in out["message"] and "v3, v4" in out["message"] and "boom" in out["message"]


def test_confirm_serving_bad_url_and_dead_server():
    """A malformed URL is a UserError; a server that is not there is a warning within the bound, never a raise."""
    from pfp_mlops.domain.errors import UserError
    from pfp_mlops.services.serving import confirm_serving

    with pytest.raises(UserError):
        confirm_serving("ftp://x", model="m", version=1)
    with pytest.raises(UserError):
        confirm_serving("http://host/path?q", model="m", version=1)
    srv = _FakeServer({})
    url = srv.url
    srv.close()
    out = confirm_serving(url, model="m", version=1, timeout_s=0.15, poll_s=0.05)
    assert out["ok"] is False and "did not follow" in out["message"]


@pytest.mark.parametrize("command", [["rollback"], ["promote"], ["validate"]])
def test_a_malformed_serve_url_is_refused_before_anything_moves(command, workdir):
    """--serve-url is checked first: exit 2, one error line, no registry touched (no store created)."""
    from tests.helpers import pfp

    r = pfp(*command, "--serve-url", "ftp://nowhere")
    assert r.exit_code == 2
    assert "--serve-url" in r.stderr and r.stderr.count("\n") == 1
    assert not (workdir / ".pfp" / "mlflow.db").exists()
