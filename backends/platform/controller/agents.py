"""What the controller knows about the host agents: their last heartbeat and
the instance set each host should run (thread-safe, no I/O)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from backends.platform.controller.instances import desired, hosts_of
from backends.platform.controller.protocol import Heartbeat, HeartbeatAnswer, InstanceReport, InstanceSpec

HEARTBEAT_INTERVAL = 1.0
#: While an update is under way (two sites wanted) agents beat faster, so
#: readiness is seen sooner.
UPDATE_INTERVAL = 0.25
#: A host is alive when its last heartbeat is at most this old.
ALIVE_WINDOW = max(5.0, 3 * HEARTBEAT_INTERVAL)


@dataclass
class HostSeen:
    last: float
    beat: Heartbeat


@dataclass
class AgentBook:
    """Heartbeats in, desired sets out."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict[str, HostSeen] = field(default_factory=dict)
    _sites: list[Mapping[str, str]] = field(default_factory=list)
    _desired: dict[str, list[InstanceSpec]] = field(default_factory=dict)
    _hosts: set[str] = field(default_factory=set)
    _interval: float = HEARTBEAT_INTERVAL
    _source: str = ""
    changed: threading.Condition = field(default_factory=threading.Condition)

    def want(self, sites: list[Mapping[str, str] | None], source: str = "") -> None:
        """Desired instances = union of these compiled sites (old first, new last);
        ``source`` (the newest site's FSL text) travels with every spec."""
        real = [s for s in sites if s]
        with self._lock:
            self._source = source
            self._sites = real
            self._desired = desired(list(real))
            self._hosts = {h for s in real for h in hosts_of(s)} | set(self._desired)
            self._interval = UPDATE_INTERVAL if len(real) > 1 else HEARTBEAT_INTERVAL

    def knows(self, host: str) -> bool:
        with self._lock:
            return host in self._hosts

    def heartbeat(self, host: str, beat: Heartbeat, generation: int | None) -> HeartbeatAnswer:
        with self._lock:
            self._seen[host] = HostSeen(time.time(), beat)
            specs = [
                s.model_copy(update={"source": self._source}) if self._source else s
                for s in self._desired.get(host, [])
            ]
            interval = self._interval
        with self.changed:
            self.changed.notify_all()
        return HeartbeatAnswer(instances=specs, interval=interval, generation=generation)

    def seen(self, host: str) -> HostSeen | None:
        with self._lock:
            return self._seen.get(host)

    def alive(self, host: str) -> bool:
        s = self.seen(host)
        return s is not None and time.time() - s.last <= ALIVE_WINDOW

    def not_ready(self, specs: dict[str, list[InstanceSpec]]) -> dict[str, list[str]]:
        """Host -> ids of wanted instances not reported ready with the wanted digest."""
        out: dict[str, list[str]] = {}
        for host, wanted in sorted(specs.items()):
            s = self.seen(host)
            reports = {r.id: r for r in s.beat.instances} if s is not None else {}
            silent = s is not None and time.time() - s.last > ALIVE_WINDOW
            missing = []
            for spec in wanted:
                r = reports.get(spec.id)
                if r is None or r.digest != spec.digest or r.state != "ready":
                    missing.append(f"{spec.id} ({_why(s, r, spec, silent)})")
            if missing:
                out[host] = missing
        return out

    def failed(self, specs: dict[str, list[InstanceSpec]]) -> dict[str, list[str]]:
        """Host -> wanted instances the agent reports as failed (with its message)."""
        out: dict[str, list[str]] = {}
        for host, wanted in sorted(specs.items()):
            s = self.seen(host)
            if s is None:
                continue
            reports = {r.id: r for r in s.beat.instances}
            bad = [
                f"{sp.id}: {reports[sp.id].message or 'failed'}"
                for sp in wanted
                if sp.id in reports and reports[sp.id].digest == sp.digest and reports[sp.id].state == "failed"
            ]
            if bad:
                out[host] = bad
        return out

    def wait_change(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)


def _why(seen: HostSeen | None, report: InstanceReport | None, spec: InstanceSpec, silent: bool) -> str:
    """Why a wanted instance is not ready, in a few words."""
    if seen is None:
        return "no agent"
    if silent:
        return f"agent silent for {time.time() - seen.last:.0f}s"
    if report is None:
        return "not reported"
    return "old version" if report.digest != spec.digest else report.state
