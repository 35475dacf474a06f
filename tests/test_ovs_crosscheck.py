"""Open vSwitch and the simulator agree on every example's compiled rules.

For each example: compile, load every switch's rules into a private
(userspace) OVS bridge with ``ovs-ofctl -O OpenFlow13 --bundle add-flows``,
then replay the switch hops of many simulated platform traces (every policy's
sample and variations of it, typical traffic from every edge) as
``ofproto/trace`` and compare with the simulator, hop by hop:

* the output ports, in order;
* the VLAN tag (presence, VID, PCP) of every output (from the datapath actions);
* the final packet (VLAN, addresses, ports, ethertype, metadata);
* the path: which table/priority matched, in order.

Rules OVS rejects fail the test (they are compiler/backend bugs); the hops the
accepted rules alone can decide are still compared, so one run reports both.

Needs root and the Debian package openvswitch-switch; when either is missing
the test FAILS (never skips): run `sudo bash scripts/system-deps.sh`.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from backends.emit.openflow import to_groups, to_ofctl
from backends.emit.openflow.ofctl import fmt_flow
from backends.platform.lab import PrivateOvs
from backends.platform.lab.ovs import OvsError, ovs_available
from backends.platform.wait import wait_until
from compiler.pipeline import compile_site
from compiler.verification.platform_sim import Platform
from compiler.verification.simulator import Packet
from fslang.api import load
from tests.conftest import EXAMPLES, example_ids
from tests.ovs_harness import (
    collect_hops,
    dp_outputs,
    dp_port_map,
    ofctl_flow,
    ovs_path,
    ovs_view,
    ports_used,
    rejected_lines,
    rejection_reason_key,
    sim_view,
    site_packets,
    view_diff,
)

pytestmark = pytest.mark.root

MIN_HOPS = 10  # an example must give at least this many comparable hops
MAX_REPORTED = 8  # disagreements spelled out in a failure message
RULE_EXAMPLES = 3  # rejected lines shown per kind of complaint


@pytest.fixture(scope="module")
def ovs(tmp_path_factory: pytest.TempPathFactory):
    reason = ovs_available()
    if reason:
        pytest.fail(f"Open vSwitch is not usable: {reason}", pytrace=False)  # reason says: run system-deps.sh
    if os.geteuid() != 0:
        pytest.fail(
            "the OVS cross-check needs root (network namespaces): run it as root, after "
            "`sudo bash scripts/system-deps.sh`",
            pytrace=False,
        )
    with PrivateOvs(tmp_path_factory.mktemp("ovs-crosscheck") / "ovs") as o:
        yield o


def _del_bridges(ovs: PrivateOvs) -> None:
    for br in ovs.vsctl("list-br").split():
        ovs.vsctl("--if-exists", "del-br", br)


def _render(tables: Any, problems: list[str], sw: str) -> list[tuple[Any, str]]:
    """(entry, line) for every entry; a to_ofctl crash is a problem, and then
    the entries are rendered one by one."""
    lines = [(e, fmt_flow(e)) for e in tables.entries]
    try:
        text = to_ofctl(tables)
    except Exception as e:  # noqa: BLE001 - reported, then worked around
        problems.append(f"{sw}: to_ofctl crashed: {type(e).__name__}: {e}")
        return lines
    if sorted(text.splitlines()) != sorted(line for _, line in lines):
        problems.append(f"{sw}: to_ofctl output differs from rendering the entries one by one")
    return lines


def _load(ovs: PrivateOvs, bridge: str, sw: str, tables: Any, workdir: Path, problems: list[str]) -> set[int]:
    """Load the switch's rules; returns the ids of the entries OVS rejected."""
    lines = _render(tables, problems, sw)
    groups = to_groups(tables)
    gfile = None
    if groups:
        gfile = workdir / f"{sw}.groups"
        gfile.write_text(groups)
    ffile = workdir / f"{sw}.flows"
    ffile.write_text("".join(line + "\n" for _, line in lines))
    try:
        ovs.add_flows(bridge, ffile, groups_file=gfile)
        return set()
    except OvsError as e:
        bundle_err = (e.stderr or str(e)).strip()
    if gfile is not None and not ovs.dump_groups(bridge):
        pytest.fail(f"{sw}: OVS rejected the groups: {bundle_err}\n{groups}", pytrace=False)
    bad = rejected_lines(sorted({line for _, line in lines}))
    by_reason: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line, err in bad:
        by_reason[rejection_reason_key(err)].append((line, err))
    msg = [f"{sw}: OVS rejects {len(bad)} of {len(lines)} rules (bundle: {bundle_err.splitlines()[0]})"]
    for _reason, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        msg.append(f"  {len(items)} x {items[0][1]}")
        msg += [f"      {line}" for line, _ in items[:RULE_EXAMPLES]]
    problems.append("\n".join(msg))
    bad_lines = {line for line, _ in bad}
    ffile.write_text("".join(line + "\n" for _, line in lines if line not in bad_lines))
    try:
        ovs.ofctl("--bundle", "add-flows", str(ffile), bridge=bridge)
    except OvsError as e:
        pytest.fail(
            "\n\n".join(problems) + f"\n\n{sw}: even the rules parse-flow accepts do not load: {e}", pytrace=False
        )
    return {id(e) for e, line in lines if line in bad_lines}


