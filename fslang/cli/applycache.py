"""The client's copy of what it last applied, per controller and site file.

`fsc apply` and `fsc plan` compile a changed site against what is deployed:
the deployed placement keeps modules where they are, and the deployed files
decide whether the change is an in-place flip. Fetching them
(``GET /v1/deployed``) moves every compiled file of the site (megabytes for
10,000 rules) on every apply. The client keeps the files it applied under
``$XDG_CACHE_HOME/fsc/apply/`` (``~/.cache`` without it), one folder per
controller URL and site path, laid out as `fsc compile` writes its output
folder, with the compile's incremental cache (``.fsc-cache/incremental.json``)
beside them: the next apply compiles with that folder as ``--previous``, so a
one-policy match edit is spliced into the deployed files instead of compiled
in full (:mod:`fslang.incremental`). An entry is used only when the
controller's ``files_digest`` (``GET /v1/deployed/digest``) says its files
are still what is deployed; a stale, unreadable or foreign entry is ignored
and replaced after the next apply. The cache is an optimisation only: any
problem with it (no home, a full disk) is silent and the client fetches and
compiles in full as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from backends.emit.write import OutputRefused, write
from backends.platform.controller.protocol import files_digest

_META = "entry.json"
_FILES = "files"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    site: str
    files_digest: str
    paths: list[str]


class Kept(NamedTuple):
    """An entry that is what the controller has deployed: its files, and the
    folder that holds them as an output folder (with the incremental cache
    when the compile that made them wrote one)."""

    files: dict[str, str]
    folder: Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fsc" / "apply"


def _site_id(site: Path) -> str:
    try:
        return str(site.resolve())
    except OSError:
        return str(site.absolute())


def entry_path(url: str, site: Path) -> Path:
    """The entry's folder (``entry.json`` and ``files/``)."""
    key = hashlib.sha256(f"{url.rstrip('/')}\0{_site_id(site)}".encode()).hexdigest()[:32]
    return cache_dir() / key


def load(url: str, site: Path, deployed_digest: str) -> Kept | None:
    """The files last applied to ``url`` from ``site``, if they are what the
    controller has deployed now (``deployed_digest``); None otherwise."""
    if not deployed_digest:
        return None
    folder = entry_path(url, site)
    try:
        entry = _Entry.model_validate_json((folder / _META).read_bytes())
        if entry.url != url.rstrip("/") or entry.site != _site_id(site) or entry.files_digest != deployed_digest:
            return None
        files = {p: (folder / _FILES / p).read_bytes().decode("utf-8") for p in entry.paths if _safe(p)}
    except (OSError, ValidationError, ValueError):
        return None
    if files_digest(files) != deployed_digest:  # a damaged entry
        return None
    return Kept(files, folder / _FILES)


def _safe(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and "\\" not in path


def save(url: str, site: Path, files: dict[str, str], own: dict[str, str] | None = None) -> None:
    """Keep ``files`` (just applied, or found deployed) for the next apply,
    with ``own``: fsc's own files of the compile that made them (its
    incremental cache), if any. Atomic per entry; errors ignored."""
    if not all(_safe(p) for p in (*files, *(own or {}))):
        return
    path = entry_path(url, site)
    doc = {"url": url.rstrip("/"), "site": _site_id(site), "files_digest": files_digest(files), "paths": sorted(files)}
    tmp = old = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        write(tmp / _FILES, {**files, **(own or {})})  # an output folder, as `fsc compile` writes it
        (tmp / _META).write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "entry")
        os.replace(tmp, path)
        tmp = None
        legacy = path.with_suffix(".json")  # the one-file entries of earlier fsc versions
        if legacy.exists():
            legacy.unlink()
    except (OSError, OutputRefused):
        pass
    finally:
        for leftover in (tmp, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
