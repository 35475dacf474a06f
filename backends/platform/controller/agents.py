"""What the controller knows about the host agents: their last heartbeat and
the instance set each host should run (thread-safe, no I/O).

Hosts that are out (down, or drained once their drain is over) are wanted
to run nothing: an agent that comes back stops whatever it still runs, and
the controller waits for no instance there."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
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
    last: float  # Unix time (what status shows)
    beat: Heartbeat
    at: float = 0.0  # the book's clock


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
    _out: frozenset[str] = frozenset()  # hosts that run nothing (down, drained)
    _standby: dict[str, list[InstanceSpec]] = field(default_factory=dict)  # started ahead of a failover
    _on_beat: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.monotonic
    interval: float = HEARTBEAT_INTERVAL  # seconds between heartbeats when nothing is under way
    changed: threading.Condition = field(default_factory=threading.Condition)

    def want(
        self,
        sites: list[Mapping[str, str] | None],
        source: str = "",
        keep: Mapping[str, Mapping[str, str] | None] | None = None,
    ) -> None:
        """Desired instances = union of these compiled sites (old first, new last);
        ``source`` (the newest site's FSL text) travels with every spec.
        ``keep``: hosts that run the instances of the site given for them
        instead (a drained host keeps its old instances while old connections last)."""
        real = [s for s in sites if s]
        want = desired(list(real))
        for host, site in (keep or {}).items():
            want[host] = desired([site]).get(host, [])
        with self._lock:
            self._source = source
            self._sites = real
            self._desired = want
            self._hosts = {h for s in real for h in hosts_of(s)} | set(self._desired)
            self._interval = UPDATE_INTERVAL if len(real) > 1 or keep else self.interval
            self._standby = {}

    def standby(self, specs: Mapping[str, list[InstanceSpec]]) -> None:
        """Instances to start ahead of a failover that may come (a host has
        fallen silent): the ones the failover would add, under ids the hosts do
        not run, so nothing running changes. The failover's :meth:`want` then
        finds them ready; an empty mapping (the host beats again) stops them."""
        with self._lock:
            self._standby = {h: list(v) for h, v in specs.items() if v}

    def set_out(self, hosts: frozenset[str]) -> None:
        """Hosts that are to run nothing (down, or drained)."""
        with self._lock:
            self._out = frozenset(hosts)

    def busy(self, busy: bool) -> None:
        """Faster heartbeats while an update is under way (readiness is seen sooner)."""
        with self._lock:
            self._interval = UPDATE_INTERVAL if busy else self.interval

    def on_beat(self, fn: Callable[[str], None] | None) -> None:
        self._on_beat = fn

    def wanted(self, host: str) -> list[InstanceSpec]:
        with self._lock:
            return self._wanted(host)

    def _wanted(self, host: str) -> list[InstanceSpec]:
        if host in self._out:
            return []
        specs = list(self._desired.get(host, []))
        ids = {s.id for s in specs}
        return specs + [s for s in self._standby.get(host, []) if s.id not in ids]

    def knows(self, host: str) -> bool:
        with self._lock:
            return host in self._hosts

    def heartbeat(self, host: str, beat: Heartbeat, generation: int | None) -> HeartbeatAnswer:
        with self._lock:
            self._seen[host] = HostSeen(time.time(), beat, self.clock())
            specs = [s.model_copy(update={"source": self._source}) if self._source else s for s in self._wanted(host)]
            interval = self._interval
        if self._on_beat is not None:
            self._on_beat(host)
        with self.changed:
            self.changed.notify_all()
        return HeartbeatAnswer(instances=specs, interval=interval, generation=generation)

    def seen(self, host: str) -> HostSeen | None:
        with self._lock:
            return self._seen.get(host)

    def alive(self, host: str) -> bool:
        s = self.seen(host)
        return s is not None and self.clock() - s.at <= ALIVE_WINDOW

    def not_ready(self, specs: dict[str, list[InstanceSpec]]) -> dict[str, list[str]]:
        """Host -> ids of wanted instances not reported ready with the wanted digest
        (hosts that are out are not waited for)."""
        out: dict[str, list[str]] = {}
        with self._lock:
            skip = self._out
        for host, wanted in sorted(specs.items()):
            if host in skip:
                continue
            s = self.seen(host)
            reports = {r.id: r for r in s.beat.instances} if s is not None else {}
            silent = s is not None and self.clock() - s.at > ALIVE_WINDOW
            missing = []
            for spec in wanted:
                r = reports.get(spec.id)
                if r is None or r.digest != spec.digest or r.state != "ready":
                    missing.append(f"{spec.id} ({_why(s, r, spec, silent, self.clock())})")
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


def _why(seen: HostSeen | None, report: InstanceReport | None, spec: InstanceSpec, silent: bool, now: float) -> str:
    """Why a wanted instance is not ready, in a few words."""
    if seen is None:
        return "no agent"
    if silent:
        return f"agent silent for {now - seen.at:.0f}s"
    if report is None:
        return "not reported"
    return "old version" if report.digest != spec.digest else report.state
