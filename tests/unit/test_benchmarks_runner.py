"""`benchmarks/run.py` runs benchmark modules and records their rows (benchmarks are not tests: no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # runs benchmarks/run.py in a child process (~4 s): the fast tier stays under 60 s
def test_runner_writes_json_and_reports_a_missing_module_as_a_failed_row(tmp_path):
    """It runs bench_bootstrap.py, reports an unknown benchmark as ok=False, and writes latest.json and the doc."""
    doc = tmp_path / "BENCH.md"
    doc.write_text("# B\n\nkept\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\ntail\n")
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--only", "bootstrap,no_such_bench", "--quick",
         "--results", str(tmp_path / "results"), "--doc", str(doc)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode == 1, out.stderr  # the missing module is a failed row, not a crash
    latest = json.loads((tmp_path / "results" / "latest.json").read_text())
    rows = {r["module"]: r for r in latest["results"]}
    assert rows["no_such_bench"]["ok"] is False and "missing" in rows["no_such_bench"]["note"]
    assert rows["bootstrap"]["value"] > 0 and rows["bootstrap"]["unit"] == "s"
    assert set(latest["machine"]) >= {"cpu", "cores", "memory_gib", "python", "versions"}
    text = doc.read_text()
    assert "kept" in text and "tail" in text and "old" not in text and "bootstrap" in text
    assert "bootstrap" in out.stdout and "no_such_bench" in out.stdout
