"""The client's copy of what it last applied, per controller and site file.

`fsc apply` and `fsc plan` compile a changed site against what is deployed:
the deployed placement keeps modules where they are, and the deployed files
decide whether the change is an in-place flip. Fetching them
(``GET /v1/deployed``) moves every compiled file of the site (megabytes for
10,000 rules) on every apply. The client keeps the files it applied under
``$XDG_CACHE_HOME/fsc/apply/`` (``~/.cache`` without it), one file per
controller URL and site path, and uses them only when the controller's
``files_digest`` (``GET /v1/deployed/digest``) says they are still what is
deployed; a stale, unreadable or foreign entry is ignored and replaced after
the next apply. The cache is an optimisation only: any problem with it
(no home, a full disk) is silent and the client fetches as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from backends.platform.controller.protocol import files_digest


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    site: str
    files_digest: str
    files: dict[str, str]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fsc" / "apply"


def _site_id(site: Path) -> str:
    try:
        return str(site.resolve())
    except OSError:
        return str(site.absolute())


def entry_path(url: str, site: Path) -> Path:
    key = hashlib.sha256(f"{url.rstrip('/')}\0{_site_id(site)}".encode()).hexdigest()[:32]
    return cache_dir() / f"{key}.json"


def load(url: str, site: Path, deployed_digest: str) -> dict[str, str] | None:
    """The files last applied to ``url`` from ``site``, if they are what the
    controller has deployed now (``deployed_digest``); None otherwise."""
    if not deployed_digest:
        return None
    try:
        entry = _Entry.model_validate_json(entry_path(url, site).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None
    if entry.url != url.rstrip("/") or entry.site != _site_id(site) or entry.files_digest != deployed_digest:
        return None
    if files_digest(entry.files) != deployed_digest:  # a damaged entry
        return None
    return entry.files


def save(url: str, site: Path, files: dict[str, str]) -> None:
    """Keep ``files`` (just applied, or found deployed) for the next apply (atomic; errors ignored)."""
    path = entry_path(url, site)
    doc = {"url": url.rstrip("/"), "site": _site_id(site), "files_digest": files_digest(files), "files": files}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
