"""Apply speed (issue 6 item 6, issue 13 item 7): `fsc apply` of a ~10,000-rule site to a lab
switch against `ovs-ofctl --bundle add-flows` of the same rules into the same
switch, in the same run; then what a one-policy change and a no-change apply
push and cost.

    sudo .venv/bin/python -m benchmarks.apply_speed [--policies 350] [--seed 1] [--drain 0]
                                                  [--repeat 3] [--costs] [--keep]

Needs root (a network namespace) and Open vSwitch.  The site (seeded, written
here) has one switch, four destination edges and four `box`es, and no module
instances, so no agents are needed: policies `drop`, `via pass`, `via BOX`
and `via case {...: BOX, else: pass}` over a destination /30 or host and a
port set or range; 350 policies compile to ~10,000 rules.

Steps, all in one private OVS (`backends.platform.lab.ovs.PrivateOvs`, vswitchd in its
own namespace, reached from the root namespace over a veth, as
`tests/test_controller_harness.py` does):

1. `fsc compile SITE --generation 0`: the `.ofctl` the reference loads (and the
   compile time, which `fsc apply` also pays on the client side).
2. `ovs-ofctl -O OpenFlow13 --bundle add-flows s0 FILE` into the site's bridge
   while it has no controller, `--repeat` times, `del-flows` in between (not
   timed).
3. `del-flows`, point the bridge at a real `fsc controller`, then time
   `fsc apply SITE --yes --format json --drain D` (first deploy); each NDJSON
   progress line is time-stamped as it arrives, which splits the wall time
   into client compile + upload + controller plan, install, flip, commit,
   cleanup.
4. change one policy's destination port, `fsc plan --format json`, time the
   second apply and count what it pushed per phase; the minimal change (the
   rules that differ between the two sites compiled with the same
   generation) is given for comparison.
5. a no-change apply (the client finds nothing to change).

Columns: `apply s` the whole `fsc apply` (client start, compile, upload,
controller); `push s` from the controller's `plan` event to the result (its
switch work: pre-apply reconcile read, bundles, read-backs); `ratio` and
`push ratio` both against the ofctl median.  `--costs` adds in-process
timings of the controller's pure steps (parse, message build, read-back).

Everything (controller, OVS, namespace, veth, temp dir) is removed on exit,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FSC = str(ROOT / ".venv" / "bin" / "fsc")
SWITCH, DPID = "s0", 0xA1


# -- the site -------------------------------------------------------------------
def site_text(n: int, seed: int = 1, boxes: int = 4, nets: int = 4) -> str:
    """One switch, ``n`` policies from `internet`, no module instances."""
    rng = random.Random(seed)
    out = [f"site apply{n}", f"switch {SWITCH} dpid {DPID:#x} ports 64", "edge internet at s0:1 default"]
    for e in range(nets):
        out.append(f"edge net{e} at s0:{2 + e} net 10.{e}.0.0/16")
    for b in range(boxes):
        out.append(f"box bx{b} at s0:{20 + 2 * b} -> s0:{21 + 2 * b}")
    for i in range(n):
        e = i % nets
        block = (i // nets) * 4  # a /30 of its own: policies never shadow each other
        base = f"10.{e}.{(block >> 8) & 255}.{block & 255}"
        dst = f"dst net {base}/30" if rng.random() < 0.5 else f"dst host {base}"
        r = rng.random()
        if r < 0.4:
            lo = rng.randrange(1024, 60000)
            m = f"{dst} and tcp and dst port {lo}..{lo + rng.randrange(1, 100)}"
        elif r < 0.8:
            ports = ", ".join(str(rng.randrange(1, 65535)) for _ in range(rng.randrange(1, 4)))
            m = f"{dst} and tcp and dst port {{{ports}}}"
        else:
            m = f"{dst} and udp and dst port {rng.randrange(1, 65535)}"
        a = rng.random()
        if a < 0.3:
            act = "drop"
        elif a < 0.6:
            act = "via pass"
        elif a < 0.9:
            act = f"via bx{rng.randrange(boxes)}"
        else:
            act = f"via case {{ tcp and dst port 443: bx{rng.randrange(boxes)}, else: pass }}"
        out.append(f"policy p{i} from internet match {m} {act}")
    return "\n".join(out) + "\n"


def change_one_policy(text: str, which: str = "via bx") -> tuple[str, str, str]:
    """The site with one policy (the middle one whose action contains
    ``which`` and whose ports are a set) on another destination port:
    (new text, policy name, the new line)."""
    lines = text.splitlines()
    cands = [i for i, l in enumerate(lines) if l.startswith("policy ") and which in l and "dst port {" in l]
    i = cands[len(cands) // 2]
    head, rest = lines[i].split("dst port {", 1)
    ports, tail = rest.split("}", 1)
    plist = [x.strip() for x in ports.split(",")]
    first = int(plist[0])
    plist[0] = str(first + 1 if first < 65534 else first - 1)
    lines[i] = f"{head}dst port {{{', '.join(plist)}}}{tail}"
    return "\n".join(lines) + "\n", lines[i].split()[1], lines[i]


# -- lab ------------------------------------------------------------------------
def _harness() -> Any:
    """tests/test_controller_harness.py (plain helpers, no pytest)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import test_controller_harness as h
    finally:
        sys.path.pop(0)
    return h


