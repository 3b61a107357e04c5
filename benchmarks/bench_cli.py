"""CLI latency: `pfp --help` against dvc/yolo/mlflow, and `pfp status --json` against a plain MLflow client script.

`pfp --help` must stay at or under `dvc --help` (tests/unit/test_imports.py guards the imports behind it).
`pfp status --json` on an embedded registry holding 20 versions must cost at most 1.2× a script that imports mlflow
and does the same reads (registered model with its aliases, all versions with their tags) and prints JSON: both
pay mlflow's import and SQLite store start-up, so the ratio is pfp's own overhead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import BIN, REPO, alternate, measure, median, offline_env, repeats, row, scratch, spread

N_VERSIONS = 20
MODEL = "pfp-detector"

CLIENT_SCRIPT = f"""
import json, sys
from mlflow import MlflowClient
uri = sys.argv[1]
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
rm = c.get_registered_model("{MODEL}")
aliases = {{}}
for a, v in (rm.aliases or {{}}).items():
    aliases.setdefault(int(v), []).append(a)
rows = []
for mv in sorted(c.search_model_versions("name = '{MODEL}'", max_results=10000), key=lambda m: int(m.version)):
    t = mv.tags or {{}}
    rows.append({{"version": int(mv.version), "aliases": sorted(aliases.get(int(mv.version), [])),
                 "stage": t.get("stage"), "map50": t.get("metric.map50"), "recall": t.get("metric.recall"),
                 "split_fingerprint": t.get("split_fingerprint"), "run_id": mv.run_id}})
print(json.dumps({{"model": rm.name, "versions": rows}}))
"""


def build_registry(home: Path) -> str:
    """20 versions of one small weights file, with pfp's tags, aliases staging/production; returns the URI."""
    from mlflow import MlflowClient

    home.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = c.create_experiment("pfp-training", artifact_location=(home / "artifacts").as_uri())
    weights = home / "best.pt"
    weights.write_bytes(b"\0" * 65536)
    run = c.create_run(exp)
    c.log_artifact(run.info.run_id, str(weights), "model")
    c.set_terminated(run.info.run_id)
    c.create_registered_model(MODEL)
    source = f"runs:/{run.info.run_id}/model"
    for i in range(1, N_VERSIONS + 1):
        tags = {"stage": "archived", "metric.map50": f"{0.9 + i / 1000:.6f}", "metric.recall": "0.900000",
                "split_fingerprint": "0123456789abcdef", "training_run_id": run.info.run_id,
                "runtime.torch": "2.14.1", "runtime.ultralytics": "8.4.0", "registered_by": "bench"}
        c.create_model_version(MODEL, source, run_id=run.info.run_id, tags=tags)
    c.set_registered_model_alias(MODEL, "production", str(N_VERSIONS - 1))
    c.set_model_version_tag(MODEL, str(N_VERSIONS - 1), "stage", "production")
    c.set_registered_model_alias(MODEL, "staging", str(N_VERSIONS))
    c.set_model_version_tag(MODEL, str(N_VERSIONS), "stage", "staging")
    return uri


def bench_help() -> list[dict]:
    with scratch("help") as tmp:
        env = offline_env(tmp)
        cmds = {"pfp --help": [str(BIN / "pfp"), "--help"], "dvc --help": [str(BIN / "dvc"), "--help"],
                "yolo help": [str(BIN / "yolo"), "help"], "mlflow --help": [str(BIN / "mlflow"), "--help"]}
        fast = {k: cmds[k] for k in ("pfp --help", "dvc --help")}
        slow = {k: cmds[k] for k in ("yolo help", "mlflow --help")}
        fast_t = alternate({k: (lambda a=a: measure(a, env=env, cwd=tmp).wall) for k, a in fast.items()},
                           repeats(15, 5))
        slow_t = alternate({k: (lambda a=a: measure(a, env=env, cwd=tmp).wall) for k, a in slow.items()},
                           repeats(3, 1), warmup=0 if repeats(3, 1) == 1 else 1)
    t = {k: median(v) for k, v in {**fast_t, **slow_t}.items()}
    dvc = t["dvc --help"]
    rows = [row("cli_help_pfp", t["pfp --help"], "s", baseline=dvc, target="≤ 1.0× dvc --help",
                ok=t["pfp --help"] <= dvc, note=f"median, {spread(fast_t['pfp --help'])}, alternating with dvc")]
    for k in ("dvc --help", "yolo help", "mlflow --help"):
        samples = {**fast_t, **slow_t}[k]
        rows.append(row(f"cli_help_ref_{k.split()[0]}", t[k], "s", baseline=dvc, note=f"reference; {spread(samples)}"))
    return rows


def bench_status() -> list[dict]:
    with scratch("status") as tmp:
        home = tmp / ".pfp"
        uri = build_registry(home)
        env = offline_env(home)
        script = tmp / "client_status.py"
        script.write_text(CLIENT_SCRIPT)
        pfp_argv = [str(BIN / "pfp"), "status", "--json"]
        client_argv = [sys.executable, str(script), uri]
        # correctness first: both see the 20 versions
        p = measure(pfp_argv, env=env, cwd=tmp).proc
        b = measure(client_argv, env=env, cwd=tmp).proc
        import json

        n_pfp = len(json.loads(p.stdout)["result"]["versions"])
        n_client = len(json.loads(b.stdout)["versions"])
        if n_pfp != N_VERSIONS or n_client != N_VERSIONS:
            raise RuntimeError(f"expected {N_VERSIONS} versions, pfp saw {n_pfp}, the client script {n_client}")
        samples = alternate({"pfp": lambda: measure(pfp_argv, env=env, cwd=tmp).wall,
                             "client": lambda: measure(client_argv, env=env, cwd=tmp).wall}, repeats(7, 3), warmup=0)
    pfp_s, client_s = median(samples["pfp"]), median(samples["client"])
    return [
        row("cli_status_20_versions", pfp_s, "s", baseline=client_s, target="≤ 1.2× mlflow client script",
            ok=pfp_s <= 1.2 * client_s,
            note=f"pfp {spread(samples['pfp'])}; client {spread(samples['client'])}; embedded SQLite store"),
    ]


def run() -> list[dict]:
    return bench_help() + bench_status()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    for r in run():
        print(r)
