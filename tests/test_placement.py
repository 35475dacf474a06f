"""Placement: constraints, objective, stability, diagnostics, JSON, and the
heuristic measured against the exact MILP on seeded random sites."""

from __future__ import annotations

import importlib.util
import json
import random
import statistics
import time

import pytest

from compiler import ir
from compiler.headerspace.space import HeaderSpace
from compiler.placement.affinity import affinity
from compiler.placement.model import Problem
from compiler.placement.place import Placement, place
from fslang.source import Span

GiB = 1 << 30
ALL = HeaderSpace.all()
KINDS = ("click", "process", "vm")
has_highs = importlib.util.find_spec("highspy") is not None
needs_highs = pytest.mark.skipif(not has_highs, reason="highspy not installed")


def H(name: str, cores: int = 8, mem: int = 16, runs: tuple[str, ...] = KINDS, spare: bool = False) -> ir.Host:
    return ir.Host(name, (), cores, mem * GiB, frozenset(runs), spare)


def M(
    name: str, kind: str = "click", cores: int = 1, mem: int = 1, replicas: int = 1, span: Span | None = None
) -> ir.Module:
    m = ir.Module(name, "monitor", kind, cores, mem * GiB, replicas, (), ("out",))
    return m if span is None else ir.Module(name, "monitor", kind, cores, mem * GiB, replicas, (), ("out",), span=span)


def chain(k: int, *stages: str | ir.Pipeline, symmetric: bool = False) -> ir.Policy:
    pipes = tuple(ir.Use(s) if isinstance(s, str) else s for s in stages)
    return ir.Policy(f"p{k}", k, (), ALL, ir.Serial(pipes), symmetric)


def site(hosts, modules, policies=(), pins=(), avoids=(), mode: str = "spread") -> ir.Site:
    return ir.Site("t", (), (), tuple(hosts), (), (), tuple(modules), tuple(policies), tuple(pins), tuple(avoids), mode)


def check_valid(s: ir.Site, pl: Placement) -> None:
    """Every hard rule: one host each, kind, pins, avoids, capacity."""
    hosts = {h.name: h for h in s.hosts}
    pins: dict[str, set[str]] = {}
    for m, h in s.pins:
        pins.setdefault(m, set()).add(h)
    where = dict(pl.assignments)
    used = {h: [0, 0] for h in hosts}
    for m in s.modules:
        for inst in m.instance_names():
            h = where[inst]
            assert m.kind in hosts[h].runs, (inst, h)
            assert m.name not in pins or h in pins[m.name], (inst, h)
            assert (m.name, h) not in s.avoids, (inst, h)
            used[h][0] += m.cores
            used[h][1] += m.memory
    assert len(where) == sum(m.replicas for m in s.modules)
    for h, (c, mem) in used.items():
        assert c <= hosts[h].cores and mem <= hosts[h].memory, h


# ---- constraints -------------------------------------------------------------------
def test_kind_pin_avoid_and_capacity_are_honoured() -> None:
    hosts = [
        H("a", 4, 8, ("click",)),
        H("b", 8, 16),
        H("c", 8, 16, ("click", "vm")),
        H("d", 2, 4, ("click", "process")),
    ]
    mods = [
        M("vm1", "vm", 2, 4, 3),
        M("p", "process", 1, 1, 2),
        M("fw", cores=2),
        M("pinned", cores=1, replicas=2),
        M("dodge", cores=1),
    ]
    s = site(
        hosts,
        mods,
        [chain(0, "fw", "vm1"), chain(1, "p")],
        pins=[("pinned", "a"), ("pinned", "d")],
        avoids=[("dodge", "a"), ("dodge", "b")],
    )
    r = place(s)
    assert r.diagnostics == [] and r.placement is not None
    check_valid(s, r.placement)
    assert {r.placement.host_of(i) for i in ("pinned#1", "pinned#2")} == {"a", "d"}
    assert r.placement.host_of("dodge") in {"c", "d"}
    assert all(r.placement.host_of(f"vm1#{k}") in {"b", "c"} for k in (1, 2, 3))


def test_spare_unused_while_others_have_room() -> None:
    s = site([H("a"), H("b"), H("z", 32, 64, spare=True)], [M("x", cores=2, replicas=2), M("y", cores=3)])
    r = place(s)
    assert r.placement is not None and r.placement.instances_on("z") == ()
    assert r.score is not None and r.score.spare == 0


def test_spare_used_when_needed_and_as_little_as_possible() -> None:
    s = site([H("a", 4), H("z", 8, spare=True)], [M("big", cores=3), M("small", cores=2), M("tiny")])
    r = place(s)
    assert r.placement is not None
    check_valid(s, r.placement)
    # 6 cores do not fit in 4: the spare takes the least it can (2 cores, not 3)
    assert r.placement.instances_on("z") == ("small",)
    assert r.placement.usage()["z"].cores_used == 2


