"""DVC without importing dvc: the data version of `data/` and the project's remote, read from DVC's own files.

Importing dvc costs seconds and pulls in fsspec/s3fs; pfp only needs two facts that DVC writes in plain text:

* the data version: the md5 DVC gives the data folder (`<dir>.md5.dir`), from `data.dvc` (after `dvc add data`) or
  from `dvc.lock` (a stage's dep), else computed here exactly as DVC 3 does (md5 of the sorted JSON list of
  `{"md5", "relpath"}` of every file, suffixed `.dir`), so a later `dvc add` records the same value;
* the remote: `.dvc/config` and `.dvc/config.local` (INI, `['remote "name"']` sections).

A `.dvc` record whose file count or total size no longer matches the folder is stale (data changed since
`dvc add`): the version is then computed from the files and its source says so.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class DataVersion:
    md5: str | None  # "<md5>.dir" as DVC writes it; None when the folder is missing
    source: str  # data.dvc | dvc.lock | computed | computed (data.dvc is stale) | missing
    path: str
    nfiles: int = 0
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ignore_patterns(project: Path | None = None) -> list[str]:
    """The project's `.dvcignore` patterns (simple glob forms: `*.cache`, `name`, `dir/*.tmp`)."""
    path = (project or Path.cwd()) / ".dvcignore"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [ln.strip().lstrip("/") for ln in lines if ln.strip() and not ln.lstrip().startswith(("#", "!"))]


def is_ignored(relpath: str, patterns: list[str]) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relpath, p) for p in patterns)


def _files(data_dir: Path, project: Path | None = None) -> list[Path]:
    patterns = ignore_patterns(project)
    out = []
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if d not in (".dvc", ".git"))
        for f in sorted(files):
            p = Path(root) / f
            if not is_ignored(p.relative_to(data_dir).as_posix(), patterns):
                out.append(p)
    return out


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - DVC's content address, not a security hash
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dir_md5(data_dir: Path, project: Path | None = None) -> tuple[str, int, int]:
    """DVC 3's directory hash, file count and total size (files matched by `.dvcignore` left out, as DVC does)."""
    files = _files(data_dir, project)
    entries = sorted(({"md5": _md5(f), "relpath": f.relative_to(data_dir).as_posix()} for f in files),
                     key=lambda e: e["relpath"])
    raw = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(raw).hexdigest() + ".dir", len(files), sum(f.stat().st_size for f in files)  # noqa: S324


def _recorded(data_dir: Path, project: Path) -> tuple[dict[str, Any], str] | None:
    """The out/dep record of data_dir in `<dir>.dvc` or `dvc.lock`, with where it came from."""
    rel = os.path.relpath(data_dir.resolve(), project.resolve()).replace(os.sep, "/")
    dvc_file = data_dir.parent / f"{data_dir.name}.dvc"
    try:
        if dvc_file.is_file():
            doc = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
            for out in doc.get("outs") or []:
                if out.get("md5") and str(out.get("path", "")).rstrip("/") == data_dir.name:
                    return out, dvc_file.name
        lock = project / "dvc.lock"
        if lock.is_file():
            doc = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
            for stage in (doc.get("stages") or {}).values():
                for entry in (stage.get("deps") or []) + (stage.get("outs") or []):
                    if entry.get("md5") and str(entry.get("path", "")).rstrip("/") == rel:
                        return entry, "dvc.lock"
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return None
    return None


def data_version(data_dir: Path, project: Path | None = None) -> DataVersion:
    """The DVC data hash of data_dir: recorded by DVC when current, else computed the same way."""
    project = project or Path.cwd()
    if not data_dir.is_dir():
        return DataVersion(None, "missing", str(data_dir))
    files = _files(data_dir, project)
    nfiles, size = len(files), sum(f.stat().st_size for f in files)
    rec = _recorded(data_dir, project)
    stale = False
    if rec is not None:
        entry, source = rec
        rec_n, rec_size = entry.get("nfiles"), entry.get("size")
        if (rec_n is None or rec_n == nfiles) and (rec_size is None or rec_size == size):
            return DataVersion(str(entry["md5"]), source, str(data_dir), nfiles, size)
        stale = True
    md5, nfiles, size = dir_md5(data_dir, project)
    return DataVersion(md5, f"computed ({rec[1]} is stale)" if stale and rec else "computed", str(data_dir),
                       nfiles, size)


# ---------------------------------------------------------------------------------------------------------------
# remote configuration
# ---------------------------------------------------------------------------------------------------------------

_SECTION = re.compile(r"""^\s*\[\s*'?(?P<name>[^'\]]+?)'?\s*\]\s*$""")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.\-]+)\s*=\s*(?P<value>.*?)\s*$")


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    section = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if m := _SECTION.match(line):
            section = m.group("name").strip()
            out.setdefault(section, {})
        elif (m := _KEY.match(line)) and section is not None:
            out[section][m.group("key")] = m.group("value").strip("'\"")
    return out


@dataclass(frozen=True)
class DvcRemote:
    name: str
    url: str
    endpointurl: str | None  # from the remote's config, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (as boto3 reads)
    endpoint_source: str | None


def dvc_remote(project: Path | None = None) -> DvcRemote | None:
    """The default remote of the DVC project (merged config + config.local), or None without DVC or remote."""
    project = project or Path.cwd()
    cfg: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        for section, values in _read_ini(project / ".dvc" / name).items():
            cfg.setdefault(section, {}).update(values)
    if not cfg:
        return None
    default = cfg.get("core", {}).get("remote")
    remotes = {k.split('"')[1]: v for k, v in cfg.items() if k.startswith("remote ") and '"' in k}
    if not remotes:
        return None
    name = default if default in remotes else sorted(remotes)[0]
    r = remotes[name]
    endpoint, source = r.get("endpointurl"), "dvc config" if r.get("endpointurl") else None
    if not endpoint:
        for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if os.environ.get(var):
                endpoint, source = os.environ[var], var
                break
    return DvcRemote(name, r.get("url", ""), endpoint, source)
