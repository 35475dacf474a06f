"""The controller's state directory: token, committed site, journal.

Every write is atomic (temporary file in the same directory, fsync, rename,
fsync of the directory), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StateDir:
    """``DIR/token``, ``DIR/deployed.json``, ``DIR/journal.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    def token(self) -> str:
        """The bearer token; created (mode 0600) on first use."""
        if not self.token_path.exists():
            atomic_write(self.token_path, secrets.token_urlsafe(32) + "\n", mode=0o600)
        return self.token_path.read_text().strip()

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / name).read_text())
        except FileNotFoundError:
            return None

    def deployed(self) -> dict[str, Any] | None:
        """``{generation, files, site, source}`` of the committed site, or None."""
        return self._read("deployed.json")

    def commit(self, generation: int, files: dict[str, str], site: str, source: str) -> None:
        doc = {"generation": generation, "site": site, "source": source, "files": dict(sorted(files.items()))}
        atomic_write(self.root / "deployed.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")

    def journal(self) -> dict[str, Any] | None:
        """The apply in progress: ``{phase, generation, files, site}``, or None."""
        return self._read("journal.json")

    def write_journal(self, doc: dict[str, Any]) -> None:
        atomic_write(self.root / "journal.json", json.dumps(doc, sort_keys=True) + "\n")

    def clear_journal(self) -> None:
        try:
            os.unlink(self.root / "journal.json")
        except FileNotFoundError:
            pass