def test_replicas_on_distinct_hosts() -> None:
    s = site(
        [H(f"h{k}", 16, 32) for k in range(4)],
        [M("ids", "vm", 2, 2, 4), M("fw")],
        [chain(0, "fw", "ids", symmetric=True)],
    )
    r = place(s)
    assert r.placement is not None
    assert len({r.placement.host_of(f"ids#{k}") for k in range(1, 5)}) == 4
    # fw sits with one of them: 3 of 4 instance pairs cross, twice (symmetric)
    assert r.score is not None and r.score.crossings == 6


def test_replicas_share_only_when_hosts_run_out() -> None:
    s = site([H("a"), H("b")], [M("w", replicas=3)])
    r = place(s)
    assert r.placement is not None and r.score is not None and r.score.replica_pairs == 1


# ---- objective -----------------------------------------------------------------------
def test_affinity_pairs_follow_pipelines() -> None:
    mods = [M(n) for n in ("a", "b", "c", "d", "e")]
    mods.append(ir.Module("cl", "classify", "click", 1, GiB, 1, (), ("x", "else")))
    mods.append(ir.Module("t", "monitor", "click", 1, GiB, 1, (), ()))  # a sink
    pols = [
        chain(0, "a", "b", "c"),
        chain(1, "a", "b", symmetric=True),
        chain(2, "d", ir.Use("box", is_box=True), "e"),  # a box stops the chain
        chain(3, "b", ir.Case(((ALL, ir.Use("e")),)), "c"),  # a case does not (no else: b>>c too)
        chain(4, "a", ir.Copy(5.0, ir.Serial((ir.Use("d"), ir.Use("t")))), "c"),  # copies fork at the switch
        chain(5, ir.Use("cl", branches=(("x", ir.Serial((ir.Use("d"), ir.Drop()))), (None, ir.Pass()))), "e"),
    ]
    s = site([H("h")], mods, pols)
    assert affinity(s) == {
        ("a", "b"): 3,
        ("a", "c"): 1,
        ("b", "c"): 2,
        ("b", "e"): 1,
        ("c", "e"): 1,
        ("cl", "d"): 1,
        ("cl", "e"): 1,
        ("d", "t"): 1,
    }


def test_chain_on_one_host_when_it_fits() -> None:
    s = site(
        [H(f"h{k}", 8, 16) for k in range(3)],
        [M("a", cores=2), M("b", cores=2), M("c", cores=2), M("z", cores=2)],
        [chain(0, "a", "b", "c"), chain(1, "z")],
    )
    r = place(s)
    assert r.placement is not None and r.score is not None
    assert len({r.placement.host_of(x) for x in "abc"}) == 1 and r.score.crossings == 0
    assert r.placement.host_of("z") != r.placement.host_of("a")  # spread: the rest goes elsewhere


def test_chain_split_when_capacity_forces_it() -> None:
    s = site([H("h0", 4), H("h1", 4)], [M("a", cores=3), M("b", cores=3)], [chain(0, "a", "b")])
    r = place(s)
    assert r.placement is not None and r.score is not None and r.score.crossings == 1


def test_pack_versus_spread() -> None:
    mods = [M(f"m{k}", cores=1) for k in range(4)]
    hosts = [H(f"h{k}", 8, 16) for k in range(4)]
    spread = place(site(hosts, mods, mode="spread"))
    pack = place(site(hosts, mods, mode="pack"))
    assert spread.score is not None and pack.score is not None
    assert spread.score.hosts_used == 4 and spread.score.max_load == 1 / 8
    assert pack.score.hosts_used == 1


# ---- stability -----------------------------------------------------------------------
def _campus_like() -> ir.Site:
    hosts = [H("mh1", 12, 16), H("mh2", 12, 16, ("click", "vm")), H("mh3", 12, 16, spare=True)]
    mods = [M("fw"), M("ids", "vm", 2, 2, 4), M("pre"), M("deep", "vm", 4, 4), M("cnt"), M("bl", "process", 1, 1)]
    pols = [chain(0, "fw", "ids", symmetric=True), chain(1, "pre", "deep"), chain(2, "bl", "cnt")]
    return site(hosts, mods, pols)


@pytest.mark.parametrize("optimal", [False, pytest.param(True, marks=needs_highs)])
def test_unchanged_site_moves_nothing(optimal: bool) -> None:
    s = _campus_like()
    first = place(s, optimal=optimal)
    assert first.placement is not None
    again = place(s, previous=first.placement, optimal=optimal)
    assert again.moved == () and again.placement == first.placement


