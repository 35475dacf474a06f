"""The Click runtime against the project's host model, on every example.

For packets of every policy (and the replies of symmetric policies), the
compiled platform is simulated (``compiler.verification.platform_sim``, as ``fsc trace``
does); every time the simulated switch hands a packet to a module host, the
visit is recorded: the host, the steering tag, the packet, and the tag the
host model (``compiler.verification.hosts.run_host``) says the packet comes back with
(or that it does not come back).  The same packet, as a real frame with that
outer 802.1Q tag, then goes through the host's generated Click
configuration in the runtime; ``vm``/``process`` modules behind their tap
devices answer as the model's module oracle says (same tag, output in the
PCP bits; in a second run they answer with outputs drawn at random, the
same for model and runtime).  The frames the runtime sends back to the
switch must be exactly the one the model predicts, with the predicted tag.

Packets that enter a ``decrypt`` module as ESP are built as real ESP packets
of that module's security association, since the runtime really decrypts.

A site that needs more tags than VLAN ids (MPLS labels) is tried step by
step: every step of its host plans, entered with a labelled (or VLAN-tagged)
frame, comes back with the next hop's label or VLAN id and otherwise the
very frame it came with, and modules behind taps see that frame unlabelled.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import compiler.verification.platform_sim as PS
from backends.click.lang.checker import check_config
from backends.click.runtime import frames as F
from backends.click.runtime import load
from backends.emit.click import elementclass as E
from backends.emit.click import generate as G
from compiler.headerspace.space import DEFAULT_LAYOUT as L
from compiler.headerspace.space import HeaderSpace
from compiler.pipeline import Compiled, compile_site
from compiler.steering import tags as T
from compiler.steering.hostplan import Next
from compiler.verification.hosts import run_host
from compiler.verification.modulemodel import default_oracle, swapped
from fslang.api import build
from fslang.api import load as load_site
from tests.conftest import EXAMPLES
from tests.platform_harness import packet_from_point

IDS = [p.stem for p in EXAMPLES]
PER_CUBE = 3
MAX_CUBES = 6


@cache
def compiled(path: Path) -> Compiled:
    res = load_site(path)
    assert res.site is not None
    c = compile_site(res.site)
    assert c.ok
    return c


class Clock:
    """A clock that moves one second per packet: rate limiters refill between
    packets, as they would for packets of separate flows."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def decision_spaces(c: Compiled) -> list[Any]:
    """What modules decide on: firewall rules and classify labels."""
    out = []
    for m in c.site.modules:
        out += [sp for _, sp in m.labels]
        out += [v for _, v in m.params if isinstance(v, HeaderSpace)]
    return [sp for sp in out if sp.cubes]


def _points(cube: Any, rng: random.Random) -> list[dict[str, int]]:
    out = []
    for k in range(PER_CUBE):
        point = L.unpack(cube.value)
        if k:
            for f in (
                "eth_src",
                "eth_dst",
                "ipv4_src",
                "ipv4_dst",
                "ipv6_src",
                "ipv6_dst",
                "tp_src",
                "tp_dst",
                "ip_dscp",
            ):
                v, m = cube.field(L, f)
                full = (1 << L.field(f).width) - 1
                point[f] = v | (rng.getrandbits(L.field(f).width) & full & ~m)
        out.append(point)
    return out


def policy_packets(c: Compiled, seed: int) -> list[tuple[dict[str, int], str]]:
    """(packet, ingress edge) samples of every policy: the smallest point of
    each cube and points with the cube's free bits drawn at random, from the
    policy's match and from its intersection with each module decision
    (so that firewalls drop and classifiers take every label)."""
    rng = random.Random(seed)
    out = []
    decisions = decision_spaces(c)
    for pol in c.site.policies:
        spaces = [pol.match] + [pol.match & d for d in decisions]
        for space in spaces:
            cubes = list(space.cubes)
            rng.shuffle(cubes)
            for cube in cubes[:MAX_CUBES]:
                ev, em = cube.field(L, "in_edge")
                edges = [e for e in c.site.edges if (e.index & em) == ev]
                if not edges:
                    continue
                for point in _points(cube, rng):
                    out.append((packet_from_point(point), rng.choice(edges).name))
    return out


@dataclass(frozen=True)
class Visit:
    """A packet the simulated switch hands to a module host, and what the host model says comes back."""

    host: str
    tag: int
    label: bool  # the tag is an MPLS label
    packet: dict[str, int]
    back: Next | None  # None: dropped or consumed
    visited: tuple[str, ...]


