"""Which hosts placement may use: liveness from heartbeats, with hysteresis,
and the operator's drains (thread-safe; time from an injectable clock, so the
failover logic has fast deterministic tests).

A host's liveness (docs/platform.md, "Host states"):

* ``unknown``: not heard from since the controller started. It turns ``up``
  with its first heartbeat, ``down`` when none came within ``startup_grace``
  (agents retry at least every few seconds, so a controller restart alone
  never declares a host down).
* ``up``: heartbeats arrive. ``down`` after ``down_after`` seconds of silence:
  a host that only wavers (late beats, shorter gaps) stays ``up``.
* ``down``: declared so (and recorded in ``hosts.json``). ``up`` again only
  after ``up_after`` seconds of steady heartbeats (no gap longer than half of
  ``down_after``), so a flapping host is not used again and again.

``drained`` is the operator's (`fsc drain`, until `fsc undrain`), recorded too;
``draining`` while the drain waits for the old connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from backends.platform.controller.protocol import HostState
from backends.platform.controller.state import HostRecord, HostsState, StateDir

#: Seconds of heartbeat silence before a host is declared down (`fsc controller --down-after`).
DOWN_AFTER = 3.0
#: Seconds of steady heartbeats before a down host counts as up again (`--up-after`).
UP_AFTER = 3.0
#: After the controller starts, how long a host may stay silent before it is declared
#: down (its agent may be between two retries: they come at most every 2 s).
STARTUP_GRACE = 8.0


@dataclass
class _Watch:
    state: str = "unknown"  # unknown | up | down
    last: float | None = None  # clock time of the last heartbeat
    run_start: float | None = None  # first heartbeat of the current steady run


class HostBook:
    """Liveness and drains of the site's hosts."""

    def __init__(
        self,
        state: StateDir | None,
        clock: Callable[[], float] = time.monotonic,
        down_after: float = DOWN_AFTER,
        up_after: float = UP_AFTER,
        startup_grace: float = STARTUP_GRACE,
    ) -> None:
        self.state = state
        self.clock = clock
        self.down_after = down_after
        self.up_after = up_after
        self.startup_grace = max(startup_grace, down_after)
        self._lock = threading.Lock()
        recorded = state.hosts() if state is not None else HostsState()
        self._drained = {h for h, r in recorded.hosts.items() if r.drained}
        self._watch = {h: _Watch("down") for h, r in recorded.hosts.items() if r.down}
        self._draining: str | None = None
        self.started = clock()

    @property
    def gap(self) -> float:
        """A pause between two heartbeats longer than this ends a steady run."""
        return self.down_after / 2

    # -- inputs -----------------------------------------------------------------------------
    def beat(self, host: str) -> None:
        now = self.clock()
        with self._lock:
            w = self._watch.setdefault(host, _Watch())
            if w.last is None or now - w.last > self.gap:
                w.run_start = now
            w.last = now

    def tick(self, hosts: Iterable[str]) -> list[tuple[str, str]]:
        """Evaluate every host now; returns the transitions ``(host, "up" | "down")``
        (recorded in ``hosts.json`` before they are returned)."""
        now = self.clock()
        out: list[tuple[str, str]] = []
        with self._lock:
            for host in sorted(set(hosts)):
                w = self._watch.setdefault(host, _Watch())
                new = _next_state(w, now, self.started, self)
                if new != w.state:
                    if new != "up" or w.state == "down":
                        out.append((host, new))
                    w.state = new
            if out:
                self._save()
        return out

    def set_drained(self, host: str, drained: bool) -> None:
        with self._lock:
            (self._drained.add if drained else self._drained.discard)(host)
            self._save()

    def set_draining(self, host: str | None) -> None:
        with self._lock:
            self._draining = host

    # -- outputs ----------------------------------------------------------------------------
    def down(self) -> frozenset[str]:
        with self._lock:
            return frozenset(h for h, w in self._watch.items() if w.state == "down")

    def drained(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._drained)

    def unavailable(self) -> frozenset[str]:
        """Hosts placement must not use: down or drained."""
        return self.down() | self.drained()

    def alive(self, host: str) -> bool:
        """Heard from within ``down_after`` seconds."""
        with self._lock:
            w = self._watch.get(host)
            return w is not None and w.last is not None and self.clock() - w.last <= self.down_after

    def state_of(self, host: str) -> HostState:
        with self._lock:
            if host == self._draining:
                return "draining"
            if host in self._drained:
                return "drained"
            w = self._watch.get(host)
            return w.state if w is not None else "unknown"  # type: ignore[return-value]

    def silence(self, host: str) -> float | None:
        """Seconds since the host's last heartbeat (None: never heard from)."""
        with self._lock:
            w = self._watch.get(host)
            return None if w is None or w.last is None else self.clock() - w.last

    def _save(self) -> None:
        if self.state is None:
            return
        rec = {h: HostRecord(down=w.state == "down") for h, w in self._watch.items()}
        for h in self._drained:
            rec.setdefault(h, HostRecord()).drained = True
        self.state.write_hosts(HostsState(hosts=rec))


def _next_state(w: _Watch, now: float, started: float, book: HostBook) -> str:
    """The liveness state machine (see the module docstring)."""
    if w.state == "down":
        steady = w.last is not None and w.run_start is not None and now - w.last <= book.gap
        return "up" if steady and now - w.run_start >= book.up_after else "down"
    if w.last is None:  # never heard from since the controller started
        return "down" if now - started > book.startup_grace else "unknown"
    return "down" if now - w.last > book.down_after else "up"
