"""The controller's state directory: lock, token, committed site, journal.

Every write is atomic (temporary file in the same directory, fsync, rename,
fsync of the directory), so a crash leaves either the old or the new file.
One controller per directory: :meth:`StateDir.lock` holds an exclusive
``flock`` on ``DIR/lock`` for the life of the process (the kernel drops it
when the process ends, however it ends).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backends.platform.controller.protocol import one_line


class StateError(RuntimeError):
    """The state directory cannot be used; the message says why and what to do."""


class DeployedState(BaseModel):
    """``DIR/deployed.json``: the committed site."""

    model_config = ConfigDict(extra="ignore")

    generation: int = Field(ge=0, le=1)
    site: str
    source: str = ""
    digest: str = ""  # what the apply's client compiled (ApplyRequest.digest)
    files: dict[str, str]


class Journal(BaseModel):
    """``DIR/journal.json``: the update in progress (only logged after a crash:
    the committed site decides what the switches get). ``kind``: an `apply`,
    or a failover or drain the controller makes by itself (of ``host``)."""

    model_config = ConfigDict(extra="ignore")

    phase: Literal["install", "flip", "cleanup", "drain"]
    generation: int = Field(ge=0, le=1)
    site: str
    kind: Literal["apply", "failover", "drain"] = "apply"
    host: str | None = None


class HostRecord(BaseModel):
    """What the controller decided about one host, kept across restarts:
    ``down`` (declared down by the monitoring loop, until it heartbeats
    steadily again), ``drained`` (`fsc drain`, until `fsc undrain`)."""

    model_config = ConfigDict(extra="ignore")

    down: bool = False
    drained: bool = False


class HostsState(BaseModel):
    """``DIR/hosts.json``."""

    model_config = ConfigDict(extra="ignore")

    hosts: dict[str, HostRecord] = Field(default_factory=dict)


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
    """``DIR/lock``, ``DIR/token``, ``DIR/deployed.json``, ``DIR/journal.json``, ``DIR/hosts.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    def lock(self) -> None:
        """Take the directory for this process, or raise :class:`StateError`
        naming the controller that has it."""
        path = self.root / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateError(
                f"the state directory {self.root} is in use by another controller (pid {holder}); "
                "stop that one, or give this one another --state"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def token(self) -> str:
        """The bearer token; created (mode 0600) on first use. An existing
        token file that others could read or change is refused."""
        path = self.token_path
        if not path.exists():
            atomic_write(path, secrets.token_urlsafe(32) + "\n", mode=0o600)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"the token file {path} is not a regular file; remove it and start again")
        if st.st_mode & 0o077:
            raise StateError(
                f"the token file {path} can be read by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run `chmod 600 {path}` (or remove it for a new token) and start again"
            )
        if st.st_uid != os.geteuid():
            raise StateError(f"the token file {path} belongs to another user (uid {st.st_uid}); remove it")
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise StateError(f"the token file {path} is empty; remove it for a new token")
        return token

    def _read(self, name: str) -> str | None:
        try:
            return (self.root / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def deployed(self) -> DeployedState | None:
        """The committed site, or None."""
        text = self._read("deployed.json")
        if text is None:
            return None
        try:
            return DeployedState.model_validate_json(text)
        except ValidationError as err:
            raise StateError(f"{self.root / 'deployed.json'} is damaged: {one_line(err)}") from None

    def commit(self, generation: int, files: dict[str, str], site: str, source: str, digest: str = "") -> None:
        doc = DeployedState(
            generation=generation, site=site, source=source, digest=digest, files=dict(sorted(files.items()))
        )
        atomic_write(self.root / "deployed.json", json.dumps(doc.model_dump(), indent=1, sort_keys=True) + "\n")

    def journal(self) -> Journal | None:
        """The apply in progress, or None (also when the file is damaged: it is only logged)."""
        text = self._read("journal.json")
        if text is None:
            return None
        try:
            return Journal.model_validate_json(text)
        except ValidationError:
            return None

    def write_journal(self, journal: Journal) -> None:
        atomic_write(self.root / "journal.json", json.dumps(journal.model_dump(), sort_keys=True) + "\n")

    def hosts(self) -> HostsState:
        """The hosts' recorded states (empty when none is recorded; a damaged file is refused)."""
        text = self._read("hosts.json")
        if text is None:
            return HostsState()
        try:
            return HostsState.model_validate_json(text)
        except ValidationError as err:
            raise StateError(
                f"{self.root / 'hosts.json'} is damaged: {one_line(err)}; remove it (every host counts as up again)"
            ) from None

    def write_hosts(self, hosts: HostsState) -> None:
        keep = {h: r for h, r in sorted(hosts.hosts.items()) if r.down or r.drained}
        atomic_write(self.root / "hosts.json", json.dumps(HostsState(hosts=keep).model_dump(), sort_keys=True) + "\n")

    def clear_journal(self) -> None:
        try:
            os.unlink(self.root / "journal.json")
        except FileNotFoundError:
            pass
