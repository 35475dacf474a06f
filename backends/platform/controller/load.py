"""Measured load: what each instance took in (packets, bytes) and used (CPU
seconds), as its agent reports it in every heartbeat, kept for a short window
so that rates can be read (``fsc status``, ``/metrics``, and later rebalancing
and consolidation decisions).

Counters are cumulative on the agent side; a counter that goes down (the
instance restarted, or moved to another host) starts the history afresh, so a
rate never goes negative.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from backends.platform.controller.protocol import Heartbeat, HostStatus, InstanceLoad

#: Seconds of history kept per instance.
WINDOW = 30.0
#: Samples kept per instance at most (heartbeats come about once a second).
MAX_SAMPLES = 64


@dataclass(frozen=True)
class Sample:
    t: float  # the controller's clock (monotonic) when the heartbeat arrived
    packets: int
    bytes: int
    cpu_seconds: float


class LoadBook:
    """Per (host, instance) the recent samples; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = WINDOW) -> None:
        self.clock = clock
        self.window = window
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], deque[Sample]] = {}

    def record(self, host: str, beat: Heartbeat) -> None:
        """A heartbeat's instances (and a Click configuration's module instances, packets only)."""
        now = self.clock()
        seen: dict[str, Sample] = {}
        for r in beat.instances:
            seen[r.id] = Sample(now, r.packets, r.bytes, r.cpu_seconds)
            for module, packets in r.modules.items():
                seen.setdefault(module, Sample(now, packets, 0, 0.0))
        with self._lock:
            for iid, s in seen.items():
                q = self._samples.setdefault((host, iid), deque(maxlen=MAX_SAMPLES))
                if q and (s.packets < q[-1].packets or s.bytes < q[-1].bytes or s.cpu_seconds < q[-1].cpu_seconds):
                    q.clear()  # a restart or a move: counters start again
                q.append(s)
                while q and now - q[0].t > self.window:
                    q.popleft()
            for key in [k for k in self._samples if k[0] == host and k[1] not in seen]:
                del self._samples[key]  # gone from the host

    def latest(self, host: str, iid: str) -> Sample | None:
        with self._lock:
            q = self._samples.get((host, iid))
            return q[-1] if q else None

    def load(self, host: str, iid: str) -> InstanceLoad | None:
        """Rates over the window (None before the first sample)."""
        with self._lock:
            q = list(self._samples.get((host, iid), ()))
        if not q:
            return None
        now = self.clock()
        first, last = q[0], q[-1]
        span = last.t - first.t
        rate = (lambda a, b: (b - a) / span) if span > 0 else (lambda a, b: 0.0)
        return InstanceLoad(
            window=round(span, 3),
            packets_per_second=round(rate(first.packets, last.packets), 3),
            bytes_per_second=round(rate(first.bytes, last.bytes), 3),
            cpu=round(rate(first.cpu_seconds, last.cpu_seconds), 4),
            history=[[round(now - s.t, 3), s.packets, s.bytes, round(s.cpu_seconds, 4)] for s in q],
        )

    def annotate(self, hosts: list[HostStatus]) -> list[HostStatus]:
        """``fsc status``: each instance with its latest bytes and CPU and its load."""
        for h in hosts:
            for inst in h.instances:
                s = self.latest(h.name, inst.id)
                if s is not None:
                    inst.bytes, inst.cpu_seconds = s.bytes, s.cpu_seconds
                    inst.load = self.load(h.name, inst.id)
        return hosts
