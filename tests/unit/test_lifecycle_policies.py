"""Pure lifecycle policies: leakage count, tag repairs, rollback pre-flight, declared production runtime."""

from __future__ import annotations

import pytest

from pfp_mlops.adapters.packaging import read_production_runtime, runtime_mismatches
from pfp_mlops.domain.errors import ConfigError, UserError
from pfp_mlops.domain.gates import leaked_test_items
from pfp_mlops.domain.rollback_policy import check_target, tag_repairs


def test_leaked_test_items_by_path_and_by_content():
    """A current test image counts as leaked when its path or its bytes were in the model's train/valid sets."""
    trained = {"a.png": ["h1", "train"], "b.png": ["h2", "valid"], "c.png": ["h3", "test"], "d.png": ["h4", "train"]}
    current = {"a.png": ["h1", "test"], "x.png": ["h2", "test"], "c.png": ["h3", "test"], "d.png": ["h4", "train"],
               "new.png": ["h9", "test"]}
    assert leaked_test_items(trained, current) == ["a.png", "x.png"]
    assert leaked_test_items(trained, {"c.png": ["h3", "test"]}) == []


@pytest.mark.parametrize(
    ("stages", "holders", "expected"),
    [
        ({1: "production", 2: "staging"}, {"production": 1, "staging": 2}, []),
        ({1: "production", 2: "candidate"}, {"production": 2, "staging": None},
         [(1, "production", "archived"), (2, "candidate", "production")]),
        ({1: "staging", 2: "archived"}, {"production": 2, "staging": None},
         [(1, "staging", "candidate"), (2, "archived", "production")]),
        ({3: "rejected", 4: "rolled_back"}, {"production": None, "staging": None}, []),
        ({5: None}, {"production": None, "staging": 5}, [(5, None, "staging")]),
    ],
)
def test_tag_repairs_follow_the_aliases(stages, holders, expected):
    """The alias decides; tags without their alias fall back to archived/candidate; other tags stay."""
    assert [(v, now, want) for v, now, want, _ in tag_repairs(stages, holders)] == expected


def test_rollback_target_that_failed_the_runtime_check_needs_force():
    """A failing or missing runtime check is refused without --force and named in the reasons with it."""
    with pytest.raises(UserError, match="runtime check"):
        check_target(2, 3, "archived", force=False, runtime_check="failed")
    with pytest.raises(UserError, match="never run"):
        check_target(2, 3, "archived", force=False, runtime_check=None)
    reasons = check_target(2, 3, "rejected", force=True, runtime_check="failed")
    assert any("rejected" in r for r in reasons) and any("runtime check" in r for r in reasons)
    assert check_target(2, 3, "archived", force=False) == ["production 3 -> 2"]


def test_declared_runtime_excluding_installed_torch_lists_each_mismatch():
    """`torch<2.6` against torch 2.14.1 is one readable line per unmet requirement; unknown names are ignored."""
    installed = {"torch": "2.14.1", "ultralytics": "8.3.200", "python": "3.11.9"}
    got = runtime_mismatches(["torch<2.6", "ultralytics>=8.3", "python_version<3.11", "somethingelse==1"], installed)
    assert got == ["torch 2.14.1 does not satisfy <2.6", "python 3.11.9 does not satisfy <3.11"]
    with pytest.raises(ConfigError, match="PFP_PRODUCTION_RUNTIME"):
        runtime_mismatches(["torch<<2"], installed)


def test_production_runtime_from_specifiers_or_a_file(tmp_path):
    """Specifiers separated by ';' or a requirements file (comments and pip options skipped)."""
    assert read_production_runtime("torch>=2.3,<2.15; ultralytics>=8.3") == ["torch>=2.3,<2.15", "ultralytics>=8.3"]
    req = tmp_path / "requirements.txt"
    req.write_text("# prod image\n--index-url https://example.invalid\ntorch==2.5.1  # pinned\nnumpy\n")
    assert read_production_runtime(str(req)) == ["torch==2.5.1", "numpy"]
    with pytest.raises(ConfigError, match="not found"):
        read_production_runtime(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize(
    ("output", "last", "error", "code"),
    [
        ("curl: (6) Could not resolve host: www.python.org\nerror: failed to download Python-3.11.7.tar.xz\n",
         "ShellCommandException: Non-zero exit code: 1", "InfraError", 3),
        ("ERROR: No matching distribution found for torch==2.14.1", "x", "InfraError", 3),
        ("MlflowException: Found 'uv' as env_manager, but the 'uv' command is not found in the PATH.", "x",
         "ConfigError", 2),
        ("ModuleNotFoundError: No module named 'ultralytics'", "ModuleNotFoundError: No module named 'ultralytics'",
         "GateFailed", 10),
    ],
)
def test_check_env_failures_map_to_exit_codes(output, last, error, code):
    """An unreachable index is exit 3 (offline machines), a missing tool exit 2, a failing model exit 10."""
    from pfp_mlops.adapters.packaging import env_check_failure
    from pfp_mlops.cli.errors import exit_code_for

    exc = env_check_failure(output, last, "virtualenv")
    assert type(exc).__name__ == error and exit_code_for(exc) == code
    assert exc.message.startswith("--check-env:") and "\n" not in exc.message