def fsc(*args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    cp = subprocess.run([FSC, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return cp, time.perf_counter() - t0


def timed_apply(site: Path, url: str, token: Path, drain: float) -> dict[str, Any]:
    """`fsc apply --yes --format json`; every progress event with the seconds
    since the start at which it arrived, the client's CPU seconds (user +
    system) and whether its compile was spliced (FSC_DEBUG=1 says when not)."""
    cmd = [
        FSC,
        "apply",
        str(site),
        "--controller",
        url,
        "--token-file",
        str(token),
        "--yes",
        "--format",
        "json",
        "--drain",
        str(drain),
    ]
    env = {**os.environ, "FSC_DEBUG": "1"}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    events = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            t = time.perf_counter() - t0
            if line.strip().startswith("{"):
                events.append((t, json.loads(line)))
        err = proc.stderr.read() if proc.stderr else ""
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:  # interrupted: do not leave the client behind
            proc.kill()
            proc.wait(10)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
    last = events[-1][1] if events else {}
    if rc != 0 or last.get("result") != "ok":
        raise RuntimeError(f"fsc apply failed (exit {rc}): {last or ''} {err.strip()[-2000:]}")
    return {"wall": wall, "events": events, "cpu": cpu, "spliced": "compiling in full" not in err}


def phases(run: dict[str, Any]) -> dict[str, Any]:
    """Split an apply's wall time by the arrival of its progress events."""
    out: dict[str, Any] = {k: run[k] for k in ("wall", "events", "cpu", "spliced")}
    out["pushed"] = {}
    prev = 0.0
    marks = []
    for t, ev in run["events"]:
        name = ev.get("phase") or ("result" if "result" in ev else "?")
        marks.append((name, t - prev))
        prev = t
        if ev.get("phase") == "plan":
            out["pushed"] = {sw: dict(v) for sw, v in ev.get("switches", {}).items()}
        if "result" in ev:
            out["result"] = ev
    out["marks"] = marks
    return out


def same_generation_plan(old_dir: Path, new_dir: Path) -> dict[str, Any]:
    """What the controller's plan would push if the changed site were applied
    with the deployed generation (not what `fsc apply` does: it always flips
    the generation), and ``replaced``: rules whose key both sides have but
    whose content changes (0 means every change is a plain add or delete)."""
    from backends.platform.controller.plan import plan_update, switch_tables

    def files(d: Path) -> dict[str, str]:
        return {str(p.relative_to(d)): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}

    old_files = files(old_dir)
    old_tables = switch_tables(old_files)
    plan = plan_update(old_files, files(new_dir), old_tables)
    sw = plan.switches[SWITCH]
    old = old_tables[SWITCH][1]
    j = plan.answer().switches[SWITCH]
    return {
        "install": len(sw.install),
        "flip": len(sw.flip),
        "cleanup": len(sw.cleanup),
        "added": j.added,
        "removed": j.removed,
        "moved": bool(plan.started or plan.stopped or plan.moved),
        "replaced": sum(1 for c, f in (*sw.install, *sw.flip) if c == "add" and f.key in old),
    }


def controller_costs(compiled: Path) -> list[tuple[str, float]]:
    """In-process seconds of the controller's pure steps for the compiled
    switch file: parse (as `plan_update` does, once per call), build and
    serialise the bundle-add messages, and a read-back of the same flows
    (os-ken's flow-stats parsing of synthesised reply bodies, `flow_from_stats`
    + key, `same_tables` against the expected tables)."""
    import struct
    from types import SimpleNamespace

    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    from backends.platform.controller.flows import flow_from_stats, flow_mod
    from backends.platform.controller.plan import same_tables, switch_tables

    files = {f"openflow/{SWITCH}.json": (compiled / "openflow" / f"{SWITCH}.json").read_text()}
    out = []
    t0 = time.perf_counter()
    expected = switch_tables(files)[SWITCH][1]
    out.append(("parse the compiled JSON (switch_tables)", time.perf_counter() - t0))
    flows = list(expected.values())
    dp = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=DPID)
    t0 = time.perf_counter()
    for f in flows:
        m = parser.ONFBundleAddMsg(dp, 1, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED, flow_mod(dp, f, "add"), [])
        m.set_xid(1)
        m.serialize()
    out.append(("build + serialise the bundle-add messages", time.perf_counter() - t0))
    bodies = []
    for f in flows:  # what OVS sends back in OFPMP_FLOW replies
        mb, ib = bytearray(), bytearray()
        f.match.serialize(mb, 0)
        for i in f.instructions:
            i.serialize(ib, len(ib))
        n = ofp.OFP_FLOW_STATS_0_SIZE
        b = bytearray(n + len(mb) + len(ib))
        struct.pack_into(
            ofp.OFP_FLOW_STATS_0_PACK_STR, b, 0, len(b), f.table_id, 0, 0, f.priority, 0, 0, 0, f.cookie, 0, 0
        )
        b[n:] = bytes(mb) + bytes(ib)
        bodies.append(bytes(b))
    buf = b"".join(bodies)
    t0 = time.perf_counter()
    stats, off = [], 0
    while off < len(buf):
        st = parser.OFPFlowStats.parser(buf, off)
        stats.append(st)
        off += st.length
    out.append(("read-back: os-ken parses the flow stats", time.perf_counter() - t0))
    t0 = time.perf_counter()
    got = {}
    for st in stats:
        fl = flow_from_stats(st)
        got[fl.key] = fl
    out.append(("read-back: flow_from_stats + key", time.perf_counter() - t0))
    t0 = time.perf_counter()
    diffs = same_tables(expected, got)
    out.append((f"read-back: same_tables ({len(diffs)} differences)", time.perf_counter() - t0))
    return out


def ofctl_lines(path: Path) -> set[str]:
    return {l for l in path.read_text().splitlines() if l.strip()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", type=int, default=350, help="policies in the site (350 -> ~10,000 rules)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--drain",
        type=float,
        default=0.0,
        help="`fsc apply --drain` (the default of apply is 1 s of pure waiting; 0 measures the pushing)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="ovs-ofctl loads (the median is reported)")
    ap.add_argument(
        "--costs",
        action="store_true",
        help="also time the controller's pure steps in-process (parse, message build, read-back)",
    )
    ap.add_argument(
        "--changes",
        type=int,
        default=5,
        help="one-policy changes timed per kind (a box policy: compiled in full; a match edit: spliced)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (site, compiled files, logs)")
    ns = ap.parse_args()
    if os.geteuid() != 0:
        print(
            "apply_speed: needs root (it creates a network namespace and a veth for a private Open vSwitch); "
            "run: sudo .venv/bin/python -m benchmarks.apply_speed",
            file=sys.stderr,
        )
        return 2
    from backends.platform.lab.ovs import ovs_available

    reason = ovs_available()
    if reason:
        print(f"apply_speed: Open vSwitch is not usable: {reason}", file=sys.stderr)
        return 2

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(f"apply_speed: signal {signum}, cleaning up")

    signal.signal(signal.SIGTERM, on_term)

    h = _harness()
    tmp = Path(tempfile.mkdtemp(prefix="fsc-apply-speed-"))
    lab = ctl = None
    try:
        site = tmp / "site.fs"
        text = site_text(ns.policies, ns.seed)
        site.write_text(text)
        cp, check_s = fsc("check", str(site))
        if cp.returncode != 0:
            raise RuntimeError(f"fsc check failed:\n{cp.stdout}{cp.stderr}")
        cp, compile_s = fsc("compile", str(site), "-o", str(tmp / "c0"), "--generation", "0")
        if cp.returncode != 0:
            raise RuntimeError(f"fsc compile failed:\n{cp.stdout}{cp.stderr}")
        ofctl_file = tmp / "c0" / "openflow" / f"{SWITCH}.ofctl"
        costs = controller_costs(tmp / "c0") if ns.costs else []
        rules = len(ofctl_lines(ofctl_file))

        # the lab: private OVS in a namespace, a veth to the root namespace
        lab = h.Lab(tmp)
        lab.start()
        lab.ovs.add_bridge(SWITCH, dpid=DPID)
        lab.ovs.vsctl("set", "bridge", SWITCH, "protocols=OpenFlow13,OpenFlow14")
        lab.bridges[SWITCH] = DPID

        # reference: ovs-ofctl --bundle add-flows into the same (controller-less, empty) bridge
        ofctl_times = []
        for _ in range(max(1, ns.repeat)):
            lab.ovs.ofctl("del-flows", bridge=SWITCH)
            t0 = time.perf_counter()
            lab.ovs.ofctl("--bundle", "add-flows", str(ofctl_file), bridge=SWITCH)
            ofctl_times.append(time.perf_counter() - t0)
        loaded = len(lab.ovs.dump_flows(SWITCH))
        reference = sorted(lab.ovs.dump_flows(SWITCH))
        lab.ovs.ofctl("del-flows", bridge=SWITCH)
        ofctl_s = statistics.median(ofctl_times)

        # the controller, and the bridge pointed at it
        ctl = h.Controller(tmp / "state", lab.host_ip)
        ctl.start()
        lab.ovs.vsctl("set-controller", SWITCH, f"tcp:{lab.host_ip}:{ctl.of_port}")
        lab.ovs.vsctl("set", "controller", SWITCH, "max_backoff=1000")
        lab.wait_connected(ctl, [SWITCH], timeout=30)

        first = phases(timed_apply(site, ctl.url, ctl.token_file, ns.drain))
        installed = sorted(lab.ovs.dump_flows(SWITCH))
        same_as_ofctl = installed == reference

        # one policy changed
        text2, pname, pline = change_one_policy(text)
        site2 = tmp / "site2.fs"
        site2.write_text(text2)
        cp, _ = fsc(
            "plan", str(site2), "--controller", ctl.url, "--token-file", str(ctl.token_file), "--format", "json"
        )
        plan2 = json.loads(cp.stdout) if cp.returncode == 0 else {}
        # the minimal change: the two sites compiled with the same generation, rule lines that differ
        cp, _ = fsc("compile", str(site2), "-o", str(tmp / "c0b"), "--generation", "0")
        a, b = ofctl_lines(ofctl_file), ofctl_lines(tmp / "c0b" / "openflow" / f"{SWITCH}.ofctl")
        minimal = (len(b - a), len(a - b))
        same_gen = same_generation_plan(tmp / "c0", tmp / "c0b")
        live = site  # the applied site file, edited in place as a user does (the client's cache is per file)
        changes: dict[str, list[dict[str, Any]]] = {}
        for kind, which in (("box", "via bx"), ("match", "via pass")):
            edited = change_one_policy(text, which)[0]
            runs = changes[kind] = []
            for i in range(ns.changes):
                live.write_text(edited if i % 2 == 0 else text)  # the edit, then back: each a one-policy change
                runs.append(phases(timed_apply(live, ctl.url, ctl.token_file, ns.drain)))
            if ns.changes % 2:
                live.write_text(text)
                timed_apply(live, ctl.url, ctl.token_file, ns.drain)
        second = changes["box"][0]
        live.write_text(text2)
        timed_apply(live, ctl.url, ctl.token_file, ns.drain)
        after2 = len(lab.ovs.dump_flows(SWITCH))
        noops = [phases(timed_apply(live, ctl.url, ctl.token_file, ns.drain)) for _ in range(3)]
        noop = sorted(noops, key=lambda p: p["wall"])[1]
    finally:
        if ctl is not None:
            ctl.stop()
        if lab is not None:
            try:
                lab.stop()
            except Exception as err:  # report, keep cleaning
                print(f"apply_speed: cleanup: {err}", file=sys.stderr)
        if ns.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- report -------------------------------------------------------------------
    def marks(p: dict[str, Any]) -> str:
        merged: dict[str, float] = {}
        for name, dt in p["marks"]:
            merged[name] = merged.get(name, 0.0) + dt
        return ", ".join(f"{k} {v:.2f}" for k, v in merged.items())

    def pushed(p: dict[str, Any]) -> str:
        sw = p["pushed"].get(SWITCH, {})
        return f"install {sw.get('install', 0)} / flip {sw.get('flip', 0)} / cleanup {sw.get('cleanup', 0)}"

    def push_s(p: dict[str, Any]) -> float:
        """Seconds after the plan event: the controller's phases (reconcile
        check, install, flip, commit, cleanup with their read-backs)."""
        t_plan = next((t for t, ev in p["events"] if ev.get("phase") == "plan"), None)
        return p["wall"] - t_plan if t_plan is not None else 0.0

    res2 = second.get("result", {}).get("switches", {}).get(SWITCH, {})
    ratio = first["wall"] / ofctl_s
    push1 = push_s(first)

    def med(runs: list[dict[str, Any]], f: Any = lambda p: p["wall"]) -> float:
        return statistics.median(f(p) for p in runs)

    def spread(runs: list[dict[str, Any]]) -> str:
        walls = [p["wall"] for p in runs]
        return f"{med(runs):.2f} ({min(walls):.2f}-{max(walls):.2f})"

    def secs(runs: list[dict[str, Any]], key: str) -> str:
        return ", ".join(f"{p[key]:.2f}" for p in runs)

    match, box = changes["match"], changes["box"]
    print(
        f"{'site':>10} {'rules':>6} | {'apply s':>7} {'push s':>6} {'ofctl s':>7} {'ratio':>6} {'push ratio':>10} | "
        f"{'1-policy change: +rules':>23} {'-rules':>6} {'match edit s':>16} {'box policy s':>16} | "
        f"{'minimal +/-':>11} | {'no-change s':>11}"
    )
    print(
        f"{'apply' + str(ns.policies):>10} {rules:>6} | {first['wall']:>7.2f} {push1:>6.2f} {ofctl_s:>7.2f} "
        f"{ratio:>5.1f}x {push1 / ofctl_s:>9.1f}x | "
        f"{res2.get('added', '?'):>23} {res2.get('removed', '?'):>6} {spread(match):>16} {spread(box):>16} | "
        f"{f'{minimal[0]} / {minimal[1]}':>11} | {noop['wall']:>11.2f}"
    )
    print()
    print(
        f"site: {ns.policies} policies (seed {ns.seed}), 1 switch, 4 boxes, no module instances; "
        f"fsc check {check_s:.2f} s, fsc compile {compile_s:.2f} s (a full compile, as the first apply pays it)"
    )
    print(
        f"ovs-ofctl --bundle add-flows: {', '.join(f'{t:.2f}' for t in ofctl_times)} s "
        f"(median {ofctl_s:.2f}); {loaded} flows loaded"
    )
    print(
        f"first apply (--drain {ns.drain:g}): {first['wall']:.2f} s = {marks(first)} "
        f"[s between progress events; 'plan' = CLI start + compile + upload + controller plan]; "
        f"pushed {pushed(first)}; tables equal to the ofctl load: {same_as_ofctl}"
    )
    sw2 = plan2.get("switches", {}).get(SWITCH, {})
    for kind, runs, what in (
        ("match edit", match, "a `via pass` policy's port: the incremental compile splices it"),
        ("box policy", box, f"{pname}: `{pline.split(' match ', 1)[1]}`, compiled in full"),
    ):
        print(
            f"one-policy change, {kind} ({what}), {len(runs)} runs (the edit, then back): "
            f"wall {secs(runs, 'wall')} s; client CPU "
            f"{secs(runs, 'cpu')} s; spliced {sum(p['spliced'] for p in runs)}/{len(runs)}; "
            f"first run {marks(runs[0])}; pushed {pushed(runs[0])} flow mods"
        )
    print(
        f"  box policy: result +{res2.get('added')} -{res2.get('removed')}; "
        f"fsc plan: +{sw2.get('added')} -{sw2.get('removed')}; flows on the switch after: {after2}"
    )
    print(
        f"  minimal change (same generation, rule lines that differ): +{minimal[0]} -{minimal[1]}; the controller's "
        f"plan for it (same generation, not what apply does): install {same_gen['install']} / "
        f"flip {same_gen['flip']} / cleanup {same_gen['cleanup']}, +{same_gen['added']} -{same_gen['removed']}, "
        f"{same_gen['replaced']} rules replaced in place, instances moved: {same_gen['moved']}"
    )
    noop_res = noop.get("result", {})
    print(
        f"no-change apply: {secs(noops, 'wall')} s "
        f"({'nothing to change' if noop_res.get('changed') is False else noop_res})"
    )
    if costs:
        print(f"controller steps for {rules} rules, in-process: " + "; ".join(f"{k} {v:.2f} s" for k, v in costs))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f}")
    print()
    rows = [
        ("no-change apply (whole CLI, median of 3)", "<= 0.5 s", noop["wall"], noop["wall"] <= 0.5),
        ("one-policy change, match edit (median)", "<= 1 s", med(match), med(match) <= 1.0),
        ("  its client CPU (user + system, median)", "", med(match, lambda p: p["cpu"]), None),
        ("  of which controller (plan event -> result)", "", med(match, push_s), None),
        ("one-policy change, box policy (median)", "<= 1 s", med(box), med(box) <= 1.0),
        ("  its client CPU (user + system, median)", "", med(box, lambda p: p["cpu"]), None),
        ("  of which controller (plan event -> result)", "", med(box, push_s), None),
        (f"first apply push / ofctl ({ofctl_s:.2f} s)", "<= 5x", push1 / ofctl_s, push1 / ofctl_s <= 5),
        ("first apply whole CLI / ofctl", "", first["wall"] / ofctl_s, None),
        ("switch tables equal to the ofctl load", "yes", float(same_as_ofctl), same_as_ofctl),
    ]
    print(f"{'measure':<48} {'target':>8} {'result':>8}  met")
    for name, target, value, met in rows:
        print(f"{name:<48} {target:>8} {value:>8.2f}  {'' if met is None else ('yes' if met else 'NO')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
