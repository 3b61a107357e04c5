"""Registry overhead: `pfp register` + `pfp promote` + `pfp validate` minus evaluation, on the embedded store.

Each command runs as its own process, as a user or CI runs it, through a thin wrapper that times the calls into
the evaluation adapter (`yolo.evaluate_detailed`/`yolo.evaluate`, model load and inference) and into the runtime
checks (`packaging.fresh_process_check`, `packaging.isolated_env_check`). The registry overhead is the commands'
wall time minus those: process start-up, imports, settings, MLflow store, logging the pyfunc model, registering,
aliases, tags, ledger runs, downloads of registered weights.

Three forms, each against the issue's ≤ 5 s:
- one command, `pfp run-all --from register --until validate` (imports and store start-up paid once): ≤ 5 s;
- the three services in one process with the imports paid before (what `run-all` adds after training): ≤ 5 s;
- three commands: each process pays the MLflow floor (a fresh interpreter, `import mlflow`, the SQLAlchemy store),
  measured in the same run as three interpreters that import mlflow, open the store and read the model, in
  alternation with pfp's rounds. That floor alone is above 5 s on a 2-core machine, so this form's target is
  ≤ floor + 5 s, with the ratio to the floor reported.

The fresh-process runtime check (load the logged model through `mlflow.pyfunc.load_model` in a new interpreter and
predict on a test image, ~7 s here: mlflow + torch + ultralytics imports dominate) is reported on its own row: it is
the registration's safety net against dependency drift, paid once per version by design, not registry overhead.

Setup (untimed): a 48-image synthetic dataset at 64 px, split, a 1-epoch training. Rounds: the first registers v1
and makes it production; each later round registers a new version, promotes it and validates it against the
champion (a tie: rejected, exit 10 — the same registry work as a promotion).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from _common import REPO, measure, median, pfp_project, repeats, row, scratch, spread

TARGET_S = 5.0

WRAPPER = r'''
import atexit, json, os, resource, sys, time
T0 = time.perf_counter()
spent = {"evaluation": 0.0, "runtime_check": 0.0, "evaluation_cpu": 0.0, "runtime_check_cpu": 0.0,
         "n_evaluations": 0}


def _cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(mod, name, key):
    fn = getattr(mod, name, None)
    if fn is None:
        return
    def wrapper(*a, **k):
        t, c = time.perf_counter(), _cpu()
        try:
            return fn(*a, **k)
        finally:
            spent[key] += time.perf_counter() - t
            spent[key + "_cpu"] += _cpu() - c
            if key == "evaluation":
                spent["n_evaluations"] += 1
    setattr(mod, name, wrapper)


from pfp_mlops.adapters import packaging, yolo
timed(yolo, "evaluate_detailed", "evaluation")
timed(yolo, "evaluate", "evaluation")
timed(packaging, "fresh_process_check", "runtime_check")
timed(packaging, "isolated_env_check", "runtime_check")


@atexit.register
def _dump():
    spent["in_process_s"] = time.perf_counter() - T0
    with open(os.environ["PFP_BENCH_SPENT"], "w") as fh:
        json.dump(spent, fh)


from pfp_mlops.cli.app import main
sys.argv = ["pfp", *sys.argv[1:]]
main()
'''

# The same three steps in one process, as `pfp run-all` chains them: imports and store start-up paid before the clock.
IN_PROCESS = r'''
import json, os, sys, time
exec(open(sys.argv[1]).read().split("from pfp_mlops.cli.app import main")[0])  # the timing wrappers above
import mlflow, torch, ultralytics  # noqa: F401 - paid before the clock, like run-all after its training step
from pathlib import Path
from pfp_mlops.cli.runner import Invocation
from pfp_mlops.domain.errors import GateFailed
from pfp_mlops.services.promote import run_promote
from pfp_mlops.services.register import run_register
from pfp_mlops.services.validate import run_validate
ctx = Invocation(Path(sys.argv[2]), None).ctx
ctx.registry  # noqa: B018 - store start-up, paid once per process
yolo.runtime_versions()
t = time.perf_counter()
run_register(ctx)
run_promote(ctx)
try:
    run_validate(ctx)
except GateFailed:
    pass
spent["steps_s"] = time.perf_counter() - t
'''

FLOOR = r'''
import os
from mlflow import MlflowClient
uri = "sqlite:///" + os.environ["PFP_BENCH_DB"]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
client.search_registered_models(max_results=1)
'''

CONFIG = {
    "demo": {"n_images": 48, "imgsz": 64, "seed": 0},
    "split": {"allow_missing_classes": True},
    "train": {"epochs": 1, "imgsz": 64, "batch": 8, "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 1}},  # setup only: one plain training, not the default profile's search
    "evaluation": {"imgsz": 64, "batch": 16},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}


def run() -> list[dict]:
    with scratch("registry") as tmp:
        return _run(tmp)


def _run(tmp: Path) -> list[dict]:
    cfg, env, pfp = pfp_project(tmp, CONFIG, (["demo-data"], ["split"], ["train"]), timeout=600)
    wrapper = tmp / "timed_pfp.py"
    wrapper.write_text(WRAPPER)

    def command(*args: str) -> dict:
        spent_file = tmp / "spent.json"
        spent_file.unlink(missing_ok=True)
        m = measure([sys.executable, str(wrapper), *args, "--config", str(cfg), "--json"],
                    env={**env, "PFP_BENCH_SPENT": str(spent_file)}, cwd=tmp, check=False, timeout=600)
        if m.proc.returncode not in (0, 10):
            raise RuntimeError(f"pfp {' '.join(args)} exited {m.proc.returncode}: {m.proc.stderr.strip()[-500:]}")
        spent = json.loads(spent_file.read_text())
        return {"wall": m.wall, "cpu": m.cpu, "exit": m.proc.returncode, **spent}

    def in_process() -> dict:
        spent_file = tmp / "spent.json"
        spent_file.unlink(missing_ok=True)
        script = tmp / "in_process.py"
        script.write_text(IN_PROCESS)
        measure([sys.executable, str(script), str(wrapper), str(cfg)], env={**env, "PFP_BENCH_SPENT": str(spent_file)},
                cwd=tmp, timeout=600)
        return json.loads(spent_file.read_text())

    # The floor any MLflow-based command pays on this machine: a fresh interpreter that imports mlflow, opens the
    # local store (tracking + registry) and reads the registered model. Three of them = three commands' minimum.
    floor_script = tmp / "mlflow_floor.py"
    floor_script.write_text(FLOOR)

    def floor() -> float:
        db = str(tmp / ".pfp" / "mlflow.db")
        return measure([sys.executable, str(floor_script)], env={**env, "PFP_BENCH_DB": db}, cwd=tmp, timeout=300).wall

    rounds, floors, one_cmd = [], [], []
    for i in range(repeats(3, 1) + 1):  # the first round makes v1 production (no champion yet)
        steps = {name: command(name) for name in ("register", "promote", "validate")}
        rounds.append(steps)
        if i:  # alternate with the pfp rounds: the same load on both sides of the ratio
            floors.append(sum(floor() for _ in range(3)))
            one_cmd.append(command("run-all", "--from", "register", "--until", "validate"))
    measured = rounds[1:]  # champion-vs-challenger rounds: the steady state

    def total(r: dict, key: str) -> float:
        return sum(s[key] for s in r.values())

    inproc = [in_process() for _ in range(repeats(2, 1))]
    inproc_overhead = [r["steps_s"] - r["evaluation"] - r["runtime_check"] for r in inproc]
    overhead = [total(r, "wall") - total(r, "evaluation") - total(r, "runtime_check") for r in measured]
    overhead_cpu = [total(r, "cpu") - total(r, "evaluation_cpu") - total(r, "runtime_check_cpu") for r in measured]
    one_overhead = [r["wall"] - r["evaluation"] - r["runtime_check"] for r in one_cmd]
    beyond = [o - f for o, f in zip(overhead, floors, strict=True)]
    first = rounds[0]
    first_overhead = total(first, "wall") - total(first, "evaluation") - total(first, "runtime_check")
    per_cmd = {c: median([r[c]["wall"] - r[c]["evaluation"] - r[c]["runtime_check"] for r in measured])
               for c in ("register", "promote", "validate")}
    evals = [total(r, "evaluation") for r in measured]
    n_evals = [int(total(r, "n_evaluations")) for r in measured]
    checks = [r["register"]["runtime_check"] for r in rounds]
    walls = [total(r, "wall") for r in measured]
    breakdown = ", ".join(f"{c} {s:.2f} s" for c, s in per_cmd.items())
    return [
        row("registry_overhead_one_command", median(one_overhead), "s", target=f"≤ {TARGET_S:g} s",
            ok=median(one_overhead) <= TARGET_S,
            note=f"`pfp run-all --from register --until validate`: the three steps as one CLI call, wall minus "
                 f"evaluation and runtime check, imports and store start-up included; {spread(one_overhead)}"),
        row("registry_overhead_in_process", median(inproc_overhead), "s", target=f"≤ {TARGET_S:g} s",
            ok=median(inproc_overhead) <= TARGET_S,
            note=f"the three services in one process, as run-all chains them after training (imports paid "
                 f"before); {spread(inproc_overhead)}"),
        row("registry_overhead", median(overhead), "s", baseline=median(floors),
            target=f"≤ floor + {TARGET_S:g} s", ok=median(beyond) <= TARGET_S,
            note=f"register, promote, validate as 3 processes, wall minus evaluation and runtime check; {breakdown}; "
                 f"{spread(overhead)}; baseline = MLflow floor: 3 fresh interpreters that import mlflow, open the "
                 f"store and read the model ({spread(floors)}); pfp beyond the floor {median(beyond):.2f} s; "
                 f"first deployment round {first_overhead:.2f} s"),
        row("registry_overhead_cpu", median(overhead_cpu), "s",
            note=f"the same in CPU seconds (user+system, children included): the wall time on idle cores; "
                 f"{spread(overhead_cpu)}"),
        row("registry_runtime_check", median(checks), "s",
            note=f"fresh-process load + predict at register (safety, by design); {spread(checks)}"),
        row("registry_evaluation", median(evals), "s",
            note=f"{median(n_evals):.0f} evaluations in a measured round (the same weights are registered again, so "
                 f"pfp's evaluation cache answers; promote/validate reuse the version's tag); 64 px, tiny test split"),
        row("registry_commands_wall", median(walls), "s", note="register+promote+validate, 3 processes, all included"),
    ]

if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    os.environ.setdefault("PFP_BENCH_QUICK", "1")
    for r in run():
        print(r)