class Visits:
    """Host visits recorded from the simulated platform."""

    def __init__(self) -> None:
        self.seen: list[Visit] = []

    def __call__(
        self, hp: Any, site: Any, tag: int, packet: Mapping[str, int], oracle: Any, label: bool = False
    ) -> Any:
        visited, back = self.orig(hp, site, tag, packet, oracle, label)
        self.seen.append(Visit(hp.host, tag, label, dict(packet), back, tuple(visited)))
        return visited, back


def tap_oracle(seed: int) -> Any:
    """The model's oracle, except that modules behind a tap (vm, process, ids,
    dpi) answer with a label drawn from the packet, the instance and
    ``seed``, or take the packet (None): every output of an external module
    is used, and the PCP bits carry each of them."""

    def oracle(module: Any, instance: str, packet: Mapping[str, int]) -> str | None:
        if not E.is_external(module):
            return default_oracle(module, instance, packet)
        choices = list(module.outputs) + [None]
        key = f"{seed}:{instance}:{sorted(packet.items())}".encode()
        return choices[zlib.crc32(key) % len(choices)]

    return oracle


def record_visits(
    c: Compiled,
    seed: int,
    monkeypatch: pytest.MonkeyPatch,
    oracle: Any = default_oracle,
    packets: list[tuple[dict[str, int], str]] | None = None,
) -> list[Visit]:
    v = Visits()
    v.orig = PS.run_host
    monkeypatch.setattr(PS, "run_host", v)
    pf = PS.Platform(c, oracle)
    for pkt, edge in policy_packets(c, seed) if packets is None else packets:
        tr = pf.trace(pkt, edge)
        assert tr.error is None, (pkt, tr.error)
        for ex in tr.exits:  # the reply of the flow, from where it left
            pf.trace(swapped(pkt), ex["edge"])
    monkeypatch.undo()
    # one visit per (host, tag, packet)
    uniq: dict[Any, Visit] = {}
    for x in v.seen:
        uniq.setdefault((x.host, x.label, x.tag, tuple(sorted(x.packet.items()))), x)
    return list(uniq.values())


class HostRig:
    """One host's configuration in the runtime, with its tap modules answered
    by the model's oracle."""

    def __init__(self, c: Compiled, host: str, text: str, fuse: bool = True, oracle: Any = default_oracle) -> None:
        self.c = c
        self.oracle = oracle
        self.hp = c.hosts[host]
        self.clock = Clock()
        self.router = load(text, f"{host}.click", clock=self.clock, seed=7, fuse=fuse)
        self.tap_of = {tap: inst for inst, tap in G.tap_names(c.site).items()}
        self.module_of = {i: m for m in c.site.modules for i in m.instance_names()}
        vids = G.tap_vids(c, self.hp)
        self.tap_step = {(s.instance, vids[(s.label, s.tag)]): s for s in self.hp.steps if (s.label, s.tag) in vids}
        self.tapped: list[bytes] = []  # frames tap modules got, without the tap's VLAN tag

    def run(self, frame: bytes, packet: Mapping[str, int]) -> list[bytes]:
        """Frames the host sends back to the switch for ``frame`` arriving from it."""
        self.clock.t += 1.0
        pending = [("eth0", frame)]
        to_switch: list[bytes] = []
        steps = 0
        while pending:
            steps += 1
            assert steps < 64, "tap modules loop"
            dev, fr = pending.pop(0)
            for d, frames in self.router.push(dev, fr).items():
                for out in frames:
                    if d == "eth0":
                        to_switch.append(out)
                    else:
                        reply = self.tap_module(d, out, packet)
                        if reply is not None:
                            pending.append((d, reply))
        return to_switch

    def tap_module(self, dev: str, frame: bytes, packet: Mapping[str, int]) -> bytes | None:
        inst = self.tap_of[dev]
        tci, inner = F.pop_tag(frame)
        assert tci is not None, f"frame to {dev} without the step's tag"
        assert F.pop_label(inner)[0] is None, f"frame to {dev} with a label"
        self.tapped.append(inner)
        step = self.tap_step.get((inst, tci & 0xFFF))
        assert step is not None, f"VLAN id {tci & 0xFFF} on {dev} is no step of {inst}"
        module = self.module_of[inst]
        view = swapped(packet) if step.reverse else packet
        label = self.oracle(module, inst, view)
        if label is None:
            return None
        j = module.outputs.index(label)
        return frame[:14] + ((j << 13) | (tci & 0xFFF)).to_bytes(2, "big") + frame[16:]