def test_adding_a_module_moves_nobody() -> None:
    s = _campus_like()
    first = place(s)
    assert first.placement is not None
    grown = site(s.hosts, s.modules + (M("new", cores=2),), s.policies + (chain(3, "fw", "new"),))
    r = place(grown, previous=first.placement)
    assert r.placement is not None and r.moved == ()
    for inst, h in first.placement.assignments:
        assert r.placement.host_of(inst) == h


def test_moves_are_reported() -> None:
    s = site([H("a"), H("b")], [M("x", cores=4), M("y", cores=4)])
    old = Placement((("x", "a"), ("y", "gone")), (("x", 1), ("y", 1)))
    r = place(s, previous=old)
    assert r.placement is not None and r.placement.host_of("x") == "a"
    assert r.moved == (("y", "gone", r.placement.host_of("y")),)
    # a host that shrank: what no longer fits moves, the rest stays
    small = site([H("a", 4), H("b")], [M("x", cores=4), M("y", cores=4)])
    both = Placement((("x", "a"), ("y", "a")), (("x", 1), ("y", 1)))
    r = place(small, previous=both)
    assert r.placement is not None and len(r.moved) == 1 and r.moved[0][1:] == ("a", "b")


def test_replica_count_change_keeps_the_first_instance() -> None:
    s1 = site([H("a"), H("b"), H("c")], [M("w", cores=2)])
    first = place(s1)
    assert first.placement is not None
    s2 = site(s1.hosts, (M("w", cores=2, replicas=2),))
    r = place(s2, previous=first.placement)
    assert r.placement is not None and r.placement.host_of("w#1") == first.placement.host_of("w")


# ---- diagnostics ---------------------------------------------------------------------
def test_cores_short_names_resource_where_and_how_much() -> None:
    span = Span(100, 120)
    s = site(
        [H("mh1", 3, 16, ("vm",)), H("mh2", 2, 16, ("vm",)), H("mh3", 8, 16, ("click",))],
        [M("ids", "vm", 2, 2, 3, span=span)],
    )
    r = place(s)
    assert r.placement is None
    [d] = r.diagnostics
    assert d.code == "E0701" and d.span == span
    assert "`ids#3`" in d.message and "hosts that run `vm`" in d.message
    assert "1 core free at most (mh1: 1 free, mh2: 0 free); 1 core short" in d.message
    assert "needs 6 cores, these hosts have 5: 1 core short in all" in d.message
    assert d.hint and "add cores to a host" in d.hint and "runs vm" in d.hint


def test_memory_short() -> None:
    s = site([H("a", 16, 4), H("b", 16, 3)], [M("big", cores=1, mem=3, replicas=2), M("x", cores=1, mem=2)])
    r = place(s)
    assert r.placement is None
    [d] = r.diagnostics
    assert d.code == "E0701" and "memory" in d.message and "short" in d.message
    assert "needs 8GiB memory, these hosts have 7GiB: 1GiB short in all" in d.message
    assert d.hint and "add memory" in d.hint


def test_no_host_at_all() -> None:
    span = Span(5, 9)
    s = site(
        [H("a", 8, 1, ("process",)), H("b", 8, 16, ("click",))],
        [M("m", "process", 1, 2, span=span), M("v", "vm"), M("ok")],
        pins=[("m", "a")],
    )
    r = place(s)
    assert r.placement is None
    codes = {d.message.split("`")[1]: d for d in r.diagnostics}
    assert set(codes) == {"m", "v"} and all(d.code == "E0702" for d in r.diagnostics)
    assert codes["m"].span == span and "pinned to a" in codes["m"].message
    assert "`a` has 1GiB memory in all" in codes["m"].message
    assert "`b` does not run `vm`" in codes["v"].message


# ---- determinism and JSON --------------------------------------------------------------
def test_deterministic_and_independent_of_declaration_order() -> None:
    s = _campus_like()
    a, b = place(s), place(s)
    assert a.placement == b.placement and a.placement is not None and b.placement is not None
    assert a.placement.to_json() == b.placement.to_json()
    shuffled = site(tuple(reversed(s.hosts)), tuple(reversed(s.modules)), s.policies)
    assert place(shuffled).placement == a.placement


def test_json_round_trip_and_usage() -> None:
    s = _campus_like()
    pl = place(s).placement
    assert pl is not None
    text = pl.to_json()
    assert Placement.from_json(text) == pl
    obj = json.loads(text)
    assert set(obj) == {"instances", "hosts"}
    assert obj["instances"]["ids#1"]["module"] == "ids" and obj["instances"]["ids#1"]["cores"] == 2
    assert all(v["weight"] == 1 for v in obj["instances"].values())
    for h, u in pl.usage().items():
        hj = obj["hosts"][h]
        assert (hj["cores"]["used"], hj["cores"]["free"]) == (u.cores_used, u.cores_free)
        assert hj["cores"]["used"] + hj["cores"]["free"] == hj["cores"]["total"]
        assert sorted(hj["instances"]) == sorted(pl.instances_on(h))
    assert obj["hosts"]["mh3"]["spare"] is True
    with pytest.raises(ValueError):
        Placement.from_json('{"instances": 3}')


