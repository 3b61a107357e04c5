"""Prometheus metrics of `pfp serve` (prometheus-client).

With several workers, `pfp serve` sets PROMETHEUS_MULTIPROC_DIR before the workers start, so every worker's
counters land in one folder and `/metrics` (answered by any worker) sums them; the served-version gauge keeps
one sample per worker (label `pid`).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _mp

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter("pfp_serve_requests_total", "HTTP requests answered", ["route", "status", "version"])
IMAGES = Counter("pfp_serve_images_total", "Images scored", ["version"])
LATENCY = Histogram("pfp_serve_request_seconds", "Request latency (seconds)", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RELOADS = Counter("pfp_serve_reloads_total", "Model swaps done (a new version is serving)")
RELOAD_FAILURES = Counter("pfp_serve_reload_failures_total",
                          "Reloads that failed (download, load or warm-up); the previous version kept serving")
LOG_DROPPED = Counter("pfp_serve_prediction_log_dropped_total", "Prediction-log lines dropped (queue full)")
MODEL_VERSION = Gauge("pfp_serve_model_version", "Registry version this worker serves", ["model", "alias"],
                      multiprocess_mode="liveall")
ALIAS_VERSION = Gauge("pfp_serve_alias_version", "Version the alias held at the last check", ["model", "alias"],
                      multiprocess_mode="livemax")


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _mp.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def worker_exited() -> None:
    """Drop this worker's live gauges from the shared multiprocess folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _mp.mark_process_dead(os.getpid())
