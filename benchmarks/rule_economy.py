"""Rule economy: flow entries per switch against a lower bound (issue 11, item 2).

    python -m benchmarks.rule_economy [--sizes 100,1000] [--only NAME]

For every example (compiled three times: with its switches as declared,
every switch forced to standard OpenFlow 1.3, every switch forced to Open
vSwitch) and for generated sites (``benchmarks.gen_site``: shared and own
chains, standard and ``ovs`` switches), counts the compiled entries per
switch and compares them with a bound; the accounting is in
benchmarks/README.md ("Rule economy").  Prints one row per switch and a
total per site and profile with the ratio actual / bound (target <= 1.25),
and the lines of the rendered ``.ofctl`` that repeat another line.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler import ir
from compiler.lowering import tables as T
from fslang import ast as A

Cost = dict[tuple[Any, Any], int]  # (eth class, proto class) -> entries; "*" = any
ANY: tuple[Any, Any] = ("*", "*")
L4 = ((4, 6), (6, 6), (4, 17), (6, 17))
PROFILES = ("declared", "standard", "ovs")


def prefix_cover(lo: int, hi: int) -> int:
    """Entries of the minimal prefix cover of lo..hi (aligned power-of-two blocks)."""
    n = 0
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while lo + size - 1 > hi:
            size >>= 1
        lo += size
        n += 1
    return n


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _meet(a: Any, b: Any) -> Any:
    return b if a == "*" else a if b == "*" or a == b else None


def _add(a: Cost, b: Cost) -> Cost:
    out = defaultdict(int, a)
    for k, n in b.items():
        out[k] += n
    return dict(out)


@dataclass
class Priced:
    """A match's positive entries by protocol class, and the sets it excludes."""

    cost: Cost
    excluded: list[Any] = field(default_factory=list)


class Bound:
    """Match ASTs -> entry costs (benchmarks/README.md, "Rule economy")."""

    def __init__(self, program: A.Program, source: str, masks_ports: bool) -> None:
        self.classes = {s.name.text: s.match for s in program.statements if isinstance(s, A.ClassStmt)}
        self.sets = {s.name.text: s.value for s in program.statements if isinstance(s, A.SetStmt)}
        self.source = source
        self.masks_ports = masks_ports

    def values(self, v: Any) -> list[Any]:
        if isinstance(v, A.SetVal):
            return [x for item in v.items for x in self.values(item)]
        if isinstance(v, (A.RefVal, A.MRef)):
            return self.values(self.sets.get(v.name.text, A.SetVal((), v.span)))
        return [v]

    def port_ranges(self, v: Any) -> list[tuple[int, int]]:
        out = []
        for x in self.values(v):
            if isinstance(x, A.IntVal):
                out.append((x.value, x.value))
            elif isinstance(x, A.RangeVal):
                out.append((x.lo, x.hi))
        return _merge(out)

    def port_cost(self, v: Any) -> int:
        """A port set: its minimal prefix cover where ports can be masked, one entry per port where not."""
        if self.masks_ports:
            return sum(prefix_cover(lo, hi) for lo, hi in self.port_ranges(v))
        return sum(hi - lo + 1 for lo, hi in self.port_ranges(v))

    def key(self, e: Any) -> str:
        """An excluded set, by its text (two policies excluding the same text share its cover)."""
        return self.source[e.span.start : e.span.end] if getattr(e, "span", None) is not None else repr(e)

    def price(self, e: Any) -> Priced:
        if e is None:
            return Priced({ANY: 1})
        if isinstance(e, A.MAnd):
            acc = Priced({ANY: 1})
            for item in e.items:
                p = self.price(item)
                nxt: Cost = defaultdict(int)
                for (e1, p1), n1 in acc.cost.items():
                    for (e2, p2), n2 in p.cost.items():
                        eth, proto = _meet(e1, e2), _meet(p1, p2)
                        if eth is not None and proto is not None:
                            nxt[eth, proto] += n1 * n2
                acc = Priced(dict(nxt), acc.excluded + p.excluded)
            return acc
        if isinstance(e, A.MOr):
            out = Priced({})
            for item in e.items:
                p = self.price(item)
                out = Priced(_add(out.cost, p.cost), out.excluded + p.excluded)
            return out
        if isinstance(e, A.MNot):  # one entry falling through X, plus X's own cover
            return Priced({ANY: 1}, [e.expr])
        if isinstance(e, A.MRef):
            return self.price(self.classes.get(e.name.text))
        if isinstance(e, A.MProto):
            return Priced(
                {
                    "ip": {(4, "*"): 1},
                    "ip6": {(6, "*"): 1},
                    "arp": {("arp", "*"): 1},
                    "tcp": {(4, 6): 1, (6, 6): 1},
                    "udp": {(4, 17): 1, (6, 17): 1},
                    "icmp": {(4, 1): 1},
                    "icmp6": {(6, 58): 1},
                }[e.proto]
            )
        if isinstance(e, A.MProtoNum):
            return Priced({(4, e.number): 1, (6, e.number): 1})
        dirs = 1 if getattr(e, "dir", None) else 2
        if isinstance(e, (A.MHost, A.MNet)):
            out_c: Cost = defaultdict(int)
            for v in self.values(e.value):
                net = v.addr if isinstance(v, A.AddrVal) else getattr(v, "net", None)
                out_c[4 if net is not None and net.version == 4 else 6, "*"] += dirs
            return Priced(dict(out_c))
        if isinstance(e, A.MPort):
            k = dirs * self.port_cost(e.value)
            return Priced({c: k for c in L4})
        if isinstance(e, A.MEther):
            return Priced({ANY: dirs * len(self.values(e.value))})
        if isinstance(e, A.MDscp):
            return Priced({(4, "*"): 1, (6, "*"): 1})
        return Priced({ANY: 1})  # vlan

    def total(self, e: Any, seen: set[str], side: str = "") -> int:
        """Entries of ``e``'s match; each excluded set not yet in ``seen`` adds its own cover
        (``side``: "rev" for the reply of a symmetric policy, whose excluded sets are swapped)."""
        p = self.price(e)
        n = sum(p.cost.values())
        for x in p.excluded:
            k = side + self.key(x)
            if k not in seen:
                seen.add(k)
                n += self.total(x, seen, side)
        return n


