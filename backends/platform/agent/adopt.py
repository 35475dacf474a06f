"""An agent that restarts keeps what works: it adopts the instances an
earlier run of it started and that still run, instead of ending them.

Every instance that comes up leaves a record, ``instances/ID/run.json``: its
spec (so the digest the controller wants can be compared), its process (pid
and start time, which together name one process even after the pid is
reused), where its counters and log are. A new agent reads the records
before its first heartbeat; a process that still runs becomes the instance's
current run again (:class:`Adopted` stands in for the ``Popen`` the earlier
agent had), so its first heartbeat reports it ``ready`` with its digest and
the controller's answer changes nothing. What does not run any more is
started as usual; what the controller no longer wants is stopped as usual.
Devices (veths, taps, namespaces) outlive the agent, so an adopted
instance's device is the one it already reads.  A run that is not a process
(a libvirt domain: its record has no pid but the domain's UUID) is offered
to its runner, which checks that the domain still runs (``Runner.adopt``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backends.platform.agent.runners.base import AgentSpec, Context, Handle
from backends.platform.wait import WaitTimeout, wait_until

RECORD = "run.json"
_SAVED_EXTRA = ("compounds", "netns", "last_packets", "domain_uuid", "libvirt_uri", "rx_at_start", "rx_bytes_at_start")


def start_time(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22), "" when
    it is gone or a zombie: with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return "" if fields[0] == "Z" else fields[19]


class Adopted:
    """A ``subprocess.Popen`` look-alike for a process this agent did not
    start (it is not our child: its exit status cannot be known, 1 stands for it)."""

    def __init__(self, pid: int, started: str) -> None:
        self.pid = pid
        self.started = started
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and start_time(self.pid) != self.started:
            self.returncode = 1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        limit = math.inf if timeout is None else timeout
        try:
            wait_until(lambda: self.poll() is not None, limit, f"pid {self.pid} to end", max_interval=0.1)
        except WaitTimeout:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0) from None
        assert self.returncode is not None
        return self.returncode


def record(ctx: Context, handle: Handle) -> None:
    """Write the instance's record (after it came up)."""
    proc = handle.proc
    pid = proc.pid if proc is not None else 0
    doc = {
        "spec": handle.spec.model_dump(),
        "pid": pid,
        "start": start_time(pid) if pid else "",
        "stats": str(handle.stats) if handle.stats else None,
        "log": str(handle.log) if handle.log else None,
        "base_packets": handle.base_packets,
        "message": handle.message,
        "extra": {k: v for k, v in handle.extra.items() if k in _SAVED_EXTRA},
    }
    path = ctx.instance_dir(handle.spec.id) / RECORD
    tmp = path.with_name(RECORD + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def forget(ctx: Context, iid: str) -> None:
    (ctx.instance_dir(iid) / RECORD).unlink(missing_ok=True)


def adopt(ctx: Context) -> tuple[list[Handle], list[int]]:
    """(runs to adopt, pids of leftovers ended): every recorded instance whose
    process still runs is adopted; a process an older agent left without a
    record (its spec unknown) is ended, as before records existed."""
    adopted: list[Handle] = []
    ended: list[int] = []
    root = ctx.state_dir / "instances"
    for rec in sorted(root.glob(f"*/{RECORD}")):
        handle = _load(rec)
        if handle is None:
            rec.unlink(missing_ok=True)
            continue
        adopted.append(handle)
    known = {h.proc.pid for h in adopted if h.proc is not None}
    for pidfile in sorted(root.glob("*/pid")):  # records of older agents
        try:
            pid_text, _, started = pidfile.read_text().partition(" ")
            pid = int(pid_text)
            if pid not in known and started and start_time(pid) == started.strip():
                os.killpg(pid, signal.SIGKILL)
                ended.append(pid)
        except (ValueError, OSError):
            pass
        pidfile.unlink(missing_ok=True)
    return adopted, ended


def _load(path: Path) -> Handle | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        spec = AgentSpec.model_validate(doc["spec"])
        pid, started = int(doc.get("pid") or 0), str(doc.get("start") or "")
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None
    extra = dict(doc.get("extra") or {})
    if pid and started:
        if start_time(pid) != started:
            return None  # it does not run any more: started again as usual
    elif "domain_uuid" not in extra:
        return None
    handle = Handle(
        spec,
        proc=Adopted(pid, started) if pid else None,  # type: ignore[arg-type]
        stats=Path(doc["stats"]) if doc.get("stats") else None,
        log=Path(doc["log"]) if doc.get("log") else None,
        base_packets=int(doc.get("base_packets") or 0),
        message=str(doc.get("message") or ""),
        extra=extra,
    )
    handle.message = (handle.message + "; " if handle.message else "") + "adopted from an earlier agent"
    return handle
