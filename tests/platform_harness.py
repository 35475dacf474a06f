"""Packets for property tests, and the comparison of the reference
interpreter with the simulated compiled platform."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from compiler import ir
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform

L4 = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def packet_from_point(point: Mapping[str, int]) -> dict[str, int]:
    """A header-space point as an OXM packet (fields the protocol lacks dropped)."""
    pkt = {
        "eth_src": point.get("eth_src", 0x020000000001) or 0x020000000001,
        "eth_dst": point.get("eth_dst", 0x020000000002) or 0x020000000002,
        "eth_type": point.get("eth_type", 0),
    }
    if point.get("vlan_vid", 0) & 0x1000:
        pkt["vlan_vid"] = point["vlan_vid"]
    eth = pkt["eth_type"]
    if eth in (0x0800, 0x86DD):
        fam = "ipv4" if eth == 0x0800 else "ipv6"
        pkt[f"{fam}_src"] = point.get(f"{fam}_src", 0)
        pkt[f"{fam}_dst"] = point.get(f"{fam}_dst", 0)
        pkt["ip_proto"] = point.get("ip_proto", 0)
        pkt["ip_dscp"] = point.get("ip_dscp", 0)
        names = L4.get(pkt["ip_proto"])
        if names:
            pkt[names[0]] = point.get("tp_src", 0)
            pkt[names[1]] = point.get("tp_dst", 0)
    elif eth == 0x0806:
        pkt["arp_tpa"] = point.get("arp_tpa", 0)
    return pkt


def outcome_pair(
    site: ir.Site, platform: Platform, pkt: Mapping[str, int], edge: str, in_port: tuple[str, int] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(reference, simulated) summaries that must be equal."""
    ref = interpret(site, pkt, edge, platform.c.weights(), in_port=in_port)
    sim = platform.trace(pkt, edge, in_port)

    def summary_ref(o: Any) -> dict[str, Any]:
        return {
            "modules": list(o.modules),
            "exits": sorted((x.edge, x.switch, x.port) for x in o.exits),
            "copies": sorted(tuple(c.modules) for c in o.copies),
        }

    def summary_sim(t: Any) -> dict[str, Any]:
        return {
            "modules": list(t.modules),
            "exits": sorted((x["edge"], x["switch"], x["port"]) for x in t.exits),
            "copies": sorted(tuple(c.modules) for c in t.copies),
        }

    return summary_ref(ref), summary_sim(sim)


def addr(text: str) -> int:
    return int(ipaddress.ip_address(text))


# ---------------------------------------------------------------- helpers for tests/test_properties.py


def ref_summary(o: Any) -> dict[str, Any]:
    """What the interpreter's outcome and the simulated trace must agree on.
    A copy that visits nothing (`copy P% to drop`) cannot be observed, and the
    platform does not make it: copies are compared by what they visit."""
    return {
        "modules": list(o.modules),
        "exits": sorted((x.edge, x.switch, x.port) for x in o.exits),
        "copies": sorted(tuple(c.modules) for c in o.copies if c.modules),
    }


def sim_summary(t: Any) -> dict[str, Any]:
    return {
        "modules": list(t.modules),
        "exits": sorted((x["edge"], x["switch"], x["port"]) for x in t.exits),
        "copies": sorted(tuple(c.modules) for c in t.copies if c.modules),
    }


def trace_errors(t: Any) -> list[str]:
    """Errors of a trace and of every copy it made."""
    out = [t.error] if t.error else []
    for c in t.copies:
        out += trace_errors(c)
    return out


def copy_exits(t: Any) -> list[dict[str, Any]]:
    """Exits taken by copies (a copy must never leave the platform)."""
    out: list[dict[str, Any]] = []
    for c in t.copies:
        out += list(c.exits) + copy_exits(c)
    return out


def run_both(
    site: ir.Site,
    platform: Platform,
    pkt: Mapping[str, int],
    edge: str,
    in_port: tuple[str, int] | None = None,
    oracle: Any = None,
) -> tuple[Any, Any]:
    """(interpreter Outcome, simulated Trace) for one packet; ``oracle``
    defaults to the platform's own, so both sides model modules alike."""
    ref = interpret(site, pkt, edge, platform.c.weights(), oracle=oracle or platform.oracle, in_port=in_port)
    return ref, platform.trace(pkt, edge, in_port)


def lab_build(site: Path) -> Any:
    """What `fsc lab up` hands the lab: the compiled site (it must compile)."""
    from backends.platform.lab.lab import CompiledSite
    from fslang import api

    b = api.build_file(site)
    assert b.ok and b.site is not None and b.compiled is not None, [d.message for d in b.diagnostics]
    return CompiledSite(b.site, b.compiled, b.files)


def lab_up(site: Path, name: str, built: Any = None, mode: str = "platform") -> Iterator[Any]:
    """The body of a test module's ``lab`` fixture (``yield from lab_up(...)``):
    the lab ``name`` of ``site`` up (one a killed run left behind taken down
    first), its Probe for the tests, then down with nothing left behind."""
    from backends.platform.lab import lab as labmod
    from backends.platform.lab.probe import Probe
    from backends.platform.lab.state import LabState

    if LabState(name).run_dir.exists():
        labmod.down(name)
    try:
        labmod.up(site, built if built is not None else lab_build(site), name, mode=mode, log=lambda m: None)
        yield Probe(name)
    finally:
        assert labmod.down(name) == []