def esp_for(c: Compiled, hp: Any, tag: int, packet: Mapping[str, int], label: bool = False) -> bytes | None:
    """For an ESP packet whose first step on this host is a decrypt module: a
    real ESP payload of that module's SA (else None)."""
    step = hp.step(tag, label)
    if step is None or packet.get("eth_type") != 0x0800 or packet.get("ip_proto") != 50:
        return None
    module = c.site.module(step.module)
    if module.type != "decrypt":
        return None
    return seal(E.module_param(module, "spi"), E.module_param(module, "key"), packet)


SEALER = """
elementclass Sealer {{
  input -> Strip(14) -> MarkIPHeader -> GetIPAddress(16)
    -> sa :: RadixIPsecLookup(0.0.0.0/0 - 1 {spi} {enc} {auth} 1 64);
  sa [0] -> Discard;
  sa [1] -> IPsecESPEncap -> IPsecAuthHMACSHA1(0) -> IPsecAES(1) -> output;
}}
FromDevice(in) -> Sealer -> Queue -> ToDevice(out);
"""


@cache
def _sealer(spi: int, key: str) -> Any:
    enc, auth = E._crypto_keys(key)
    return load(SEALER.format(spi=spi, enc=enc, auth=auth), "sealer.click", seed=3)


def seal(spi: int, key: str, packet: Mapping[str, int]) -> bytes:
    """ESP (SPI, sequence, IV, ciphertext, digest) of an inner IPv4 packet, as
    the IP payload of ``packet``."""
    inner = dict(packet, ip_proto=17, udp_src=5000, udp_dst=6000)
    out = _sealer(int(spi), str(key)).push("in", F.frame(inner, b"inner payload"))
    return out["out"][0]


def build_frame(c: Compiled, hp: Any, tag: int, packet: Mapping[str, int], pcp: int, label: bool = False) -> bytes:
    """The frame of a visit as the switch hands it to the host: the packet
    with its steering tag (a VLAN id, PCP ``pcp``; or an MPLS label)."""
    esp = esp_for(c, hp, tag, packet, label)
    if esp is not None:
        fr = F.frame(dict(packet, ip_proto=50), esp, min_size=0)
    else:
        fr = F.frame(packet)
    return F.push_label(fr, tag) if label else F.push_tag(fr, (pcp << 13) | tag)


def returned(frame: bytes) -> tuple[Next | None, bytes]:
    """The tag a frame goes back to the switch with (None: a frame with
    neither a label nor a PCP-0 VLAN tag, or a label entry other than the
    host's: bottom of stack, traffic class 0, TTL 64), and the frame without it."""
    lse, inner = F.pop_label(frame)
    if lse is not None:
        ok = lse & 0xFFF == 0x100 | 64
        return (Next("switch", lse >> 12, True) if ok else None), inner
    tci, inner = F.pop_tag(frame)
    if tci is None or tci >> 12:
        return None, frame
    return Next("switch", tci), inner


