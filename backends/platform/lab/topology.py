"""What a lab builds for a checked site: a pure description, no side effects.

The lab turns every piece of the site into something on this machine:

* switch  -> an OVS bridge (userspace datapath) named ``s<K>`` in the lab's
  OVS namespace, ``datapath-id`` = the site's dpid;
* link    -> a veth pair between two bridges (both ends in the OVS namespace);
* host    -> a network namespace with ``eth0, eth1, ...`` wired to the host's
  switch ports in the order the site lists them (the Click configuration calls
  the first one ``eth0``), plus ``mgmt0`` to the OVS namespace for the agent;
* edge    -> a *traffic host*: a namespace with ``eth0, ...`` on the edge's
  ports. It owns the whole of each of its nets (a ``local`` route: any address
  in the net answers ping, TCP and UDP) with the net's first address as the
  source address; a ``default`` edge owns every address outside the site's
  nets and gets a private source address;
* box     -> a namespace that sends every frame arriving on its in-port back
  out of its out-port unchanged (tc ``mirred``), a stand-in appliance.

Edges share one L2 domain through the platform (the compiled rules forward ARP
by target address), so ARP is dynamic; no static entries are needed.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field

from compiler import ir

#: Management addresses: host K (1-based) is 169.254.K.2/24, the OVS namespace
#: side 169.254.K.1/24; the root namespace reaches the controller over a /30
#: in 169.254.255.0/24 chosen at `up` time.
MGMT_NET = ipaddress.IPv4Network("169.254.0.0/16")
#: Private source addresses for edges without a net of their own.
_SPARE_NETS = ("100.64.0.0/10", "198.18.0.0/15", "192.0.2.0/24")


@dataclass(frozen=True)
class Wire:
    """One switch port wired to an interface ``ifname`` of namespace node ``node``."""

    switch: str
    port: int
    node: str
    ifname: str


@dataclass
class EdgePlan:
    name: str
    ifnames: list[str]
    address: str  # the source address (no prefix)
    nets: list[str]  # owned nets (AnyIP), v4 and v6
    routes: list[str]  # on-link routes via eth0 (CIDR or "default")
    owns_default: bool = False


@dataclass
class HostPlan:
    name: str
    index: int  # 1-based, picks the management /24
    ifnames: list[str]

    @property
    def mgmt_host(self) -> str:
        return f"169.254.{self.index}.2"

    @property
    def mgmt_ovs(self) -> str:
        return f"169.254.{self.index}.1"


@dataclass
class BoxPlan:
    name: str
    in_if: str
    out_if: str  # equal to in_if when the box answers on the port it was sent to


@dataclass
class LabTopology:
    """Everything the lab creates for one site; node names are the site's."""

    site: str
    bridges: dict[str, tuple[str, int, list[int]]]  # switch -> (bridge, dpid, ports used)
    links: list[tuple[tuple[str, int], tuple[str, int]]]
    wires: list[Wire]
    hosts: dict[str, HostPlan] = field(default_factory=dict)
    edges: dict[str, EdgePlan] = field(default_factory=dict)
    boxes: dict[str, BoxPlan] = field(default_factory=dict)

    def node_kind(self, node: str) -> str:
        if node in self.hosts:
            return "host"
        if node in self.edges:
            return "edge"
        if node in self.boxes:
            return "box"
        raise KeyError(node)

    def nodes(self) -> list[str]:
        return [*self.hosts, *self.edges, *self.boxes]


def bridge_name(index: int) -> str:
    return f"s{index}"


def ovs_ifname(bridge: str, port: int) -> str:
    """Name of the interface that is OpenFlow port ``port`` of ``bridge``."""
    name = f"{bridge}p{port}"
    return name if len(name) <= 15 else f"p{zlib.crc32(name.encode()) & 0xFFFFFFF:07x}"


def _nets_of(site: ir.Site) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [n for e in site.edges for n in e.nets]


def _spare_address(site: ir.Site, k: int) -> str:
    """A private address in no net of the site (the k-th one)."""
    taken = _nets_of(site)
    for cand in _SPARE_NETS:
        net = ipaddress.IPv4Network(cand)
        addr = net.network_address + 1 + k
        if not any(addr in t for t in taken if t.version == 4):
            return str(addr)
    raise ValueError("the site's nets cover every spare address range; give every edge a net")


def plan_topology(site: ir.Site) -> LabTopology:
    """The lab for ``site`` (a checked IR site)."""
    bridges: dict[str, tuple[str, int, list[int]]] = {}
    for i, sw in enumerate(site.switches):
        bridges[sw.name] = (bridge_name(i), sw.dpid, [])

    def use(sw: str, port: int) -> None:
        bridges[sw][2].append(port)

    links = []
    for link in site.links:
        links.append((link.a, link.b))
        use(*link.a)
        use(*link.b)
    wires: list[Wire] = []
    topo = LabTopology(site.name, bridges, links, wires)
    for k, h in enumerate(site.hosts, start=1):
        ifnames = [f"eth{i}" for i in range(len(h.ports))]
        topo.hosts[h.name] = HostPlan(h.name, k, ifnames)
        for (sw, port), ifn in zip(h.ports, ifnames):
            wires.append(Wire(sw, port, h.name, ifn))
            use(sw, port)
    if len(site.hosts) > 250:
        raise ValueError("the lab supports at most 250 module hosts")
    all_nets = _nets_of(site)
    has_default = any(e.default for e in site.edges)
    spare = 0
    for e in site.edges:
        ifnames = [f"eth{i}" for i in range(len(e.ports))]
        for (sw, port), ifn in zip(e.ports, ifnames):
            wires.append(Wire(sw, port, e.name, ifn))
            use(sw, port)
        v4 = [n for n in e.nets if n.version == 4]
        if v4:
            address = str(v4[0].network_address + 1 if v4[0].num_addresses > 1 else v4[0].network_address)
        else:
            address = _spare_address(site, spare)
            spare += 1
        others = [str(n) for n in all_nets if n not in e.nets]
        if e.default:
            routes = others
        elif has_default:
            routes = ["default"] + [r for r in others if ipaddress.ip_network(r).version == 6]
        else:
            routes = others
        topo.edges[e.name] = EdgePlan(e.name, ifnames, address, [str(n) for n in e.nets], routes, e.default)
    for b in site.boxes:
        same = b.in_port == b.out_port
        wires.append(Wire(*b.in_port, b.name, "in0"))
        use(*b.in_port)
        if not same:
            wires.append(Wire(*b.out_port, b.name, "out0"))
            use(*b.out_port)
        topo.boxes[b.name] = BoxPlan(b.name, "in0", "in0" if same else "out0")
    for name in topo.nodes():
        if len(name) > 40 or not all(c.isalnum() or c in "_-." for c in name):
            raise ValueError(f"node name {name!r} cannot name a network namespace")
    return topo
