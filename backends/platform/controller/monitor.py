"""The platform's monitoring loop, run by the controller itself: host
liveness from heartbeats, failover of a host declared down, the end of a
drain. :meth:`Monitor.tick` does one round and takes its time from the
controller's clock, so tests drive it step by step; :meth:`Monitor.run`
calls it every ``interval`` seconds in a thread of its own.

A failover runs inside the tick (the loop waits for it); it needs the apply
lock and is tried again on a later tick while an apply holds it. A
re-placement that changes nothing (an instance that no other host can take
stays where it is, ``W0702``) is not tried again until the committed site or
the set of unavailable hosts changes.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from backends.platform.controller.relocate import drain_tick, finish_drain

if TYPE_CHECKING:
    from backends.platform.controller.service import Controller

LOG = logging.getLogger("fsc.controller.monitor")

#: Seconds between two rounds of the loop.
TICK = 0.2
#: Seconds between two readings of a drain's counters.
DRAIN_POLL = 0.5
#: Seconds before a failover that failed (instances not ready...) is tried again.
RETRY = 20.0


class Monitor:
    def __init__(self, ctl: Controller, interval: float = TICK) -> None:
        self.ctl = ctl
        self.interval = interval
        self._tried: tuple[str, frozenset[str]] | None = None
        self._tried_at = 0.0
        self._drain_read = -1e9

    def tick(self) -> None:
        ctl = self.ctl
        now = ctl.clock()
        for host, change in ctl.hosts.tick(ctl.site_hosts()):
            if change == "down":
                silence = ctl.hosts.silence(host)
                heard = f"no heartbeat for {silence:.1f}s" if silence is not None else "never heard from"
                ctl.note(f"{host} is down ({heard})")
            else:
                ctl.note(f"{host} is back (steady heartbeats); later placements may use it again")
        ctl.agents.set_out(ctl.out_hosts())
        # a host that falls silent may be failing: every agent beats faster, so a
        # failover's new instances are seen (and reported ready) sooner
        wavering = [h for h in ctl.site_hosts() if ctl.hosts.state_of(h) == "up" and self._silent(h)]
        ctl.agents.busy(ctl._applying or bool(wavering))
        for host in wavering:  # the failover, should it come, finds its compile done
            ctl.precompile(ctl.out_hosts() | ctl.hosts.drained() | {host})
        if wavering:  # ... and its new instances started (they take seconds to be ready)
            ctl.standby(ctl.out_hosts() | ctl.hosts.drained() | {wavering[0]})
        elif ctl.needs_relocation() is None:  # the host beats again: stop what was started ahead
            ctl.standby(None)
        active = ctl.drain
        if active is not None and now - self._drain_read >= DRAIN_POLL:
            self._drain_read = now
            why = drain_tick(ctl, active)
            if why is not None:
                with ctl._apply_lock:
                    if ctl.drain is active:
                        finish_drain(ctl, active, why)
        self._failover(now)
        if ctl.auto is not None:  # `--auto-rebalance`: after any failover (it waits while one is needed)
            ctl.auto.tick(now)

    def _silent(self, host: str) -> bool:
        s = self.ctl.hosts.silence(host)
        return s is not None and s > self.ctl.hosts.gap

    def _failover(self, now: float) -> None:
        ctl = self.ctl
        host = ctl.needs_relocation()
        if host is None:
            return
        files = ctl._deployed_files() or {}
        key = (files.get("placement.json", ""), ctl.out_hosts())
        if key == self._tried and now - self._tried_at < RETRY:
            return
        kind = "failover" if host in ctl.hosts.down() else "drain"
        result = ctl.relocate(kind, host)
        if result is None:  # an apply holds the lock: next tick
            return
        files = ctl._deployed_files() or {}
        self._tried, self._tried_at = (files.get("placement.json", ""), ctl.out_hosts()), now

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # the loop must go on; the next tick tries again
                LOG.exception("monitoring loop")

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self.run, args=(stop,), daemon=True, name="monitor")
        t.start()
        return t
