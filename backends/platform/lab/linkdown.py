"""A replica host's switch link taken down under a fine-grained probe: what
the switch's fast-failover groups do on their own (issue 12, item 9). Used by
tests/test_lab_fast_failover.py and benchmarks/failover.py.

The probe is numbered UDP datagrams ``1/rate`` apart, spread round-robin
over ``flows`` source ports (datagram *i* from port ``sport + (i % flows) *
STEP``, a step that varies the high bits of the flow hash's buckets), so the
flows hash to different replicas. The link goes down on the switch
side only (``ip link set ... down`` in the OVS namespace): the host's agent
keeps beating over its management link, so the controller re-places nothing
and what keeps the flows going is the switch alone. Which flows used the
host's replica is read off the compiled site by the platform simulator.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

from backends.platform.lab.probe import Probe
from backends.platform.lab.topology import ovs_ifname, plan_topology
from backends.platform.wait import wait_until
from compiler.pipeline import Compiled
from compiler.verification.platform_sim import Platform

STEP = 97  # between the probe's source ports


@dataclass
class LinkDownRun:
    host: str
    count: int
    rate: float
    moved_flows: list[int]  # flows (k: source port sport + k * STEP) whose replica ran on the host
    lost: list[int]  # sequence numbers lost
    others_lost: int  # of them, datagrams of the other flows

    @property
    def outage(self) -> float:
        """Seconds from the first datagram lost to the last (``1/rate`` apart)."""
        return (max(self.lost) - min(self.lost) + 1) / self.rate if self.lost else 0.0

    def summary(self) -> str:
        return (
            f"link of {self.host} down: flows {self.moved_flows} moved; lost {len(self.lost)} of {self.count} "
            f"datagrams over {self.outage * 1000:.0f} ms ({self.others_lost} of the other flows)"
        )


def flows_on(compiled: Compiled, host: str, src_edge: str, dst: str, port: int, sport: int, flows: int) -> list[int]:
    """The probe's flows whose path visits ``host`` (the simulated platform of the same compile)."""
    topo = plan_topology(compiled.site)
    src = int(ipaddress.IPv4Address(topo.edges[src_edge].address))
    pf = Platform(compiled)
    out = []
    for k in range(flows):
        pkt = {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": src, "ipv4_dst": int(ipaddress.IPv4Address(dst))}
        tr = pf.trace({**pkt, "udp_src": sport + k * STEP, "udp_dst": port}, src_edge)
        if any(hop.get("host") == host for hop in tr.hops):
            out.append(k)
    return out


def link_down_under_traffic(
    probe: Probe,
    compiled: Compiled,
    host: str,
    src_edge: str,
    dst_node: str,
    dst: str,
    port: int,
    *,
    sport: int = 41000,
    flows: int = 8,
    rate: float = 1000.0,
    count: int = 3000,
) -> LinkDownRun:
    """Send the probe; a third of the way in (the host's replica has seen
    its share), take the host's switch link down; bring it up again after."""
    sw, hport = next(h for h in compiled.site.hosts if h.name == host).ports[0]
    ifname = ovs_ifname(probe.state.bridges[sw], hport)
    moved = flows_on(compiled, host, src_edge, dst, port, sport, flows)

    def link(state: str) -> None:
        subprocess.run(["ip", "-n", probe.state.ovs_netns, "link", "set", ifname, state], check=True)

    def seen_by_host() -> int:
        return sum(v[0] for v in probe.instance_packets(host).values())

    before = seen_by_host()
    want = max(1, count // 3 * len(moved) // flows)
    try:
        with probe.udp_sink(dst_node, f"{dst}:{port}", seconds=count / rate + 6, expect=count) as sink:
            args = ["--count", str(count), "--rate", str(rate), "--sport", str(sport), "--flows", str(flows)]
            args += ["--flow-step", str(STEP)]
            sender = probe.traffic_bg(src_edge, "udp-send", "--to", f"{dst}:{port}", *args)
            wait_until(lambda: seen_by_host() - before >= want, 10, f"the probe through {host}")
            link("down")
            sender.wait(timeout=count / rate + 30)
    finally:
        link("up")
    got = set(sink.result["received"])
    lost = [s for s in range(count) if s not in got]
    return LinkDownRun(host, count, rate, moved, lost, sum(1 for s in lost if s % flows not in moved))
