"""The platform's own moves off hosts: failover and the end of an
interrupted drain (``relocate``), ``fsc drain`` and ``fsc undrain``, and the
work done ahead for a failover that may come (``precompile``, ``standby``).
The moves themselves are :mod:`backends.platform.controller.relocate`'s."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from backends.platform.controller.instances import host_specs
from backends.platform.controller.metrics import result_of
from backends.platform.controller.plan import placement_doc
from backends.platform.controller.protocol import DrainRequest, HostAnswer, ResultFailed
from backends.platform.controller.state import DeployedState

LOG = logging.getLogger("fsc.controller")


class HostMoves:
    """Part of :class:`~backends.platform.controller.service.Controller`: moving
    instances off hosts that are down or drained, by itself or when told."""

    def relocate(self, kind: str, host: str) -> BaseModel | None:
        """:meth:`_relocate`, counted and timed for the metrics."""
        t0 = time.monotonic()
        last = self._relocate(kind, host)
        if last is not None:
            self.metrics.relocated(kind, "ok" if result_of(last) != "failed" else "failed", time.monotonic() - t0)
        return last

    def _relocate(self, kind: str, host: str) -> BaseModel | None:
        """A failover (or the end of an interrupted drain): re-place what the
        committed site still has on unavailable hosts. Does nothing (None) when
        another update holds the apply lock; the monitoring loop tries again."""
        from backends.platform.controller.relocate import RelocationFailed, finish_drain, relocate

        if self.recompile is None:
            return ResultFailed(result="failed", error="this controller cannot compile (no compile function)")
        if not self._apply_lock.acquire(blocking=False):
            return None
        try:
            with self._guard:
                if self._applying:
                    return None
                self._applying = True
            self.operation = f"{kind} of {host}"
            if self.drain is not None:  # a failover ends a running drain first (its rules point at the old site)
                finish_drain(self, self.drain, f"ended early by the {kind} of {host}")
            self.agents.set_out(self.out_hosts())
            self.agents.busy(True)
            last: BaseModel | None = None
            try:
                for ev in relocate(self, kind, host):
                    last = ev
            except RelocationFailed as err:
                self.note(f"{kind} of {host} failed: {err}")
                last = ResultFailed(result="failed", error=str(err))
            return last
        finally:
            self.operation = None
            self._applying = False
            self.agents.busy(False)
            self.agents.set_out(self.out_hosts())
            self._apply_lock.release()

    def drain_host(self, host: str, req: DrainRequest) -> Iterator[BaseModel]:
        """``fsc drain HOST``: events as an apply's, DrainEvents while old connections last."""
        from backends.platform.controller.relocate import drain_stream

        if self.recompile is None:
            yield ResultFailed(result="failed", error="this controller cannot compile (no compile function)")
            return
        self.operation = f"drain of {host}"
        t0, last = time.monotonic(), None
        try:
            for last in drain_stream(self, host, req, threading.Event().wait):
                yield last
        finally:
            self.operation = None
            self.metrics.relocated("drain", "ok" if result_of(last) != "failed" else "failed", time.monotonic() - t0)

    def undrain(self, host: str) -> HostAnswer | None:
        """``fsc undrain HOST``: later placements may use HOST again; nothing
        moves now. None: the site has no such host. Refused while it drains."""
        if host not in self.site_hosts():
            return None
        if self.drain is not None and self.drain.host == host:
            return HostAnswer(
                host=host,
                state="draining",
                message=f"{host} is still draining; undrain it when `fsc drain {host}` has finished",
            )
        was = host in self.hosts.drained()
        powered = self.power.needed(host) if self.power is not None else None  # a host it powered off
        if powered is not None:
            self.note(powered[1])
        self.hosts.set_drained(host, False)
        self.agents.set_out(self.out_hosts())
        if was:
            self.note(f"{host} undrained; later placements may use it again")
        state = self.hosts.state_of(host)
        return HostAnswer(
            host=host,
            state=state,
            message=f"{host} is available to later placements (nothing moves now)"
            if was
            else f"{host} was not drained",
        )

    def _compile_key(self, d: DeployedState, unavailable: frozenset[str]) -> tuple:
        return (hash(d.source), hash(d.files.get("placement.json")), d.generation, unavailable)

    def compiled_for(self, d: DeployedState, unavailable: frozenset[str]) -> Any:
        """The deployed site recompiled without ``unavailable`` (from the cache
        when :meth:`precompile` has done it already)."""
        assert self.recompile is not None
        key = self._compile_key(d, unavailable)
        with self._guard:
            done = self._compiled.pop(key, None)
        if done is not None:
            return done
        return self.recompile(d.source, d.files.get("placement.json"), d.generation, unavailable)

    def precompile(self, unavailable: frozenset[str]) -> None:
        """Compile for a failover that may come (a host has fallen silent) in a
        thread, so that the failover, if it comes, does not wait for it."""
        d = self._deployed_doc()
        if self.recompile is None or d is None:
            return
        key = self._compile_key(d, unavailable)
        with self._guard:
            if key in self._compiled or key in self._compiling:
                return
            self._compiling.add(key)

        def run() -> None:
            try:
                assert self.recompile is not None
                out = self.recompile(d.source, d.files.get("placement.json"), d.generation, unavailable)
                with self._guard:
                    if len(self._compiled) > 8:
                        self._compiled.clear()
                    self._compiled[key] = out
            except Exception:  # the failover compiles again and reports it
                LOG.exception("compiling ahead for a failover")
            finally:
                with self._guard:
                    self._compiling.discard(key)

        threading.Thread(target=run, daemon=True, name="precompile").start()

    def standby(self, unavailable: frozenset[str] | None) -> None:
        """Start ahead the instances a failover without ``unavailable`` would
        add, once :meth:`precompile` has compiled it (so the failover, if it
        comes, finds them ready); None: start nothing ahead (stops them)."""
        if unavailable is None:
            self.agents.standby({})
            return
        d = self._deployed_doc()
        if d is None:
            return
        key = self._compile_key(d, unavailable)
        with self._guard:
            out = self._compiled.get(key)
        if out is None or out.files is None:
            return
        if self._standby_for is None or self._standby_for[0] != key:
            old, new = host_specs(d.files), host_specs(out.files)
            extra = {
                h: [s for s in specs if s.id not in {o.id for o in old.get(h, [])}]
                for h, specs in new.items()
                if h not in unavailable
            }
            self._standby_for = (key, extra)
        self.agents.standby(self._standby_for[1])

    def needs_relocation(self) -> str | None:
        """An unavailable host the committed placement still uses (a host just
        declared down, a failover cut short by a restart), or None."""
        doc = placement_doc(self._deployed_files())
        if doc is None:
            return None
        out = self.out_hosts()
        used = sorted({i.host for i in doc.instances.values()} & out)
        return used[0] if used else None
