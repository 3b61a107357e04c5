"""One-run changes to the pipeline config: `--set KEY=VALUE`, the `pfp train` flags, `Project.open(overrides=…)`.

An override names a config key by its dotted path as the YAML writes it (`train.epochs`, `gates.validate.mode`,
`train.hyperparameters.lr0`) and is applied on top of the loaded profile, then the whole config is validated again by
the same pydantic model as the YAML: an unknown key or a bad value is a ConfigError (exit 2) naming the override.
Values given on the command line are parsed as YAML (`1` is an int, `0.5` a float, `true` a bool, `null` None,
`[a, b]` a list, anything else a string), so they mean what they would mean in the file.

Precedence (README, Configuration): flags > --set > environment > .env > profile > defaults. Flags are applied
after the `--set` pairs; both after the profile is read.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from pfp_mlops.domain.errors import ConfigError
from pfp_mlops.settings import PipelineConfig


@dataclass(frozen=True)
class Override:
    """One change: the dotted key, its value, and how the user wrote it (`--set train.epochs=3`, `--epochs`)."""

    key: str
    value: Any
    source: str

    def shown(self) -> str:
        """`key=value` as the training run's `overrides` param records it."""
        return f"{self.key}={self.value!r}"


def parse_set(pairs: Iterable[str]) -> list[Override]:
    """`KEY=VALUE` strings from `--set` → overrides; a pair without `=` or with an empty key is a ConfigError."""
    out = []
    for raw in pairs:
        key, sep, text = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {raw!r}: expected KEY=VALUE with a dotted config key, e.g. train.epochs=3")
        if any(not part for part in key.split(".")):
            raise ConfigError(f"--set {raw!r}: {key!r} is not a dotted config key")
        out.append(Override(key, _yaml_value(text, raw), f"--set {raw}"))
    return out


def from_mapping(values: Mapping[str, Any] | None, source: str = "overrides") -> list[Override]:
    """`{"train.epochs": 1}` (the Python API) → overrides; values are taken as given (no YAML parsing)."""
    return [Override(str(k), v, f"{source}[{k!r}]") for k, v in (values or {}).items()]


def _yaml_value(text: str, raw: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {raw!r}: the value is not valid YAML") from None


def apply_overrides(cfg: PipelineConfig, overrides: Iterable[Override]) -> PipelineConfig:
    """The config with every override applied in order (a later one wins), validated as a whole."""
    overrides = list(overrides)
    if not overrides:
        return cfg
    data = cfg.model_dump(mode="python", by_alias=True)
    for o in overrides:
        _assign(data, o)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p).rstrip("_") for p in err["loc"])
        culprit = next((o for o in reversed(overrides) if key == o.key or key.startswith(o.key + ".")
                        or o.key.startswith(key + ".")), None)
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        where = culprit.source if culprit is not None else "overrides"
        raise ConfigError(f"{where}: {key}: {msg}") from None


def _assign(data: dict[str, Any], o: Override) -> None:
    """Set a dotted key inside the dumped config; a path through a non-mapping or an unknown section is an error."""
    parts = o.key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict):
            raise ConfigError(f"{o.source}: {'.'.join(parts[:i])} is not a section")
        if part not in node:
            if i == 0:
                raise ConfigError(f"{o.source}: {o.key}: unknown key")
            node[part] = {}  # a new entry of a free-form mapping (hyperparameters, search.space); validated below
        node = node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"{o.source}: {'.'.join(parts[:-1])} is not a section")
    if parts[-1] not in node and len(parts) == 1:
        raise ConfigError(f"{o.source}: {o.key}: unknown key")
    if isinstance(node.get(parts[-1]), dict) and not isinstance(o.value, Mapping):
        raise ConfigError(f"{o.source}: {o.key} is a section; set one of its keys (e.g. {o.key}.<name>=…)")
    node[parts[-1]] = copy.deepcopy(o.value)


def train_flags(*, trials: int | None = None, timeout: float | None = None,
                epochs: int | None = None) -> list[Override]:
    """`pfp train --trials/--timeout/--epochs` (and `Project.train`) as overrides of their config keys."""
    out = []
    if trials is not None:
        out.append(Override("train.search.n_trials", trials, "--trials"))
    if timeout is not None:
        out.append(Override("train.search.timeout_s", timeout, "--timeout"))
    if epochs is not None:
        out.append(Override("train.epochs", epochs, "--epochs"))
    return out


def summary(overrides: Iterable[Override]) -> str:
    """`train.epochs=1; train.search.n_trials=2`: logged as the training run's `overrides` param."""
    return "; ".join(o.shown() for o in overrides)
