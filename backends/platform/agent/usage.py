"""What an instance used, for the load the controller measures: CPU seconds
of its processes (from ``/proc``) and bytes taken in (from its stats file,
where it counts them). Thin adapters over the OS; never raise."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ")"
    return text[text.rfind(")") + 2 :].split()


def cpu_seconds(pid: int | None, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of every process in the session ``pid`` leads
    (instances are launched in a session of their own, so this is the whole
    instance: a wrapper and its children), including children already reaped."""
    if not pid:
        return 0.0
    ticks = 0
    try:
        entries = [e for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return 0.0
    for e in entries:
        f = _stat_fields(Path(e.path))
        # fields after the name: state ppid pgrp session ... utime(11) stime(12) cutime(13) cstime(14)
        if f is None or len(f) < 15 or int(f[3]) != pid:
            continue
        ticks += int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if int(e.name) == pid else 0)
    return ticks / _TICKS


def stats_bytes(stats: Path | None) -> int:
    """Bytes an instance reports in its stats file: ``bytes``, else the sum of
    its devices' received bytes (Click runtime); 0 when it does not count them."""
    if stats is None:
        return 0
    try:
        doc: Any = json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if not isinstance(doc, dict):
        return 0
    if isinstance(doc.get("bytes"), int):
        return max(0, doc["bytes"])
    devices = doc.get("devices")
    if isinstance(devices, dict):
        return sum(
            int(c.get("rx_bytes", 0))
            for c in devices.values()
            if isinstance(c, dict) and isinstance(c.get("rx_bytes", 0), int)
        )
    return 0