@pytest.mark.parametrize("taps", ["model-taps", "random-taps"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "element-by-element"])
@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_runtime_returns_the_tags_the_host_model_predicts(
    example: Path, fuse: bool, taps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = compiled(example)
    files = G.render_click(c)
    seed = zlib.crc32(example.stem.encode())
    oracle = default_oracle if taps == "model-taps" else tap_oracle(seed)
    visits = record_visits(c, seed=seed, monkeypatch=monkeypatch, oracle=oracle)
    assert visits, "no packet reached a module host"
    rigs = {h: HostRig(c, h, files[f"click/{h}.click"], fuse, oracle) for h in {v.host for v in visits}}
    failures = []
    for n, v in enumerate(visits):
        rig = rigs[v.host]
        got = rig.run(build_frame(c, rig.hp, v.tag, v.packet, pcp=4 if n % 2 else 0, label=v.label), v.packet)
        tags = [returned(g)[0] for g in got]
        want = [] if v.back is None else [v.back]
        if tags != want:
            failures.append(f"host {v.host} tag {v.tag} {v.visited} {v.packet}: model {want}, runtime {tags}")
    assert not failures, f"{len(failures)} of {len(visits)} visits differ:\n" + "\n".join(failures[:20])


# ---------------------------------------------------------------- two gateways talking

HQ = """
site hq
switch gw dpid 0x21 ports 8
host crypto at gw:1 cores 4 memory 4GB runs click
edge wan    at gw:8 default
edge lan    at gw:2 net 10.50.0.0/16
module enc = encrypt(spi: 0x2001, key: "c4a2b1d5e0c9a3f7")
module dec = decrypt(spi: 0x1001, key: "7f3a9c0e5d1b2a4c")
module gre = tunnel(remote: 198.51.100.2, local: 203.0.113.1)
policy outbound from lan match ip and dst net 172.16.0.0/24 via enc >> gre
policy inbound  from wan match proto 47 and src host 198.51.100.2 and dst host 203.0.113.1 via gre >> dec
"""


def one_visit(c: Compiled, pkt: dict[str, int], edge: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int, int]:
    v = Visits()
    v.orig = PS.run_host
    monkeypatch.setattr(PS, "run_host", v)
    PS.Platform(c).trace(pkt, edge)
    monkeypatch.undo()
    [x] = v.seen
    assert x.back is not None and not x.label
    return x.host, x.tag, x.back.tag


def test_branch_and_head_office_gateways_carry_traffic_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    """vpn_gateway (the branch) and a head-office site with the mirror image of
    its modules, both compiled by fsc and run in the runtime: a packet from
    the branch office leaves the branch encrypted and GRE-tunnelled, and the
    head office gives back the very packet; and the other way round."""
    from compiler.check.frontend import run as run_site

    branch = compiled(next(p for p in EXAMPLES if p.stem == "vpn_gateway"))
    res = run_site("hq.fs", HQ)
    assert res.site is not None and not res.diagnostics
    hq = compile_site(res.site)
    gw = {
        name: load(G.render_click(c)["click/crypto.click"], f"{name}.click", seed=n)
        for n, (name, c) in enumerate((("branch", branch), ("hq", hq)))
    }
    plans = {"branch": branch, "hq": hq}

    def through(side: str, frame: bytes, edge: str) -> bytes:
        c = plans[side]
        host, tag, back = one_visit(c, F.parse(frame), edge, monkeypatch)
        assert back == 1  # the model: to the exit
        [out] = gw[side].push("eth0", F.push_tag(frame, tag))["eth0"]
        tci, rest = F.pop_tag(out)
        assert tci == back
        return rest

    office = F.frame(
        {
            "eth_src": 0x020000000011,
            "eth_dst": 0x020000000022,
            "eth_type": 0x0800,
            "ipv4_src": 0xAC100009,
            "ipv4_dst": 0x0A320102,
            "ip_proto": 17,
            "udp_src": 5000,
            "udp_dst": 53,
            "vlan_vid": 0x1000 | 12,
        },
        b"query for the head office",
        min_size=0,
    )
    wire = through("branch", office, "office")
    w = F.parse(wire)
    assert (w["ip_proto"], w["ipv4_src"], w["ipv4_dst"]) == (47, 0xC6336402, 0xCB007101)  # 198.51.100.2 -> 203.0.113.1
    assert b"query for the head office" not in wire  # encrypted inside the tunnel
    assert through("hq", wire, "wan") == office  # decapsulated, decrypted: the same frame, customer tag included

    reply = F.frame(
        {
            "eth_src": 0x020000000022,
            "eth_dst": 0x020000000011,
            "eth_type": 0x0800,
            "ipv4_src": 0x0A320102,
            "ipv4_dst": 0xAC100009,
            "ip_proto": 17,
            "udp_src": 53,
            "udp_dst": 5000,
        },
        b"the answer",
        min_size=0,
    )
    wire2 = through("hq", reply, "lan")
    assert F.parse(wire2)["ipv4_dst"] == 0xC6336402 and b"the answer" not in wire2
    assert through("branch", wire2, "wan") == reply


# ---------------------------------------------------------------- beyond the VLAN space

N_LABELLED = 800  # policies of their own three- or four-stage chains: more tags than VLAN ids


def labelled_site(n: int = N_LABELLED) -> str:
    """A site whose steering needs MPLS labels: ``n`` policies, each through
    a firewall and three monitors of its own drawing on two Click hosts, some
    then through a tap-attached ``process`` module or a classifier; some
    IPv6, some symmetric, a few with a copy (whose tag stays a VLAN id)."""
    rng = random.Random(3)
    lines = [
        "site tenants",
        "switch sw dpid 0x1 ports 64 ovs",
        "host h0 at sw:1 cores 64 memory 256GiB runs click, process",
        "host h1 at sw:2 cores 64 memory 256GiB runs click, process",
        "edge internet at sw:40 default",
        "edge cust at sw:41 net 10.0.0.0/8, fd00::/16",
        *(f"module m{i} = monitor()" for i in range(32)),
        *(f"module f{i} = firewall(deny: udp and dst port 6666)" for i in range(6)),
        *(f"module c{i} = classify(web: tcp and dst port 80)" for i in range(4)),
        "module trial = monitor(sink: true)",
        'module px = process(command: "relay") kind process cores 1 memory 256MiB',
        *(f"pin m{i} to h{i % 2}" for i in range(32)),
        *(f"pin f{i} to h{i % 2}" for i in range(6)),
    ]
    for k in range(n):
        chain = f"f{k % 6} >> " + " >> ".join(f"m{i}" for i in rng.sample(range(32), 3))
        if k % 50 == 0:
            chain += " >> copy 25% to trial"
        if k % 10 == 3:
            chain += " >> px"
        if k % 8 == 5:
            chain += f" >> c{k % 4} {{ web: m{k % 32}, else: pass }}"
        net = f"10.{k >> 14 & 255}.{k >> 6 & 255}.{(k & 63) << 2}/30" if k % 20 else f"fd00:{k:x}::/32"
        sym = " symmetric" if k % 7 == 0 and k % 8 != 5 else ""
        lines.append(f"policy p{k} from internet match dst net {net} via {chain}{sym}")
    return "\n".join(lines) + "\n"


def _probe(n: int) -> dict[str, int]:
    """Packet ``n`` of a small set every step is tried with: plain UDP, what
    the firewalls deny, what the classifiers take, IPv6, a customer VLAN tag."""
    base = {"eth_src": 0x020000000011, "eth_dst": 0x020000000022, "ip_dscp": 0}
    v4 = dict(base, eth_type=0x0800, ipv4_src=0x64400001, ipv4_dst=0x0A000009)
    v6 = dict(base, eth_type=0x86DD, ipv6_src=0xFD01 << 112 | 1, ipv6_dst=0xFD00 << 112 | 9)
    return [
        dict(v4, ip_proto=17, udp_src=4000 + n, udp_dst=5000),
        dict(v4, ip_proto=17, udp_src=4000 + n, udp_dst=6666),
        dict(v4, ip_proto=6, tcp_src=4000 + n, tcp_dst=80),
        dict(v6, ip_proto=6, tcp_src=4000 + n, tcp_dst=80),
        dict(v4, ip_proto=17, udp_src=4000 + n, udp_dst=53, vlan_vid=0x1000 | 12, vlan_pcp=3),
    ][n % 5]


@pytest.fixture(scope="module")
def labelled() -> Compiled:
    b = build("tenants.fs", labelled_site(), render_files=False)
    assert b.ok and b.compiled is not None, [d.message for d in b.diagnostics if d.severity == "error"]
    return b.compiled


def test_labelled_site_mixes_labels_and_vlan_ids_on_hosts(labelled: Compiled) -> None:
    steps = [s for hp in labelled.hosts.values() for s in hp.steps]
    assert len(labelled.steering.tags) > T.MAX_VLAN_TAG and labelled.steering.labelled
    assert sum(s.label for s in steps) > T.MAX_VLAN_TAG // 2  # labelled steps on every host
    assert any(not s.label for s in steps)  # copies keep VLAN ids
    nexts = [n for s in steps for _, n in s.next if n.kind != "drop"]
    assert {n.label for n in nexts if n.kind == "switch"} == {True, False}  # labels, and the exit's VLAN id
    assert any(n.label for n in nexts if n.kind == "local")  # from step to step on the host
    assert any(s.label for s in steps if s.module == "px")  # labelled steps over a tap


def test_every_labelled_step_returns_what_the_host_model_says(labelled: Compiled) -> None:
    """Every step of both hosts (MPLS labels and VLAN ids), entered with the
    frame the switch sends: the runtime gives back the frame it got, without
    the label, under the label or VLAN id of the model's next hop (or
    nothing when the model drops it); every frame a module behind a tap sees
    is the frame as it entered the platform."""
    files = G.render_click(labelled)
    for path, text in files.items():  # what real Click would accept (element names, arguments, ports)
        assert check_config(text, path) == []
    failures = []
    for host, hp in sorted(labelled.hosts.items()):
        rig = HostRig(labelled, host, files[f"click/{host}.click"])
        for n, s in enumerate(hp.steps):
            for pkt in (_probe(n), _probe(n + 2)):
                _, back = run_host(hp, labelled.site, s.tag, pkt, default_oracle, s.label)
                sent = F.frame(pkt)
                rig.tapped.clear()
                got = rig.run(F.push_label(sent, s.tag) if s.label else F.push_tag(sent, s.tag), pkt)
                tags = [returned(g) for g in got]
                want = [] if back is None else [(back, sent)]
                if tags != want:
                    failures.append(f"host {host} {G.step_text(s)} ({s.instance}) {pkt}: model {want}, runtime {tags}")
                if any(t != sent for t in rig.tapped):
                    failures.append(f"host {host} {G.step_text(s)}: a tap module saw {rig.tapped}, not {sent.hex()}")
    assert not failures, f"{len(failures)} differ:\n" + "\n".join(failures[:20])
