"""The HTTP face of `pfp serve`: MLflow's scoring routes, Open Inference Protocol health, metrics, admin reload.

Every response carries X-Model-Name / X-Model-Version / X-Model-Alias / X-Model-Run-Id: for `/invocations` the
version that answered this request, elsewhere the version serving now.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from pfp_mlops.adapters import mlflow_scoring as ms
from pfp_mlops.serving import metrics, state
from pfp_mlops.serving.follower import AliasFollower
from pfp_mlops.serving.holder import ModelHolder, Served
from pfp_mlops.serving.images import boxes_by_image, read_images
from pfp_mlops.serving.predlog import log_lines
from pfp_mlops.serving.runtime import Options, Worker

log = logging.getLogger("pfp.serve")
JSON = "application/json"


def create_app() -> FastAPI:
    """uvicorn's factory: one app (model holder, follower, prediction log) per worker process."""
    opts = Options.from_env()
    worker = Worker(opts)
    holder = ModelHolder()
    follower = AliasFollower(name=opts.model, alias=opts.alias, holder=holder, resolve=worker.resolve,
                             load=worker.load, poll_seconds=opts.poll_seconds, state_dir=worker.state_dir,
                             alert=worker.alert)
    plog = worker.prediction_log(on_drop=metrics.LOG_DROPPED.inc)
    token = worker.token()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        follower.start()
        try:
            yield
        finally:  # uvicorn calls this after the in-flight requests finished (graceful SIGTERM)
            follower.stop()
            if plog is not None:
                await asyncio.to_thread(plog.close)
            state.remove_worker(worker.state_dir)
            metrics.worker_exited()
            log.info("worker stopped")

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def model_headers(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        served = holder.current
        if "x-model-version" not in response.headers:
            response.headers.update(_headers(served, opts))
        route = request.url.path if request.url.path in _ROUTES else "other"
        version = response.headers.get("x-model-version", "")
        metrics.REQUESTS.labels(route, str(response.status_code), version).inc()
        metrics.LATENCY.labels(route).observe(time.perf_counter() - t0)
        return response

    async def ping():
        ok = holder.current is not None
        return Response("\n", status_code=200 if ok else 503, media_type=JSON)

    app.get("/ping")(ping)
    app.get("/health")(ping)

    @app.get("/version")
    async def version():  # as MLflow: the MLflow version; the model version is in the X-Model-* headers
        return Response(ms.mlflow_version(), media_type=JSON)

    @app.post("/invocations")
    async def invocations(request: Request):
        t0 = time.perf_counter()
        try:
            body = await _read_body(request, opts.max_request_bytes)
        except ms.ScoringError as e:
            return Response(e.content, status_code=e.status, media_type=e.media_type)
        with holder.acquire() as served:
            if served is None:
                return Response(json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE",
                                            "message": "no model loaded yet"}), status_code=503, media_type=JSON)
            headers = served.headers()
            try:
                content, images, boxes = await asyncio.to_thread(_score, served, body,
                                                                 request.headers.get("content-type"))
            except ms.ScoringError as e:
                return Response(e.content, status_code=e.status, media_type=e.media_type, headers=headers)
            except Exception as e:  # noqa: BLE001 - a bug must not leak a traceback to the client
                log.exception("invocation failed")
                return Response(json.dumps({"error_code": "INTERNAL_ERROR", "message": type(e).__name__}),
                                status_code=500, media_type=JSON, headers=headers)
        request_id = uuid.uuid4().hex
        latency_ms = (time.perf_counter() - t0) * 1000
        metrics.IMAGES.labels(str(served.version)).inc(len(images))
        if plog is not None:
            plog.put(log_lines(request_id=request_id, ts=time.time(), model=served.name, version=served.version,
                               alias=served.alias, run_id=served.run_id, images=images, boxes=boxes,
                               latency_ms=latency_ms), images)
        return Response(content, media_type=JSON, headers={**headers, "X-Request-Id": request_id})

    @app.get("/v2/health/live")
    async def live():
        return Response(json.dumps({"live": True}), media_type=JSON)

    @app.get("/v2/health/ready")
    async def ready():
        """200 while this worker serves a model (also while a failed reload keeps the old one); the body says
        whether ALL workers serve the version the alias holds now (`all_current`)."""
        served = holder.current
        body = {"ready": served is not None, "model": opts.model, "alias": opts.alias,
                "version": served.version if served else None,
                **state.summary(worker.state_dir, me=follower.snapshot())}
        return Response(json.dumps(body), status_code=200 if served else 503, media_type=JSON)

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str):
        served = holder.current
        if name != opts.model or served is None:
            return Response(json.dumps({"error": f"model {name!r} is not served here"}), status_code=404,
                            media_type=JSON)
        return Response(json.dumps({
            "name": served.name, "versions": [str(served.version)], "platform": "mlflow_pyfunc",
            "alias": served.alias, "run_id": served.run_id, "ready": True, "load_seconds": served.load_seconds,
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": c, "datatype": t, "shape": [-1]} for c, t in _OUTPUTS]}), media_type=JSON)

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    @app.post("/admin/reload")
    async def admin_reload(request: Request):
        denied = _denied(request, token)
        if denied is not None:
            return Response(json.dumps({"error": denied[1]}), status_code=denied[0], media_type=JSON)
        state.request_reload(worker.state_dir)
        return Response(json.dumps({"reload": "requested", "alias": opts.alias,
                                    "alias_version": follower.alias_version,
                                    "version": holder.current.version if holder.current else None}),
                        status_code=202, media_type=JSON)

    return app


_ROUTES = {"/ping", "/health", "/version", "/invocations", "/v2/health/live", "/v2/health/ready", "/metrics",
           "/admin/reload"}
_OUTPUTS = [("image", "INT64"), ("class_id", "INT64"), ("class_name", "BYTES"), ("confidence", "FP32"),
            ("x1", "FP32"), ("y1", "FP32"), ("x2", "FP32"), ("y2", "FP32")]


def _headers(served: Served | None, opts: Options) -> dict[str, str]:
    if served is not None:
        return served.headers()
    return {"X-Model-Name": opts.model, "X-Model-Version": "", "X-Model-Alias": opts.alias, "X-Model-Run-Id": ""}


def _score(served: Served, body: bytes, content_type: str | None) -> tuple[str, list[Any], list[Any]]:
    """Parse as MLflow does, check the images (clear 400s), predict, shape the answer and the log records."""
    parsed = ms.parse_request(body, content_type, served.model)
    images = read_images(parsed.data)
    predictions = ms.predict(served.model, parsed)
    return ms.predictions_json(predictions), images, boxes_by_image(predictions, len(images))


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes (by Content-Length, or while it streams in)."""
    declared = request.headers.get("content-length")
    too_big = ms.bad_request(f"request body larger than the limit of {limit} bytes "
                             f"(serve.max_request_bytes)", "REQUEST_LIMIT_EXCEEDED", 413)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _denied(request: Request, token: str | None) -> tuple[int, str] | None:
    """PFP_SERVE_TOKEN set: a matching `Authorization: Bearer` is required. Unset: loopback clients only."""
    if token:
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), token.encode()):
            return 401, "a valid 'Authorization: Bearer <PFP_SERVE_TOKEN>' header is required"
        return None
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return 403, "reload is refused from non-loopback clients unless PFP_SERVE_TOKEN is set"
