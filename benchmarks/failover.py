"""Live operation (issue 12): a host crash under traffic, a drain under
long-lived TCP connections and an agent restart under traffic, in a lab of
tests/lab_sites/failab.fs, with real packets.

    sudo .venv/bin/python -m benchmarks.failover [--repeat 3] [--rate 200] [--name fobench] [--link-down-only]

Needs root and Open vSwitch (`fsc lab`). One lab for every round; each round:

1. **crash**: two numbered UDP streams from `wan` to `lan` (`count`, through
   `cnt`, and `steady`, through the pinned `fw` only), then `fsc lab fail` of
   the host that runs `cnt`. Measured: *detect*, from the crash to `fsc status`
   saying the host is down; *recover*, to `status` listing its instances ready
   on other hosts; *outage*, the affected stream's lost datagrams at the
   sending rate (from the crash to that policy passing again); *lost* of the
   untouched stream; *rules changed* on the switch, and how many of them are
   not the steering rules of the moved instances' tags (i.e. rules of
   policies the crash did not concern; target 0). Then `fsc lab heal`.
2. **drain**: 8 long TCP connections (`web`, through `fw` and an `ids`
   replica), `fsc drain` of the host of the replica that is not on `fw`'s
   host while they run; resets and lost bytes. Then `fsc undrain`.
3. **agent restart**: the agent of `cnt`'s host killed (SIGKILL) and started
   again under a UDP stream; lost datagrams.
4. **link down** (a second lab, tests/lab_sites/fflab.fs: two replicas of
   `mon` on two hosts): numbered UDP datagrams 1 ms apart over 8 flows, the
   switch-side link of `mon#2`'s host taken down under them
   (:mod:`backends.platform.lab.linkdown`); the switch's fast-failover groups
   move its flows to `mon#1`. Measured: datagrams lost, and the outage (first
   to last lost datagram, 1 ms apart; target < 100 ms). Then the same in a
   third lab, tests/lab_sites/fflab2.fs: the two hosts behind two switches
   joined by a link, so the moved flows cross the link back to `mon#1`.
   ``--link-down-only`` runs this part alone.

The platform is driven by the commands of the contract only
(:mod:`backends.platform.lab.liveops`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from backends.platform.lab import faults, linkdown, liveops
from backends.platform.lab import lab as labmod
from backends.platform.lab.probe import Probe
from backends.platform.lab.state import LabState
from backends.platform.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tests" / "lab_sites" / "failab.fs"
DST = "10.90.0.9"
FF_SITE = ROOT / "tests" / "lab_sites" / "fflab.fs"
FF_DST = "10.91.0.9"
# (site, destination, UDP port): one switch, then two switches (failover across the link)
FF_SITES = ((FF_SITE, FF_DST, 5003), (ROOT / "tests" / "lab_sites" / "fflab2.fs", "10.92.0.9", 5004))


def _build(site: Path) -> labmod.CompiledSite:
    from fslang.api import build_file

    b = build_file(site)
    assert b.ok and b.site is not None and b.compiled is not None, b.diagnostics
    return labmod.CompiledSite(b.site, b.compiled, b.files)


def healthy(lab: Probe) -> dict:
    for host in faults.failed_hosts(lab.state):
        liveops.must(liveops.fsc(lab, "lab", "heal", host, "--name", lab.state.name, controller=False))
    for h in liveops.status(lab)["hosts"]:
        if h["state"] in ("drained", "draining"):
            liveops.must(liveops.fsc(lab, "undrain", h["name"]))

    def ok() -> dict | None:
        st = liveops.api_status(lab)
        good = all(h["state"] == "up" for h in st["hosts"]) and all(
            i["state"] == "ready" for h in st["hosts"] for i in h["instances"] if i.get("wanted", True)
        )
        return st if good and not st.get("applying") else None

    return wait_until(ok, 60, "every host up, every instance ready")


def crash(lab: Probe, rate: float) -> liveops.FailoverRun:
    healthy(lab)
    return liveops.crash_under_traffic(lab, DST, affected_port=5002, untouched_port=5001, instance="cnt", rate=rate)


def drain(lab: Probe) -> tuple[str, liveops.TcpRun, float]:
    st = healthy(lab)
    host = liveops.host_of(st, "ids#2")
    if host == "h1":
        host = liveops.host_of(st, "ids#1")
    assert host is not None
    with liveops.LongTcp(lab, "wan", "lan", f"{DST}:8080", connections=8, seconds=8) as tcp:
        wait_until(lambda: tcp.established() >= 8, 15, "8 connections established")
        t0 = time.monotonic()
        liveops.must(liveops.fsc(lab, "drain", host, "--grace", "20", "--idle", "2"))
        took = time.monotonic() - t0
        run = tcp.wait()
    liveops.must(liveops.fsc(lab, "undrain", host))
    return host, run, took


def agent_restart(lab: Probe, rate: float) -> tuple[str, liveops.Stream, list[str]]:
    """The restart under a UDP stream; also the processes of the host that
    did not survive it (the killed agent aside: adoption keeps the rest)."""
    st = healthy(lab)
    host = liveops.host_of(st, "cnt")
    assert host is not None
    before = liveops.processes(lab, host)
    stream = liveops.Stream(5002, int(rate * 8), rate)
    with liveops.Traffic(lab, "wan", "lan", DST, [stream]):
        agent = liveops.restart_agent(lab, host)
    healthy(lab)
    after = liveops.processes(lab, host)
    return host, stream, [f"{p} {c}" for p, c in before.items() if p != agent and p not in after]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=float, default=200.0, help="datagrams per second of each UDP stream")
    ap.add_argument("--name", default="fobench", help="lab name")
    ap.add_argument("--link-down-only", action="store_true", help="only the data-plane part (4.)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write("benchmarks.failover needs root (it runs `fsc lab`)\n")
        return 3
    links = [
        (site.stem, r)
        for k, (site, dst, port) in enumerate(FF_SITES)
        for r in link_down(f"{args.name}f{k}", args.repeat, site, dst, port)
    ]
    if args.link_down_only:
        print_link_down(links)
        return 0
    if LabState(args.name).run_dir.exists():
        labmod.down(args.name)
    labmod.up(SITE, _build(SITE), args.name, log=lambda m: None)
    lab = Probe(args.name)
    crashes, drains, restarts = [], [], []
    try:
        for _ in range(args.repeat):
            crashes.append(crash(lab, args.rate))
            drains.append(drain(lab))
            restarts.append(agent_restart(lab, args.rate))
    finally:
        labmod.down(args.name)
    print("host crash under traffic (`fsc lab fail`), seconds from the crash:")
    print(
        f"{'round':>5} {'host':>4} {'detect':>7} {'recover':>8} {'outage':>7} {'lost':>10} "
        f"{'untouched lost':>15} {'rules changed':>14} {'untouched rules':>16}"
    )
    for n, r in enumerate(crashes, 1):
        print(
            f"{n:>5} {r.host:>4} {_f(r.detect):>7} {_f(r.recover):>8} {r.affected.outage:>7.2f} "
            f"{f'{r.affected.lost}/{r.affected.count}':>10} {r.untouched.lost:>15} {r.rules_changed:>14} "
            f"{len(r.untouched_rules):>16}"
        )
    outages = [r.affected.outage for r in crashes]
    print(f"outage median {statistics.median(outages):.2f}s, max {max(outages):.2f}s (target <= 5 s)")
    print("drain under 8 long TCP connections (`fsc drain`):")
    for n, (host, run, took) in enumerate(drains, 1):
        print(
            f"{n:>5} {host:>4} drain took {took:5.1f}s  connections {len(run.connections)}  "
            f"resets {run.resets}  broken {len(run.broken)}  lost bytes {run.lost_bytes}  echoed {run.bytes}"
        )
    print("agent restart under traffic (SIGKILL, start again):")
    for n, (host, s, gone) in enumerate(restarts, 1):
        print(f"{n:>5} {host:>4} lost {s.lost}/{s.count}; instance processes replaced: {gone or 'none'}")
    print_link_down(links)
    print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f} (run at {time.strftime('%H:%M %Y-%m-%d')})")
    return 0


def link_down(name: str, repeat: int, site: Path, dst: str, port: int) -> list[linkdown.LinkDownRun]:
    """Part 4, in a lab of its own: the switch-side link of `mon#2`'s host down under the probe."""
    if LabState(name).run_dir.exists():
        labmod.down(name)
    built = _build(site)
    labmod.up(site, built, name, log=lambda m: None)
    lab = Probe(name)
    runs = []
    try:
        for _ in range(repeat):
            st = wait_until(
                lambda: (
                    (s := liveops.api_status(lab))
                    and all(i["state"] == "ready" for h in s["hosts"] for i in h["instances"])
                    and s
                ),
                30,
                "every instance ready",
            )
            host = liveops.host_of(st, "mon#2")
            assert host is not None
            runs.append(linkdown.link_down_under_traffic(lab, built.compiled, host, "wan", "lan", dst, port))
    finally:
        labmod.down(name)
    return runs


def print_link_down(runs: list[tuple[str, linkdown.LinkDownRun]]) -> None:
    print("replica host's switch link down under 1 ms datagrams over 8 flows (fast-failover groups):")
    for n, (site, r) in enumerate(runs, 1):
        print(
            f"{n:>5} {site:>7} {r.host:>4} flows moved {len(r.moved_flows)}/8  lost {len(r.lost)}/{r.count}  "
            f"outage {r.outage * 1000:.0f} ms  other flows lost {r.others_lost}"
        )
    if runs:
        worst = max(r.outage for _, r in runs)
        print(f"outage max {worst * 1000:.0f} ms (target < 100 ms)")


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    sys.exit(main())
