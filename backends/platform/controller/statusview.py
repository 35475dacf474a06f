"""What `fsc status` shows: the controller's view of its switches, hosts and
instances, built from the committed site, the switches' counts and the
agents' heartbeats."""

from __future__ import annotations

from backends.platform.controller.instances import host_specs, hosts_of
from backends.platform.controller.plan import placement_doc, plan_doc
from backends.platform.controller.protocol import HostStatus, InstanceSpec, InstanceStatus, StatusAnswer, SwitchStatus


class StatusView:
    """Part of :class:`~backends.platform.controller.service.Controller`: its
    answer to `fsc status` (switches, hosts, every instance under its host)."""

    def status(self) -> StatusAnswer:
        files = self._deployed_files()
        doc = plan_doc(files)
        connected = set(self.of.connected())
        switches = []
        known = set()
        for name, (dpid, tables) in self._deployed_tables().items():
            known.add(dpid)
            installed = None
            if dpid in connected:
                try:  # per-table counts when the switch object has them: one small reply (flows only)
                    counts = getattr(self.of, "table_counts", None)
                    installed = (
                        sum(n for t, n in counts(dpid, timeout=5.0).items() if t >= 0)  # groups apart
                        if counts is not None
                        else sum(f.table_id >= 0 for f in self.of.read_tables(dpid, timeout=5.0).values())
                    )
                except Exception:  # status must answer even when a switch hangs
                    installed = None
            sw = doc.switches.get(name) if doc is not None else None
            switches.append(
                SwitchStatus(
                    name=name,
                    dpid=dpid,
                    connected=dpid in connected,
                    rules=sum(f.table_id >= 0 for f in tables.values()),  # flow entries; groups apart
                    installed=installed,
                    tcam=sw.tcam if sw is not None else None,
                )
            )
        specs = host_specs(files)
        hosts = self.load.annotate([self._host_status(host, specs.get(host, []), files) for host in hosts_of(files)])
        return StatusAnswer(
            site=doc.site if doc is not None else None,
            generation=(doc.generation if doc is not None else 0) if files else None,
            switches=switches,
            unknown_switches=sorted(connected - known),
            hosts=hosts,
            applying=self._applying,
            operation=self.operation
            or (f"drain of {self.drain.host} (old connections stay until they end)" if self.drain else None),
            unplaced=list(self.unplaced),
            events=list(self.events),
            replicas=dict(doc.replicas) if doc is not None else {},
        )

    def _host_status(self, host: str, specs: list[InstanceSpec], files: dict[str, str] | None) -> HostStatus:
        """Every instance under its host by its own name: the host's Click
        configuration, each module instance in it, each process and vm; all
        ``lost`` while the host is down."""
        seen = self.agents.seen(host)
        reports = {r.id: r for r in seen.beat.instances} if seen else {}
        state = self.hosts.state_of(host)
        lost = host in self.hosts.down()
        pdoc = placement_doc(files)
        placed = {n: i for n, i in (pdoc.instances.items() if pdoc is not None else ()) if i.host == host}
        stuck = {w.split("`")[1]: w for w in self.unplaced if w.count("`") >= 2}
        silence = self.hosts.silence(host)
        why_lost = (
            f"host {host} is down (no heartbeat for {silence:.0f}s)" if silence is not None else f"host {host} is down"
        )
        inst = []
        clicks = []
        for s in specs:
            r = reports.get(s.id)
            shown = (r.state if r.digest == s.digest else "old version") if r else "unknown"
            if s.kind == "click":
                clicks.append((s, r, shown))
            inst.append(
                InstanceStatus(
                    id=s.id,
                    kind=s.kind,
                    wanted=True,
                    state="lost" if lost else shown,  # type: ignore[arg-type]
                    packets=r.packets if r else 0,
                    restarts=r.restarts if r else 0,
                    message=stuck.get(s.id, why_lost) if lost else (r.message if r else ""),
                )
            )
        listed = {s.id for s in specs}
        for name, pi in sorted(placed.items()):
            if name in listed or pi.kind != "click":
                continue
            spec, r, shown = clicks[-1] if clicks else (None, None, "unknown")
            inst.append(
                InstanceStatus(
                    id=name,
                    kind="click",
                    wanted=True,
                    state="lost" if lost else shown,  # type: ignore[arg-type]
                    packets=r.modules.get(name, 0) if r is not None else 0,
                    restarts=r.restarts if r is not None else 0,
                    in_=spec.id if spec is not None else None,
                    message=stuck.get(name, why_lost) if lost else "",
                )
            )
        for r in sorted(reports.values(), key=lambda r: r.id):
            if r.id not in listed and not lost:  # still running there, e.g. the old generation while draining
                inst.append(
                    InstanceStatus(
                        id=r.id, kind=None, wanted=False, state=r.state, packets=r.packets, restarts=r.restarts
                    )
                )
        spare = bool(pdoc is not None and host in pdoc.hosts and pdoc.hosts[host].spare)
        return HostStatus(
            name=host,
            alive=self.hosts.alive(host),
            last_seen=seen.last if seen else None,
            load=seen.beat.load if seen else None,
            instances=inst,
            drained=state in ("draining", "drained"),
            state=state,
            spare=spare,
        )
