"""What every runner offers the agent, and a supervised child process.

Lifecycle of an instance (one runner per kind: click, process, vm):

``plumb(spec)``   devices that must exist before the instance and before any
                  Click configuration naming them; they outlive restarts.
``start(spec, previous)``  returns a :class:`Handle` once the instance is
                  ready (raises :class:`StartError` otherwise); ``previous``
                  is the handle of the run before (a restart): counters go on.
``poll(handle)``  alive?, exit status, packets so far (cumulative).
``stop(handle)``  ends the run (SIGTERM, then SIGKILL); idempotent.
``unplumb(spec)`` removes the devices once the instance is no longer wanted.
``export_state(handle)`` / ``start(..., state=...)``: the hook for moving a
                  running instance to another host: the old host exports its
                  state (counters; module state where a runner can carry it;
                  not a libvirt domain's memory: see runners/vm.py), the new host
                  starts with it while the old one still runs, the controller
                  moves the steering, then the old one is stopped.  No traffic
                  is lost because both run during the move (make before break).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from backends.platform.agent.reconcile import RestartPolicy
from backends.platform.controller.protocol import InstanceSpec
from backends.platform.wait import WaitTimeout, wait_until

PYTHON = sys.executable


class StartError(RuntimeError):
    """An instance could not be started; the message says why and what to do."""


class AgentSpec(InstanceSpec):
    """An InstanceSpec plus the site's FSL source when the controller sends one
    (``source``), from which the lab builds a module's reference behaviour."""

    source: str = ""

    def site_source(self) -> str:
        if self.source:
            return self.source
        return next((text for name, text in sorted(self.files.items()) if name.endswith(".fs")), "")


@dataclass
class Context:
    """Where and how the agent runs instances."""

    host: str
    state_dir: Path
    lab: bool = False
    netns_prefix: str = "fsvm-"
    ready_timeout: float = 20.0
    click_command: list[str] | None = None  # overrides `click` / backends.click.runtime (tests)
    libvirt_uri: str = "qemu:///system"  # `vm` instances without --lab (runners/virt.py)

    def instance_dir(self, iid: str) -> Path:
        d = self.state_dir / "instances" / iid.replace("#", ".").replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass
class Poll:
    alive: bool
    exit_code: int | None
    packets: int
    message: str = ""
    modules: dict[str, int] = field(default_factory=dict)  # a Click configuration's instances -> packets in
    bytes: int | None = None  # a runner that counts them itself (a libvirt domain); else the stats file's
    cpu_seconds: float | None = None  # likewise; else the instance's processes' CPU time


@dataclass
class Handle:
    """One run of an instance."""

    spec: AgentSpec
    proc: subprocess.Popen[bytes] | None = None
    stats: Path | None = None
    log: Path | None = None
    base_packets: int = 0  # packets of earlier runs, for runners whose counters restart at 0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def read_packets(stats: Path | None) -> int | None:
    """``packets`` of a stats file (reference behaviour, process, Click runtime), if any."""
    if stats is None:
        return None
    try:
        doc = json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("packets"), int):
        return doc["packets"]
    return None


def launch(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own session (so a stop reaches its whole group), output to ``log``; no shell."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            close_fds=True,
        )


def terminate(proc: subprocess.Popen[bytes] | None, grace: float = 3.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(log: Path | None, lines: int = 5) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def wait_ready(handle: Handle, ready: Callable[[], bool], timeout: float, what: str) -> Handle:
    """Block until ``ready()``; a child that exits first or a timeout is a StartError."""

    def started() -> bool:
        if handle.proc is not None and handle.proc.poll() is not None:
            tail = log_tail(handle.log)
            raise StartError(
                f"{what} exited with status {handle.proc.returncode} while starting"
                + (f": {tail}" if tail else "")
                + (f" (log: {handle.log})" if handle.log else "")
            )
        return ready()

    try:
        wait_until(started, timeout, what, max_interval=0.1)
    except WaitTimeout:
        terminate(handle.proc)
        raise StartError(f"{what} was not ready after {timeout:.0f} s (log: {handle.log})") from None
    return handle


def alive_for(handle: Handle, seconds: float) -> Callable[[], bool]:
    """Readiness of a program that has no way to say it is ready (an installed
    `click` binary, an arbitrary process): still running ``seconds`` after its
    start. A policy of the agent, not a test's wait."""
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0 >= seconds and (handle.proc is None or handle.proc.poll() is None)


class Runner(ABC):
    kind: ClassVar[str]

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def policy(self, spec: AgentSpec) -> RestartPolicy:
        return RestartPolicy(policy="always", max_restarts=5, backoff_seconds=1.0)

    def plumb(self, spec: AgentSpec) -> None:
        """Create what must exist before the instance runs (default: nothing)."""
        return None

    def unplumb(self, spec: AgentSpec) -> None:
        """Remove what :meth:`plumb` created (default: nothing)."""
        return None

    @abstractmethod
    def start(self, spec: AgentSpec, previous: Handle | None = None, state: dict[str, Any] | None = None) -> Handle: ...

    def poll(self, handle: Handle) -> Poll:
        code = handle.proc.poll() if handle.proc is not None else None
        packets = read_packets(handle.stats)
        total = handle.base_packets + packets if packets is not None else handle.base_packets
        handle.extra["last_packets"] = total
        return Poll(alive=code is None, exit_code=code, packets=total, message=handle.message)

    def stop(self, handle: Handle) -> None:
        terminate(handle.proc)

    def adopt(self, handle: Handle) -> bool:
        """Does the run an earlier agent recorded still run (then it is taken
        over)? Processes are checked by pid and start time in
        :mod:`backends.platform.agent.adopt`; a runner whose runs are not
        processes (a libvirt domain) checks its own."""
        return handle.proc is not None

    def export_state(self, handle: Handle) -> dict[str, Any]:
        """State to carry to another host (counters; see the module docstring)."""
        try:
            stats = json.loads(handle.stats.read_text(encoding="utf-8")) if handle.stats else {}
        except (OSError, ValueError):
            stats = {}
        return {"id": handle.spec.id, "digest": handle.spec.digest, "stats": stats}