def _compare_hop(
    ovs: PrivateOvs,
    bridge: str,
    sim: Any,
    sw: str,
    in_port: int,
    headers: dict[str, int],
    dpmap: dict[int, tuple[str, int]],
    stats: Counter[str],
) -> list[str]:
    """Differences between OVS and the simulator on one hop ([] = agree);
    ``stats`` counts the checks made."""
    flow = ofctl_flow(in_port, headers)
    sim.conntrack.clear()  # ofproto/trace meets every connection as new (`ct` resumes with trk,new)
    res = sim.run(Packet.from_fields(headers), in_port)
    r = ovs.trace(bridge, flow)
    diffs: list[str] = []

    allowed = [[e.port for e in o] for o in (res.outcomes if res.select else (res.outputs,))]
    sim_ports = [e.port for e in res.outputs]
    stats["drops" if res.dropped else "forwards"] += 1
    if r.output_ports not in allowed:
        diffs.append(f"output ports: simulator {sim_ports if not res.select else allowed}, OVS {r.output_ports}")
    if res.dropped != (not r.output_ports):
        diffs.append(f"dropped: simulator {res.dropped}, OVS {not r.output_ports}")

    if not res.select and r.output_ports == sim_ports:
        vid = headers.get("vlan_vid", 0)
        vlan_in = (vid & 0xFFF, headers.get("vlan_pcp", 0)) if vid & 0x1000 else None
        dp = dp_outputs(r.datapath_actions, vlan_in, dpmap)
        if dp is not None and res.outputs:
            stats["output vlans"] += len(res.outputs)
            want = [(e.port, sim_view(e.packet)["vlan"]) for e in res.outputs]
            if dp != want:
                diffs.append(
                    f"outputs (port, (vid, pcp)): simulator {want}, OVS datapath {dp} (`{r.datapath_actions}`)"
                )
        if res.final is not None:
            stats["final packets"] += 1
            d = view_diff(sim_view(res.final), ovs_view(r.final_flow))
            if d:
                diffs.append(
                    "final packet (simulator, OVS): "
                    + ", ".join(f"{k}={a!r}/{b!r}" for k, a, b in ((k, *v) for k, v in d.items()))
                )

    sim_p = [(h.table_id, h.priority) for h in res.matched]
    ovs_p = ovs_path(r.raw)
    if sim_p != [(t, p) for t, p, _ in ovs_p]:
        k = next((i for i, (a, b) in enumerate(zip(sim_p, ovs_p)) if a != b[:2]), min(len(sim_p), len(ovs_p)))
        sim_rule = fmt_flow(res.matched[k].entry) if k < len(res.matched) else "(table miss / end)"
        ovs_rule = f"table {ovs_p[k][0]} priority {ovs_p[k][1]}: {ovs_p[k][2]}" if k < len(ovs_p) else "(end)"
        diffs.append(
            f"path diverges at step {k}: simulator {sim_p}, OVS {[t[:2] for t in ovs_p]}\n"
            f"        simulator rule: {sim_rule}\n        OVS rule:       {ovs_rule}"
        )
    if diffs:
        diffs.insert(0, f"{sw} (`ofproto/trace {bridge} {flow}`)")
    return diffs


@pytest.mark.parametrize("example", EXAMPLES, ids=example_ids())
def test_ovs_agrees_with_simulator(ovs: PrivateOvs, example: Path, tmp_path: Path) -> None:
    _crosscheck(ovs, example, tmp_path)


# Data-plane fast failover: ports taken down (a replica host's link, a link
# between switches) on OVS with `mod-port N down` and in the simulator with
# ``down=``; the groups' buckets must pick the same survivor hop by hop.
DOWN_CASES = [
    ("campus", {"core": (1,)}),  # mh1: ids#1 fails over to ids#2 on the same switch
    ("two_switch", {"south": (1,)}),  # m2: acct#2's flows cross the link to acct#1, marked
    ("two_switch", {"north": (1,)}),  # m1: the other way
    ("two_switch", {"north": (24,)}),  # the link between the switches (down at both ends)
    ("isp_pop", {"pop": (2,)}),  # svc2: a fork's leg to ids#4 fails over through the group in its action list
    ("isp_pop", {"pop": (1, 2)}),  # every ids host: that leg's group sends nothing, the fork's other legs go on
]


