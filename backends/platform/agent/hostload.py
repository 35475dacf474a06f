"""The host's load for heartbeats: /proc/loadavg, /proc/stat and /proc/meminfo.

Parsing is pure (text in, numbers out); :func:`read_load` does the reading.
``cpu_busy`` (the busy share of all cores since the previous sample, from
/proc/stat) rides along as an extra field of ``load``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backends.platform.controller.protocol import HostLoad


@dataclass(frozen=True)
class CpuSample:
    busy: int
    total: int


def parse_stat(text: str) -> tuple[CpuSample, int]:
    """(aggregate CPU jiffies, number of cores) from /proc/stat."""
    total = CpuSample(0, 0)
    cores = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            vals = [int(v) for v in parts[1:]]
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
            all_ = sum(vals[:8])  # guest time is already part of user time
            total = CpuSample(all_ - idle, all_)
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            cores += 1
    return total, cores


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name.strip()] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return values.get("MemTotal", 0), values.get("MemAvailable", values.get("MemFree", 0))


def busy_share(before: CpuSample | None, after: CpuSample) -> float:
    if before is None or after.total <= before.total:
        return 0.0
    return round((after.busy - before.busy) / (after.total - before.total), 4)


class LoadReader:
    """Reads the host's load; keeps the previous /proc/stat sample for ``cpu_busy``."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self.last: CpuSample | None = None

    def read(self) -> tuple[HostLoad, float]:
        sample, cores = parse_stat((self.proc / "stat").read_text())
        total, available = parse_meminfo((self.proc / "meminfo").read_text())
        load1 = float((self.proc / "loadavg").read_text().split()[0])
        busy = busy_share(self.last, sample)
        self.last = sample
        return HostLoad(load1=load1, cores=cores, memory_total=total, memory_available=available), busy