def port_check(stmt: A.PolicyStmt, bound: Bound, entries: list[Any]) -> str | None:
    """A policy whose match is a conjunction with one positive `dst port`
    primitive: its entries must not spell more distinct dst-port patterns per
    protocol than the port set needs on this switch."""
    items = stmt.match.items if isinstance(stmt.match, A.MAnd) else (stmt.match,)
    ports = [i for i in items if isinstance(i, A.MPort) and i.dir == "dst"]
    if len(ports) != 1 or any(isinstance(i, (A.MOr, A.MNot, A.MRef)) for i in items):
        return None
    need = bound.port_cost(ports[0].value)
    for fld in ("tcp_dst", "udp_dst"):
        pats = {(f.value, f.mask) for e in entries for f in e.match.fields if f.field == fld}
        if len(pats) > need:
            return f"{stmt.name.text}: {len(pats)} {fld} patterns, {need} needed"
    return None


def force_profile(site: ir.Site, mode: str) -> ir.Site:
    """The site with every switch standard OpenFlow or Open vSwitch (benchmark only)."""
    if mode == "declared":
        return site
    ovs = mode == "ovs"
    return dataclasses.replace(site, switches=tuple(dataclasses.replace(s, ovs=ovs) for s in site.switches))


@dataclass
class Row:
    site: str
    mode: str
    switch: str
    note: str = ""
    total: int = 0
    policy: int = 0
    policy_bound: int = 0
    select: int = 0
    select_bound: int = 0
    regions: int = 0
    fixed: int = 0
    ct: int = 0  # connection tracking: the CT table and SELECT's conntrack rules (in `select`), outside the bound
    repeated: int = 0
    problems: list[str] = field(default_factory=list)
    groups: int = 0  # fast-failover groups: switch state, not flow entries (not in total nor bound)

    @property
    def bound(self) -> int:
        return self.policy_bound + self.select_bound + self.fixed + self.regions


def _policy_part(e: Any) -> bool:
    """Entries that recognise policies (POLICY, NONIP, flag entries); not the tables' catch-alls."""
    if e.table_id in (T.POLICY, T.NONIP):
        return e.priority >= T.PRIO_POLICY_MIN
    return T.FLAGS_FIRST <= e.table_id <= T.FLAGS_LAST and e.priority > 0