# ---- scale and the exact solver ---------------------------------------------------------
def random_site(rng: random.Random, n_hosts: int, n_modules: int, replicas: tuple[int, ...]) -> ir.Site:
    hosts = [
        H(
            f"h{k:03d}",
            rng.choice([4, 8, 12, 16]),
            rng.choice([8, 16, 32, 64]),
            KINDS if rng.random() < 0.6 else tuple(sorted(rng.sample(KINDS, 2))),
            spare=(k == n_hosts - 1 and rng.random() < 0.4),
        )
        for k in range(n_hosts)
    ]
    mods = [
        M(f"m{k:03d}", rng.choice(KINDS), rng.choice([1, 1, 2, 3, 4]), rng.choice([1, 2, 4]), rng.choice(replicas))
        for k in range(n_modules)
    ]
    names = [m.name for m in mods]
    pols = [
        chain(k, *rng.sample(names, rng.randint(1, min(4, len(names)))), symmetric=rng.random() < 0.3)
        for k in range(max(2, n_modules * 2 // 3))
    ]
    pins = []
    m = rng.choice(mods)
    ok = [h.name for h in hosts if m.kind in h.runs]
    if ok and rng.random() < 0.3:
        pins.append((m.name, rng.choice(ok)))
    avoids = [(rng.choice(names), rng.choice(hosts).name)] if rng.random() < 0.3 else []
    return site(hosts, mods, pols, pins, avoids, rng.choice(["spread", "pack"]))


def test_thousand_instances_on_a_hundred_hosts() -> None:
    rng = random.Random(7)
    hosts = [
        H(f"h{k:03d}", rng.choice([16, 24, 32, 48]), rng.choice([32, 64, 128]), spare=k % 25 == 0) for k in range(100)
    ]
    mods = []
    while sum(m.replicas for m in mods) < 1000:
        r = min(rng.choice([1, 1, 1, 2, 4, 8]), 1000 - sum(m.replicas for m in mods))
        mods.append(
            M(
                f"m{len(mods):03d}",
                rng.choice(["vm", "click", "click"]),
                rng.choice([1, 1, 2, 4]),
                rng.choice([1, 2, 4]),
                r,
            )
        )
    pols = [chain(k, *rng.sample([m.name for m in mods], rng.randint(1, 4))) for k in range(len(mods) // 2)]
    for mode in ("spread", "pack"):
        s = site(hosts, mods, pols, mode=mode)
        t = time.process_time()  # CPU time: other jobs on the machine do not count
        r = place(s)
        took = time.process_time() - t
        print(f"\n1000 instances / 100 hosts, {mode}: {took:.2f} s, {r.score}")
        assert r.placement is not None
        check_valid(s, r.placement)
        assert r.score is not None and r.score.spare == 0 and r.score.replica_pairs == 0
        assert took < 2.0  # target < 1 s (measured ~0.3 s); slack for slow machines


@needs_highs
def test_heuristic_against_exact_on_random_small_sites() -> None:
    """gap = (cost(heuristic) - cost(exact)) / cost(exact), cost as the MILP's objective."""
    gaps, same, feasible = [], 0, 0
    for seed in range(20):
        s = random_site(
            random.Random(seed),
            random.Random(seed).randint(3, 6),
            random.Random(seed + 99).randint(3, 8),
            (1, 1, 1, 2, 3),
        )
        p = Problem(s)
        h, x = place(s), place(s, optimal=True)
        assert x.proven_optimal or x.placement is None, seed
        if x.placement is None:
            assert h.placement is None, seed  # the solver proves infeasibility: the heuristic cannot do better
            assert {d.code for d in h.diagnostics} <= {"E0701", "E0702"}
            continue
        feasible += 1
        assert h.placement is not None, f"seed {seed}: heuristic failed where the exact solver did not"
        check_valid(s, h.placement)
        check_valid(s, x.placement)
        assert h.score is not None and x.score is not None
        assert x.score.key() <= h.score.key(), seed  # else the MILP is not the objective
        ch, cx = p.cost(h.score), p.cost(x.score)
        gaps.append((ch - cx) / max(cx, 1.0))
        same += h.score.key() == x.score.key()
    print(
        f"\nheuristic vs exact on {feasible} feasible of 20 sites: {same} optimal, "
        f"median gap {statistics.median(gaps):.3f}, worst {max(gaps):.3f}"
    )
    # observed (seeds 0-149): 120 of 123 feasible sites optimal, worst gap 0.047
    assert feasible >= 12 and same >= feasible * 4 // 5
    assert max(gaps) <= 0.05
