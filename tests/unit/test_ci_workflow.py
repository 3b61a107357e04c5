"""The example CI workflow calls the real CLI: every pfp command and option it uses exists (README "CI")."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import pfp

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "pipeline.yml"
USED = {"run-all": ("--json",), "rollback": ("--json", "--to-version", "--dry-run"), "doctor": ("--no-gpu",)}


@pytest.mark.parametrize("command, options", USED.items())
def test_workflow_uses_existing_commands_and_options(command, options):
    """Each command the workflow runs is a pfp command, and each option it passes is in that command's --help."""
    text = WORKFLOW.read_text()
    assert command in text
    r = pfp(command, "--help")
    assert r.exit_code == 0, r.output
    for opt in options:
        assert opt in text, opt
        assert opt in r.output, f"pfp {command} has no {opt}"


def _interpret(code: int, tmp_path: Path) -> tuple[int, str, str, str]:
    """Run the workflow's own "Interpret the exit code" script with bash, as a runner would."""
    import subprocess

    import yaml

    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["pipeline"]["steps"]
    step = next(s for s in steps if s.get("id") == "interpret")
    out, summary = tmp_path / f"out{code}", tmp_path / f"summary{code}"
    env = {"PATH": "/usr/bin:/bin", "CODE": str(code), "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    r = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=30, check=False)
    return r.returncode, r.stdout, out.read_text(), summary.read_text()


@pytest.mark.parametrize(("code", "rc", "level", "needs_human"), [
    (0, 0, "notice", "false"), (10, 0, "notice", "false"), (11, 0, "warning", "true"), (12, 0, "notice", "false"),
    (13, 1, "error", "false"), (3, 1, "error", "false"),
])
def test_workflow_treats_inconclusive_as_needs_a_human_not_as_a_failure(code, rc, level, needs_human, tmp_path):
    """Exit 11 keeps the job green, annotates "Needs a human" and sets the job output needs_human=true."""
    got_rc, stdout, output, summary = _interpret(code, tmp_path)
    assert got_rc == rc, stdout
    assert stdout.startswith(f"::{level} title=pfp run-all (exit {code})::")
    assert f"needs_human={needs_human}" in output.splitlines()
    assert f"exit {code}" in summary
    if code == 11:
        assert "Needs a human" in stdout and "test images needed" in stdout
    job = yaml_jobs()["pipeline"]
    assert job["outputs"]["needs_human"] == "${{ steps.interpret.outputs.needs_human }}"


def yaml_jobs() -> dict:
    import yaml

    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def test_workflow_exit_code_table_matches_the_cli():
    """The codes the workflow interprets are the CLI's own exit codes."""
    from pfp_mlops.cli.errors import EXIT_CODES

    codes = {code for _, code, _ in EXIT_CODES}
    assert {10, 11, 12, 13} <= codes