def select_bound(combos: Any, families: int = 2) -> int:
    """A decision list's SELECT entries at the least: decided by the hash
    alone, the fewest prefix patterns that spell its bucket -> path function
    with the longest prefix winning (exact over the prefixes of each bit
    order ``bucketspell`` tries); with `by src`/`by dst` and no `case`, the
    lesser of the product of each hash's fewest rules and each combo's
    covers of its three shares multiplied (an address rule once per IP
    version of ``families`` its policies match); with a
    `case`, per run of combos under one guard the lesser of each combo's
    minimal bucket-pattern cover and the run's bucket function (its buckets
    no combo owns left to later runs), a guard counting 1; otherwise each
    satisfiable combo's minimal bucket-pattern cover."""
    from compiler.lowering import bucketspell
    from compiler.lowering.select import bucket_patterns
    from compiler.steering import flowhash

    if all(c.space is None for c, _ in combos):
        firsts: dict[Any, int] = {}
        index = tuple(firsts.setdefault(d, len(firsts)) for _, d in combos)
        return len(bucketspell.spell(bucketspell.bucket_labels(tuple(c.buckets for c, _ in combos), index)))
    alone = sum(max(1, len(bucket_patterns(c.buckets))) for c, _ in combos if c.satisfiable())
    if any(c.guarded for c, _ in combos):
        # per run of combos under one guard, the lesser of their covers and their bucket function
        total, start = 0, 0
        while start < len(combos):
            end = start + 1
            while end < len(combos) and combos[end][0].space is combos[start][0].space:
                end += 1
            run = [(c, d) for c, d in combos[start:end] if c.satisfiable()]
            covers = sum(max(1, len(bucket_patterns(c.buckets))) for c, _ in run)
            firsts = {}
            index = tuple(firsts.setdefault(d, len(firsts)) for _, d in run)
            labels = bucketspell.bucket_labels(tuple(c.buckets for c, _ in run), index)
            total += min(covers, len(bucketspell.spell(labels, True))) if len(run) > 1 else covers
            start = end
        return total
    # `by src`/`by dst` without `case`: each combo's covers of its three shares (an address one per IP
    # version), or each hash spelt alone and the product
    full = flowhash.BUCKETS
    alone = sum(
        len(bucket_patterns(c.buckets))
        * (1 if len(c.src) == len(c.dst) == full else families)
        * len(bucket_patterns(c.src))
        * len(bucket_patterns(c.dst))
        for c, _ in combos
        if c.satisfiable()
    )
    cells = bucketspell.grid(tuple(tuple(getattr(c, f) for c, _ in combos) for f in ("buckets", "src", "dst")))
    return min(alone, sum(1 if s[1] == d[1] == 0 else families for (_, s, d), _ in cells))


def _families(plan: Any) -> dict[int, int]:
    """Per ingress decision list, the IP versions its packets can have (its
    policies' matches admit); a box's return list is left out (both)."""
    from compiler.lowering.select import FAMILY

    by_sid: dict[int, list[Any]] = defaultdict(list)
    for p, _, e in plan.ingress:
        by_sid[e.id].append(p)
    boxes = {e.id for e in plan.entries if e.box is not None}
    return {
        sid: sum(1 for only in FAMILY.values() if any(not (p.match & only).is_empty() for p in ps))
        for sid, ps in by_sid.items()
        if sid not in boxes
    }


