"""Shared by the step scripts: the common options, `Project.open`, one summary line, the CLI's exit codes.

Each script is a few lines over the public API (`from pfp_mlops import Project`); this module only keeps their
command-line behaviour identical to `pfp <step>`: `--config`, `--profile`, `--set KEY=VALUE`, `--json`, errors as
one `pfp: error: …` line on stderr, and the exit codes of `pfp_mlops.cli.errors` (a gate outcome, returned as a
value by the API, maps to its code: 10 refused/rejected, 11 inconclusive, 13 rolled back).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def parser(description: str) -> argparse.ArgumentParser:
    """The options every step script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--project", default=".", help="The project folder (default: the current one).")
    p.add_argument("--config", "-c", default=None,
                   help="Pipeline YAML (default: PFP_CONFIG or configs/<profile>.yaml).")
    p.add_argument("--profile", default=None, help="Config profile: default, demo, … (PFP_PROFILE).")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="Override one config key for this run (repeatable), as `pfp --set`.")
    p.add_argument("--json", action="store_true", help="Print the result as JSON on stdout.")
    return p


def main(args: argparse.Namespace, step: Callable[[Any], Any]) -> NoReturn:
    """Open the project, run `step(project)`, print its summary (or JSON) and exit with the CLI's code."""
    from pfp_mlops import Project
    from pfp_mlops.cli.errors import exit_code_for, exit_code_of_outcome
    from pfp_mlops.cli.output import print_error, print_json, scrub

    try:
        project = Project.open(args.project, config=args.config, profile=args.profile, overrides=args.overrides)
        result = step(project)
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - one line and the CLI's code, like `pfp`
        message = getattr(e, "message", None) or ("interrupted" if isinstance(e, KeyboardInterrupt) else
                                                  f"internal error: {type(e).__name__}: {str(e)[:300]}")
        code = exit_code_for(e)
        if args.json:
            print_json({"ok": False, "exit_code": code, "error": {"type": type(e).__name__, "message": message}})
        print_error(message)
        sys.exit(code)
    code = exit_code_of_outcome(result)
    if args.json:
        print_json({"ok": code == 0, "exit_code": code, "result": result.to_dict()})
    else:
        print(scrub(summary(result)))
    sys.exit(code)


def summary(r: Any) -> str:
    """One line a person reads: what the step did or why it did not."""
    kind = type(r).__name__
    if kind == "SplitManifest":
        return (f"split {r.fingerprint}: {r.counts['train']} train / {r.counts['valid']} valid / {r.counts['test']} "
                f"test images -> {r.data_yaml}")
    if kind == "TrainResult":
        return f"trained: run {r.run_id}, valid mAP50 {r.valid_metrics.get('map50', float('nan')):.4f} -> {r.weights}"
    if kind == "RegisterResult":
        return f"registered {r.name} v{r.version} (test mAP50 {r.evaluation.map50:.4f}) as {r.model_uri}"
    if kind == "PromoteResult":
        return f"{r.name} v{r.version} -> {r.alias}"
    if kind == "Refused":
        return f"{r.step}: refused: {'; '.join(r.reasons)}"
    if kind == "ValidateResult":
        return f"validate: {r.action}; production is v{r.production}; {'; '.join(r.decision.reasons)}"
    return str(r.to_dict() if hasattr(r, "to_dict") else r)