@pytest.mark.parametrize(("name", "down"), DOWN_CASES, ids=[f"{n}-{d}" for n, d in DOWN_CASES])
def test_ovs_agrees_with_simulator_with_ports_down(
    ovs: PrivateOvs, name: str, down: dict[str, tuple[int, ...]], tmp_path: Path
) -> None:
    _crosscheck(ovs, EXAMPLES[0].parent / f"{name}.fs", tmp_path, {sw: frozenset(ps) for sw, ps in down.items()})


def _port_down(ovs: PrivateOvs, bridge: str, port: int) -> None:
    """`mod-port N down`, then wait until OVS reports the port down (its
    fast-failover buckets read the same liveness)."""
    ovs.ofctl("mod-port", str(port), "down", bridge=bridge)

    def is_down() -> bool:
        desc = ovs.ofctl("dump-ports-desc", bridge=bridge)
        block = re.search(rf"^ *{port}\(.*?(?=^ *\d+\(|^ *LOCAL\(|\Z)", desc, re.M | re.S)
        return block is not None and "LINK_DOWN" in block.group(0)

    wait_until(is_down, 10, f"port {port} of {bridge} down")


def _crosscheck(ovs: PrivateOvs, example: Path, tmp_path: Path, down: dict[str, frozenset[int]] | None = None) -> None:
    t0 = time.monotonic()
    result = load(example)
    assert result.site is not None, [f"{d.code} {d.message}" for d in result.diagnostics]
    compiled = compile_site(result.site)
    site = compiled.site
    platform = Platform(compiled, down=down)
    problems: list[str] = []

    _del_bridges(ovs)
    top = ports_used(site, compiled.tables)
    bridges: dict[str, str] = {}
    rejected: dict[str, set[int]] = {}
    try:
        for k, sw in enumerate(sorted(compiled.tables)):
            bridges[sw] = f"x{k}"
            dpid = next((s.dpid for s in site.switches if s.name == sw), k + 1)
            ovs.add_bridge(bridges[sw], dpid=dpid, ports=range(1, top.get(sw, 1) + 1))
        for sw in sorted(compiled.tables):
            rejected[sw] = _load(ovs, bridges[sw], sw, compiled.tables[sw], tmp_path, problems)
        for sw, ports in sorted(platform.down.items()):  # a link: both ends
            for port in sorted(ports):
                _port_down(ovs, bridges[sw], port)
        dpmap = dp_port_map(ovs.appctl("dpif/show"))

        hops, sim_errors = collect_hops(platform, site_packets(site))
        compared = skipped = 0
        disagreements: list[list[str]] = []
        stats: Counter[str] = Counter()
        for sw, in_port, headers in hops:
            sim = platform.sims[sw]
            if rejected[sw]:
                res = sim.run(Packet.from_fields(headers), in_port)
                if any(id(h.entry) in rejected[sw] for h in res.matched):
                    skipped += 1  # decided by a rule OVS does not have
                    continue
            compared += 1
            d = _compare_hop(ovs, bridges[sw], sim, sw, in_port, headers, dpmap, stats)
            if d:
                disagreements.append(d)
    finally:
        _del_bridges(ovs)

    elapsed = time.monotonic() - t0
    checks = ", ".join(f"{k}: {v}" for k, v in sorted(stats.items()))
    what = f"{example.stem} (down: {dict(sorted(platform.down.items()))})" if down else example.stem
    summary = (
        f"{what}: {len(hops)} distinct switch hops, {compared} compared with OVS [{checks}], "
        f"{skipped} skipped (decided by a rule OVS rejected), {len(disagreements)} disagreements, "
        f"{len(sim_errors)} traces the simulator refused, {elapsed:.1f}s"
    )
    print(summary)
    if disagreements:
        shown = "\n".join("\n    ".join(d) for d in disagreements[:MAX_REPORTED])
        more = f"\n... and {len(disagreements) - MAX_REPORTED} more" if len(disagreements) > MAX_REPORTED else ""
        problems.append(f"OVS and the simulator disagree on {len(disagreements)} of {compared} hops:\n{shown}{more}")
    if sim_errors:
        problems.append(f"the simulator refused {len(sim_errors)} traces, e.g. {sim_errors[0]}")
    if compared < MIN_HOPS:
        problems.append(f"only {compared} hops could be compared (want at least {MIN_HOPS})")
    if problems:
        pytest.fail(summary + "\n\n" + "\n\n".join(problems), pytrace=False)