def measure(name: str, path: Path, modes: tuple[str, ...]) -> list[Row]:
    from backends.emit.openflow.ofctl import to_ofctl
    from compiler.pipeline import compile_site
    from compiler.steering.regions import exit_region
    from fslang.api import load
    from fslang.parser import parse

    front = load(path)
    if front.site is None:
        return [Row(name, "-", "-", "does not check")]
    program = parse(front.source).program
    stmts = [s for s in program.statements if isinstance(s, A.PolicyStmt)]
    rows = []
    for mode in modes:
        site = force_profile(front.site, mode)
        compiled = compile_site(site)
        if not compiled.tables:
            rows.append(Row(name, mode, "-", "does not compile: " + str(compiled.diagnostics[0].code)))
            continue
        plan = compiled.steering
        assert plan is not None
        directions: dict[str, Counter[tuple[str, str]]] = {}
        fams = _families(plan)
        for sw, tables in compiled.tables.items():
            switch = site.switch(sw)
            bound = Bound(program, front.source.text, switch.ovs)
            here = {e.name for e in site.edges if any(p[0] == sw for p in e.ports)}
            boxes = {b.name for b in site.boxes if b.out_port[0] == sw}
            seen: set[str] = set()
            pol_b = 0
            for policy in site.policies:
                stmt = stmts[policy.index]
                # where it is classified: at its edges on this switch (one entry set for all of
                # them: the ingress edge is in metadata), and once per box returning it here
                fwd = 1 if here and (not policy.sources or here & set(policy.sources)) else 0
                fwd += len(
                    {en.box for en in plan.entries if en.policy == policy.name and en.box in boxes and
                     en.direction == "forward"}
                )  # fmt: skip
                if fwd:
                    pol_b += fwd * bound.total(stmt.match, seen)
                replies_here = policy.symmetric and any(
                    exit_region(site, e, "dst").intersects(policy.match.space()) for e in site.edges if e.name in here
                )  # a reply comes in by the edge the forward traffic leaves by
                if replies_here:  # and costs what the forward direction costs
                    back = 1 + len(
                        {en.box for en in plan.entries if en.policy == policy.name and en.box in boxes and
                         en.direction == "reverse"}
                    )  # fmt: skip
                    pol_b += back * bound.total(stmt.match, seen, "rev")
            by_table = Counter(e.table_id for e in tables.entries)
            pol = [e for e in tables.entries if _policy_part(e)]
            per_policy: dict[int, list[Any]] = defaultdict(list)
            for e in pol:
                if e.table_id in (T.POLICY, T.NONIP):
                    per_policy[(e.cookie >> 16 & 0xFFFF) - 1].append(e)
            problems = [
                p
                for idx, es in per_policy.items()
                if 0 <= idx < len(stmts)
                for p in [port_check(stmts[idx], bound, es)]
                if p
            ]
            # a symmetric policy's reply must cost no more than its forward direction (compared
            # across the site below: the two may be classified on different switches)
            by_dir: Counter[tuple[str, str]] = Counter()
            prio_of = {T.PRIO_POLICY_TOP - i: (p.name, d) for i, (p, d, _) in enumerate(plan.ingress)}
            for e in pol:
                if e.table_id == T.POLICY and e.cookie & 0xFFFF == 0 and e.priority in prio_of:
                    by_dir[prio_of[e.priority]] += 1
            directions[sw] = by_dir
            classified = {
                (e.write_metadata[0] >> T.ENTRY_SHIFT & 0x7FFF) - 1
                for e in tables.entries
                if e.table_id in (T.POLICY, T.CLASSIFY) and e.write_metadata and e.write_metadata[1] & T.ENTRY_MASK
            }
            sel_b = sum(select_bound(plan.selectors[sid], fams.get(sid, 2)) for sid in classified)
            regions = sum(by_table[t] for t in (T.REGION_DST, T.REGION_SRC, T.SRC_HOME))
            total = len(tables.entries)
            ct = by_table[T.CT] + sum(
                1 for e in tables.entries if e.table_id == T.SELECT and e.priority > T.PRIO_SELECT_TOP
            )
            fixed = total - len(pol) - by_table[T.SELECT] - regions - by_table[T.CT]
            lines = Counter(to_ofctl(tables).splitlines())
            repeated = sum(n - 1 for n in lines.values())
            rows.append(
                Row(name, mode, sw, "", total, len(pol), pol_b, by_table[T.SELECT], sel_b, regions, fixed, ct,
                    repeated, problems, len(tables.groups))
            )  # fmt: skip
        _replies_costlier(site, directions, rows[-len(directions) :])
    return rows


def _replies_costlier(site: Any, directions: dict[str, Counter[tuple[str, str]]], rows: list[Row]) -> None:
    """A symmetric policy whose replies are classified with more POLICY
    entries, on the switch where they cost most, than its forward direction
    on the switch where that costs most: a problem, noted on that switch's
    row.  (Per switch the two are not comparable: the forward direction of
    a policy from a customer edge on one switch has no entries on the
    switch whose default edge its replies come in by.)"""
    for p in site.policies:
        if not p.symmetric:
            continue
        rev = max(directions, key=lambda sw: directions[sw][p.name, "reverse"])
        fwd = max(directions[sw][p.name, "forward"] for sw in directions)
        if directions[rev][p.name, "reverse"] > fwd:
            row = next(r for r in rows if r.switch == rev)
            row.problems.append(f"{p.name}: reply {directions[rev][p.name, 'reverse']} entries, forward {fwd}")


