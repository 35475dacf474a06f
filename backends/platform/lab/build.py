"""Build and tear down a lab's network: OVS bridges, namespaces, wires, addresses.

`build_network` records each namespace in the lab state before creating it;
`teardown` removes whatever the state names (and every process carrying the
lab's marker), so it works after a crash at any point of `up`.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

from backends.platform.lab import nodes
from backends.platform.lab.ovs import OvsError, PrivateOvs, ovs_available
from backends.platform.lab.state import LabError, LabState, netns_name, root_link_name
from backends.platform.lab.topology import EdgePlan, LabTopology, ovs_ifname

OVS_NODE = "ovs"  # the name of the switches' namespace in `fsc lab exec`


def preflight(need_tc: bool) -> None:
    """Raise LabError naming what is missing (root, binaries)."""
    nodes.require_root()
    missing = []
    reason = ovs_available()
    if reason:
        missing.append(f"Open vSwitch ({reason})")
    if not nodes.which("mnexec"):
        missing.append("mnexec (apt install mininet)")
    if not nodes.which("ethtool"):
        missing.append("ethtool, to turn off checksum offload on the lab's veths (apt install ethtool)")
    if need_tc and not nodes.which("tc"):
        missing.append("tc (apt install iproute2)")
    try:
        import mininet.node  # noqa: F401
    except ImportError:
        missing.append("the mininet Python package (pip install mininet)")
    if missing:
        raise LabError(
            "fsc lab cannot start: missing "
            + "; ".join(missing)
            + "; `sudo bash scripts/system-deps.sh` installs the Debian packages"
        )


def ovs_of(state: LabState) -> PrivateOvs:
    return PrivateOvs.adopt(Path(state.ovs_dir), state.ovs_netns)


def build_network(state: LabState, topo: LabTopology) -> PrivateOvs:
    """Everything but the processes: OVS + bridges, node namespaces, wires, addresses."""
    state.ovs_dir = str(state.run_dir / "ovs")
    state.ovs_netns = netns_name(state.name, OVS_NODE)
    state.netns[OVS_NODE] = state.ovs_netns
    state.save()
    ovs = PrivateOvs(Path(state.ovs_dir), state.ovs_netns)
    try:
        ovs.start()
    except OvsError as e:
        raise LabError(f"cannot start Open vSwitch: {e}") from None
    ovs.keep_running()
    ovs.netns_exec("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", check=False)
    for sw, (br, dpid, _) in topo.bridges.items():
        ovs.add_bridge(br, dpid)
        state.bridges[sw] = br
    for node in topo.nodes():
        ns = netns_name(state.name, node)
        state.netns[node] = ns
        state.save()
        nodes.create_netns(ns)
        # no router solicitations, DAD or other chatter on the data ports
        nodes.sysctls(
            ns,
            {
                "net.ipv6.conf.all.disable_ipv6": "1",
                "net.ipv6.conf.default.disable_ipv6": "1",
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
                # a default edge owns every outside address, sources included (e.g. a tunnel's)
                "net.ipv4.conf.all.accept_local": "1",
                "net.ipv4.conf.default.accept_local": "1",
            },
        )
    _wire(state, topo, ovs)
    for e in topo.edges.values():
        _edge(state.netns[e.name], e)
    for b in topo.boxes.values():
        _box(state.netns[b.name], b.in_if, b.out_if)
    _management(state, topo, ovs)
    return ovs


# Links inside the platform (between switches, to module hosts) carry a steering
# tag (a VLAN id or an MPLS label) on top of a full-size packet, which may have a
# customer's VLAN tag too: the kernel lets an AF_PACKET socket (the OVS userspace
# datapath, the Click runtime) send frames beyond the MTU only for an 802.1Q tag.
INNER_MTU = 1508


def _wire(state: LabState, topo: LabTopology, ovs: PrivateOvs) -> None:
    ports: list[tuple[str, int, str]] = []
    for (sa, pa), (sb, pb) in topo.links:
        a, b = ovs_ifname(topo.bridges[sa][0], pa), ovs_ifname(topo.bridges[sb][0], pb)
        nodes.veth(state.ovs_netns, a, state.ovs_netns, b, mtu=INNER_MTU)
        ports += [(topo.bridges[sa][0], pa, a), (topo.bridges[sb][0], pb, b)]
    for w in topo.wires:
        br = topo.bridges[w.switch][0]
        ifn = ovs_ifname(br, w.port)
        inner = topo.node_kind(w.node) == "host"
        nodes.veth(state.ovs_netns, ifn, state.netns[w.node], w.ifname, mtu=INNER_MTU if inner else None)
        ports.append((br, w.port, ifn))
    cmd: list[str] = []
    for br, port, ifn in ports:
        cmd += ["--", "add-port", br, ifn, "--", "set", "interface", ifn, f"ofport_request={port}"]
    if cmd:
        ovs.vsctl(*cmd)
        ovs._check_ofports({ifn: port for _, port, ifn in ports})


def _edge(ns: str, e: EdgePlan) -> None:
    """Addresses and routes of a traffic host (see backends.platform.lab.topology)."""
    lines = []
    lines.append(f"addr add {e.address}/32 dev eth0")
    for net in e.nets:  # IPv4 only: the lab's namespaces run with IPv6 off (no ND/MLD chatter)
        if ipaddress.ip_network(net).version == 4:
            lines.append(f"route add local {net} dev lo")
    for r in e.routes:
        if r == "default" or ipaddress.ip_network(r).version == 4:
            lines.append(f"route add {r} dev eth0")
    if e.owns_default:
        # main table, so that the other edges' nets (more specific) still go out of eth0
        lines.append("route add local default dev lo table main")
    nodes.ip_batch(ns, lines)


def _box(ns: str, in_if: str, out_if: str) -> None:
    """Frames in on ``in_if`` go back out of ``out_if`` unchanged."""
    nodes.run(["tc", "-n", ns, "qdisc", "add", "dev", in_if, "ingress"])
    nodes.run(
        [
            "tc",
            "-n",
            ns,
            "filter",
            "add",
            "dev",
            in_if,
            "parent",
            "ffff:",
            "protocol",
            "all",
            "u32",
            "match",
            "u32",
            "0",
            "0",
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            out_if,
        ]
    )


def _management(state: LabState, topo: LabTopology, ovs: PrivateOvs) -> None:
    """A veth per host to the OVS namespace (agents reach the controller), and
    one from the root namespace (`fsc apply`/`status` from here)."""
    for h in topo.hosts.values():
        ns = state.netns[h.name]
        peer = f"m{h.index}"
        nodes.veth(state.ovs_netns, peer, ns, "mgmt0")
        nodes.ip_batch(state.ovs_netns, [f"addr add {h.mgmt_ovs}/24 dev {peer}"])
        nodes.ip_batch(ns, [f"addr add {h.mgmt_host}/24 dev mgmt0"])
    import fcntl
    import os

    root_if = root_link_name(state.name)
    state.root_links.append(root_if)
    state.save()
    fd = os.open(state.run_dir.parent, os.O_RDONLY)
    try:  # two labs coming up at once must not pick the same /30
        fcntl.flock(fd, fcntl.LOCK_EX)
        ovs_addr, root_addr = _free_root_link(state.name)
        nodes.run(
            ["ip", "link", "add", "name", root_if, "type", "veth", "peer", "name", "mroot", "netns", state.ovs_netns]
        )
        nodes.run(["ip", "addr", "add", f"{root_addr}/30", "dev", root_if])
    finally:
        os.close(fd)  # releases the lock
    nodes.run(["ip", "link", "set", root_if, "up"])
    nodes.ip_batch(state.ovs_netns, [f"addr add {ovs_addr}/30 dev mroot", "link set mroot up"])
    state.notes.append(f"controller namespace reachable from here at {ovs_addr} ({root_if})")
    state.controller_url = f"http://{ovs_addr}"  # the port is added when the controller starts
    state.save()


def _free_root_link(lab: str) -> tuple[str, str]:
    import zlib

    used = nodes.run(["ip", "-4", "-o", "addr"]).stdout
    start = zlib.crc32(lab.encode()) % 64
    for k in range(64):
        j = (start + k) % 64
        base = ipaddress.IPv4Address("169.254.255.0") + 4 * j
        if f"{base + 1}/" not in used and f"{base + 2}/" not in used:
            return str(base + 1), str(base + 2)
    raise LabError("no free /30 in 169.254.255.0/24 for the lab's management link; bring another lab down")


def teardown(state: LabState) -> list[str]:
    """Remove everything the state names; returns the problems met (best effort)."""
    problems: list[str] = []
    for _label, pid in list(state.pids.items()):
        nodes.stop_process(state.name, pid)
    nodes.kill_pids(nodes.marked_pids(state.name))
    prefix = netns_name(state.name, "")
    extra = {ns: ns for ns in nodes.netns_list() if ns.startswith(prefix) and ns not in state.netns.values()}
    for node, ns in [*state.netns.items(), *extra.items()]:  # extra: the agents' vm namespaces
        if node == OVS_NODE:
            continue
        try:
            nodes.delete_netns(ns)
        except LabError as e:
            problems.append(str(e))
    if state.ovs_dir:
        try:
            ovs_of(state).stop()
        except OvsError as e:
            problems.append(str(e))
        if state.ovs_netns:
            nodes.delete_netns(state.ovs_netns)
    for ifn in state.root_links:
        nodes.run(["ip", "link", "del", ifn], check=False)
    left = [ns for ns in nodes.netns_list() if ns.startswith(prefix)]
    if left:
        problems.append(f"namespaces still there: {', '.join(left)}")
    shutil.rmtree(state.run_dir, ignore_errors=True)
    return problems
