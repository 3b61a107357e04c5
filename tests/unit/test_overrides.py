"""`--set KEY=VALUE`, the `pfp train` flags and `Project.open(overrides=…)`: parsing, validation, precedence."""

from __future__ import annotations

import pytest
import yaml
from tests.helpers import pfp

from pfp_mlops.domain.errors import ConfigError
from pfp_mlops.overrides import Override, apply_overrides, from_mapping, parse_set, summary, train_flags
from pfp_mlops.settings import PipelineConfig


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("0.25", 0.25), ("true", True), ("null", None), ("[a, b]", ["a", "b"]), ("SGD", "SGD"),
    ("", ""), ("1e-3", "1e-3"), ("'5'", "5"),
])
def test_values_are_parsed_as_yaml(text, value):
    """A value means what it would mean in the YAML file (YAML 1.1: `1e-3` without a dot stays a string)."""
    assert parse_set([f"train.x={text}"])[0].value == value


@pytest.mark.parametrize("raw", ["train.epochs", "=3", "train..epochs=3", "train.epochs=[1,"])
def test_malformed_pairs_are_config_errors_naming_the_pair(raw):
    """No `=`, an empty key or segment, or a value that is not YAML: exit 2 naming what was given."""
    with pytest.raises(ConfigError, match="--set"):
        parse_set([raw])


def test_nested_keys_aliased_sections_and_free_form_mappings_apply():
    """Dotted keys reach any depth; `gates.register`/`gates.validate` are spelled as in the YAML; new entries of a
    free-form mapping (hyperparameters, search.space) are allowed and validated."""
    cfg = apply_overrides(PipelineConfig(), parse_set([
        "train.epochs=3", "gates.register.min_map50=0.2", "gates.validate.mode=absolute",
        "train.hyperparameters.lr0=0.01", "train.search.space.mosaic.high=0.5", "data.classes=[a, b]",
    ]))
    assert cfg.train.epochs == 3 and cfg.gates.register_.min_map50 == 0.2 and cfg.gates.validate_.mode == "absolute"
    assert cfg.train.hyperparameters == {"lr0": 0.01} and cfg.train.search.space["mosaic"].high == 0.5
    assert cfg.data.classes == ["a", "b"]
    assert PipelineConfig().train.epochs == 60  # the input config is untouched


@pytest.mark.parametrize(("raw", "message"), [
    ("train.epoch=3", "--set train.epoch=3: train.epoch: unknown key"),
    ("nosection.x=1", "--set nosection.x=1: nosection.x: unknown key"),
    ("train.epochs=abc", "--set train.epochs=abc: train.epochs: Input should be a valid integer"),
    ("train.epochs=0", "--set train.epochs=0: train.epochs: Input should be greater than or equal to 1"),
    ("split.ratios.train=0.9", "--set split.ratios.train=0.9: split.ratios: split ratios must sum to 1"),
    ("train.search=3", "--set train.search=3: train.search is a section"),
    ("train.epochs.x=3", "--set train.epochs.x=3: train.epochs is not a section"),
    ("gates.validate.modee=absolute", "gates.validate.modee: unknown key"),
])
def test_unknown_keys_and_bad_values_name_the_override(raw, message):
    """The error names the override as written and the key, validated by the same model as the YAML."""
    with pytest.raises(ConfigError) as e:
        apply_overrides(PipelineConfig(), parse_set([raw]))
    assert message in e.value.message


def test_later_overrides_win_and_flags_come_after_set():
    """Flags are applied after --set: `--set train.epochs=3 --epochs 1` trains 1 epoch; the summary lists both."""
    overrides = [*parse_set(["train.epochs=3", "train.search.n_trials=5"]), *train_flags(epochs=1, trials=2,
                                                                                         timeout=60)]
    cfg = apply_overrides(PipelineConfig(), overrides)
    assert (cfg.train.epochs, cfg.train.search.n_trials, cfg.train.search.timeout_s) == (1, 2, 60)
    assert summary(overrides) == ("train.epochs=3; train.search.n_trials=5; train.search.n_trials=2; "
                                  "train.search.timeout_s=60; train.epochs=1")


def test_flag_errors_name_the_flag():
    """`pfp train --trials 0` names --trials, not a config key the user never typed."""
    with pytest.raises(ConfigError, match=r"^--trials: train\.search\.n_trials: Input should be greater"):
        apply_overrides(PipelineConfig(), train_flags(trials=0))


def test_mapping_overrides_take_values_as_given():
    """The Python API's `{"key": value}` form does not YAML-parse strings."""
    (o,) = from_mapping({"train.model": "yolo11n.yaml"})
    assert o == Override("train.model", "yolo11n.yaml", "overrides['train.model']")
    assert apply_overrides(PipelineConfig(), [o]).train.model == "yolo11n.yaml"


def test_precedence_flags_over_set_over_profile_and_device_over_environment(workdir, monkeypatch):
    """flags > --set > environment > profile: the runner's context holds the effective values."""
    from pfp_mlops.cli.runner import Invocation

    monkeypatch.setenv("PFP_DEVICE", "cpu")
    cfg = workdir / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"epochs": 5, "batch": 4}}))
    inv = Invocation(cfg, None, overrides=["train.epochs=3", "train.batch=2"], flags=train_flags(epochs=1),
                     device="0")
    assert (inv.cfg.train.epochs, inv.cfg.train.batch, inv.settings.device) == (1, 2, "0")
    assert [o.source for o in inv.ctx.extra["config_overrides"]] == ["--set train.epochs=3", "--set train.batch=2",
                                                                     "--epochs"]
    plain = Invocation(cfg, None)
    assert (plain.cfg.train.epochs, plain.settings.device) == (5, "cpu")
    assert "config_overrides" not in plain.ctx.extra


@pytest.mark.parametrize(("args", "needle"), [
    (["status", "--set", "train.epoch=3"], "pfp: error: --set train.epoch=3: train.epoch: unknown key"),
    (["split", "--set", "split.seed=x"], "pfp: error: --set split.seed=x: split.seed: Input should be a valid integer"),
    (["validate", "--set", "nokey"], "pfp: error: --set 'nokey': expected KEY=VALUE"),
    (["train", "--trials", "0"], "pfp: error: --trials: train.search.n_trials"),
    (["train", "--timeout", "-1"], "pfp: error: --timeout: train.search.timeout_s: Input should be greater than 0"),
    (["train", "--epochs", "0"], "pfp: error: --epochs: train.epochs"),
    (["train", "--device", "gpu"], "pfp: error: --device: invalid device 'gpu'"),
])
def test_cli_rejects_bad_overrides_with_exit_2_and_one_line(workdir, args, needle):
    """Every command that reads the config takes --set; a bad one stops before any work: exit 2, one line."""
    r = pfp(*args)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip() == needle or r.stderr.startswith(needle), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not (workdir / "dataset").exists() and not (workdir / "runs").exists()


def test_every_command_that_reads_the_config_takes_set():
    """--set is the shared option of cli/options.py, on each command with --config."""
    import typer.main

    from pfp_mlops.cli.app import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        opts = {o for p in command.params for o in p.opts}
        if "--config" in opts:
            assert "--set" in opts, name