def sites(sizes: list[int], tmp: Path, only: str) -> list[tuple[str, Path, tuple[str, ...]]]:
    from benchmarks.compile_scale import SHAPE
    from benchmarks.gen_site import generate

    root = Path(__file__).resolve().parent.parent
    out = [(p.stem, p, PROFILES) for p in sorted((root / "examples").glob("*.fs"))]
    for n in sizes:
        hosts, switches = SHAPE.get(n, (max(2, n // 50), 4))
        for own in (False, True):
            for ovs in (True, False):
                name = f"gen{n}{'-own' if own else ''}{'-ovs' if ovs else '-std'}"
                path = tmp / f"{name}.fs"
                path.write_text(generate(n, hosts, switches, seed=1, ovs=ovs, own_chains=own))
                out.append((name, path, ("declared",)))
    return [s for s in out if not only or only in s[0]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--only", default="", help="only sites whose name contains this")
    ns = ap.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, modes in sites([int(s) for s in ns.sizes.split(",") if s], Path(tmp), ns.only):
            rows += measure(name, path, modes)
    print(
        f"{'site':<16} {'profile':<8} {'switch':<7} | {'entries':>7} {'bound':>7} {'ratio':>5} | {'policy':>6} "
        f"{'bound':>6} {'x':>5} | {'select':>6} {'bound':>6} {'x':>5} | {'region':>6} {'fixed':>6} {'ct':>5} | "
        f"{'rep':>3} | {'groups':>6}"
    )
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    problems: list[str] = []
    repeated = 0
    for r in rows:
        if r.note:
            print(f"{r.site:<16} {r.mode:<8} {r.switch:<7} | {r.note}")
            sums[r.site, r.mode] = [0, 0, 0, 0]
            continue
        sums[r.site, r.mode][0] += r.total
        sums[r.site, r.mode][1] += r.bound
        sums[r.site, r.mode][2] += r.policy + r.select
        sums[r.site, r.mode][3] += r.policy_bound + r.select_bound
        problems += [f"{r.site}/{r.mode}/{r.switch}: {p}" for p in r.problems]
        repeated += r.repeated
        print(
            f"{r.site:<16} {r.mode:<8} {r.switch:<7} | {r.total:>7} {r.bound:>7} {r.total / r.bound:>5.2f} | "
            f"{r.policy:>6} {r.policy_bound:>6} {r.policy / max(r.policy_bound, 1):>5.2f} | {r.select:>6} "
            f"{r.select_bound:>6} {r.select / max(r.select_bound, 1):>5.2f} | {r.regions:>6} {r.fixed:>6} {r.ct:>5} | "
            f"{r.repeated:>3} | {r.groups:>6}"
        )
    ratios = {k: v[0] / v[1] for k, v in sums.items() if v[1]}
    failed = [f"{s}/{m}" for (s, m), v in sums.items() if not v[1]]
    print("per site:", ", ".join(f"{s}/{m} {x:.2f}x" for (s, m), x in ratios.items()))
    var = {k: v[2] / v[3] for k, v in sums.items() if v[3]}
    print("per site, policy + select only:", ", ".join(f"{s}/{m} {x:.2f}x" for (s, m), x in var.items()))
    worst_var = max(var.items(), key=lambda kv: kv[1], default=(("-", "-"), 0.0))
    print(f"worst policy + select: {worst_var[0][0]}/{worst_var[0][1]} {worst_var[1]:.2f}x")
    worst = max(ratios.items(), key=lambda kv: kv[1], default=(("-", "-"), 0.0))
    met = worst[1] <= 1.25 and not failed
    print(
        f"target <= 1.25x the bound: {'met' if met else 'NOT met'} "
        f"(worst {worst[0][0]}/{worst[0][1]} {worst[1]:.2f}x; {len(ratios)} compiled, failed: {failed or 'none'})"
    )
    print(f"repeated .ofctl lines: {repeated}")
    print(f"port sets spelt with more patterns than they need, replies costing more than forward: {len(problems)}")
    for p in problems[:10]:
        print("  ", p)


if __name__ == "__main__":
    main()
