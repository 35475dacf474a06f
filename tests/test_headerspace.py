"""Header spaces checked against brute-force point sets on a layout small enough to enumerate."""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.headerspace import cubes as hs_cubes
from compiler.headerspace.cubes import cube_sub
from compiler.headerspace.space import (
    DEFAULT_LAYOUT,
    Cube,
    Field,
    HeaderSpace,
    Layout,
    SpaceIndex,
    well_formed,
)

SMALL = Layout([Field("a", 3), Field("b", 3), Field("c", 4)])
WIDTH = SMALL.width
POINTS = range(1 << WIDTH)
ALL = frozenset(POINTS)
HS = HeaderSpace
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def index_mode(mode: str) -> Iterator[None]:
    """'scan': never build tries; 'trie': always, with 3-bit chunks so a 10-bit layout has 4 levels."""
    names = ("INDEX_MIN", "QUERY_MIN", "TRIE_MASKS", "CHUNK")
    saved = [getattr(hs_cubes, n) for n in names]
    for n, v in zip(names, (10**9, 10**9, 10**9, 32) if mode == "scan" else (0, 0, 0, 3)):
        setattr(hs_cubes, n, v)
    try:
        yield
    finally:
        for n, v in zip(names, saved):
            setattr(hs_cubes, n, v)


MODES = pytest.mark.parametrize("mode", ["scan", "trie"])


@functools.cache
def _pts(value: int, mask: int) -> frozenset[int]:
    return frozenset(x for x in POINTS if not (x ^ value) & mask)


def cube_pts(c: Cube) -> frozenset[int]:
    return _pts(c.value, c.mask)


def pts(hs: HeaderSpace) -> frozenset[int]:
    return frozenset().union(*map(cube_pts, hs.cubes))


def field_of(x: int, name: str) -> int:
    return SMALL.unpack(x)[name]


# ---------------------------------------------------------------- strategies

cubes = st.tuples(st.integers(0, (1 << WIDTH) - 1), st.integers(0, (1 << WIDTH) - 1)).map(
    lambda vm: Cube(vm[0] & vm[1], vm[1])
)
names = st.sampled_from(SMALL.names)


@st.composite
def field_spaces(draw: st.DrawFn) -> HeaderSpace:
    name = draw(names)
    w = SMALL.field(name).width
    kind = draw(st.sampled_from(["eq", "prefix", "masked", "range"]))
    v = draw(st.integers(0, (1 << w) - 1))
    if kind == "eq":
        return HS.field_eq(name, v, SMALL)
    if kind == "prefix":
        return HS.field_prefix(name, v, draw(st.integers(0, w)), SMALL)
    if kind == "masked":
        return HS.field_masked(name, v, draw(st.integers(0, (1 << w) - 1)), SMALL)
    return HS.field_range(name, v, draw(st.integers(0, (1 << w) - 1)), SMALL)


base_spaces = st.one_of(
    st.lists(cubes, max_size=6).map(lambda cs: HS(SMALL, tuple(cs))),
    field_spaces(),
)


def _combine(children: st.SearchStrategy[HeaderSpace]) -> st.SearchStrategy[HeaderSpace]:
    binary = st.tuples(st.sampled_from(["&", "|", "-"]), children, children).map(
        lambda t: t[1] & t[2] if t[0] == "&" else t[1] | t[2] if t[0] == "|" else t[1] - t[2]
    )
    return st.one_of(binary, children.map(lambda s: ~s))


spaces = st.recursive(base_spaces, _combine, max_leaves=6)


# ---------------------------------------------------------------- kernels and normal form


@SETTINGS
@given(cubes, cubes)
def test_cube_sub_is_exact_disjoint_and_small(a: Cube, b: Cube) -> None:
    pieces = [Cube(v, m) for v, m in cube_sub((a.value, a.mask), (b.value, b.mask))]
    sets = [cube_pts(p) for p in pieces]
    assert frozenset().union(*sets) == cube_pts(a) - cube_pts(b)
    assert sum(map(len, sets)) == len(frozenset().union(*sets))  # pairwise disjoint
    assert len(pieces) <= (b.mask & ~a.mask).bit_count() or pieces == [a]


def assert_normal(hs: HeaderSpace) -> None:
    cs = hs.cubes
    assert list(cs) == sorted(cs, key=lambda c: (c.mask, c.value))
    for c, d in itertools.permutations(cs, 2):
        assert not cube_pts(c) <= cube_pts(d), "subsumed cube kept"
        x = c.value ^ d.value
        assert not (c.mask == d.mask and x and not x & (x - 1)), "mergeable siblings kept"


@MODES
@SETTINGS
@given(st.lists(cubes, max_size=10), st.randoms(use_true_random=False))
def test_normal_form_and_order_independence(mode: str, cs: list[Cube], rnd: random.Random) -> None:
    with index_mode(mode):
        hs = HS(SMALL, tuple(cs))
        assert pts(hs) == frozenset().union(*(cube_pts(c) for c in cs))
        assert_normal(hs)
        shuffled = cs[:]
        rnd.shuffle(shuffled)
        assert HS(SMALL, tuple(shuffled + cs[:2])).cubes == hs.cubes


# ---------------------------------------------------------------- set algebra


@MODES
@SETTINGS
@given(spaces, spaces)
def test_binary_ops_match_point_sets(mode: str, a: HeaderSpace, b: HeaderSpace) -> None:
    with index_mode(mode):
        pa, pb = pts(a), pts(b)
        for op, expect in ((a & b, pa & pb), (a | b, pa | pb), (a - b, pa - pb), (b - a, pb - pa)):
            assert pts(op) == expect
            assert_normal(op)
        assert a.is_subset(b) == (pa <= pb)
        assert b.is_subset(a) == (pb <= pa)
        assert a.intersects(b) == bool(pa & pb)
        assert a.equivalent(b) == (pa == pb)


@MODES
@SETTINGS
@given(spaces)
def test_invert_empty_and_identities(mode: str, a: HeaderSpace) -> None:
    with index_mode(mode):
        pa = pts(a)
        inv = ~a
        assert pts(inv) == ALL - pa
        assert a.is_empty() == (not pa)
        assert (a | inv).equivalent(HS.all(SMALL))
        assert (a & inv).is_empty()
        assert pts(~inv) == pa
        assert a.is_subset(HS.all(SMALL)) and HS.empty(SMALL).is_subset(a)
        assert not a.intersects(HS.empty(SMALL))


@MODES
@SETTINGS
@given(spaces)
def test_sample_and_contains(mode: str, a: HeaderSpace) -> None:
    with index_mode(mode):
        pa = pts(a)
        s = a.sample()
        if not pa:
            assert s is None
        else:
            assert s is not None and a.contains(s)
            assert SMALL.pack(s) == min(pa)  # smallest point: free bits 0 where possible
        for x in POINTS:
            assert a.contains(SMALL.unpack(x)) == (x in pa)


@MODES
@SETTINGS
@given(spaces)
def test_disjoint_cubes_and_simplify(mode: str, a: HeaderSpace) -> None:
    with index_mode(mode):
        pa = pts(a)
        parts = [cube_pts(c) for c in a.disjoint_cubes()]
        assert frozenset().union(*parts) == pa
        assert sum(map(len, parts)) == len(pa)
        simple = a.simplify()
        assert pts(simple) == pa
        assert len(simple.cubes) <= len(a.cubes)


def test_contains_treats_missing_fields_as_zero_and_rejects_bad_values() -> None:
    hs = HS.field_eq("b", 5, SMALL)
    assert hs.contains({"b": 5})
    assert not hs.contains({"b": 4})
    with pytest.raises(ValueError):
        hs.contains({"b": 8})
    with pytest.raises(KeyError):
        hs.contains({"z": 1})


# ---------------------------------------------------------------- field constructors


@functools.cache
def min_block_covers(w: int) -> tuple[int, ...]:
    """Brute force: fewest aligned power-of-two blocks whose union is exactly each point set (BFS)."""
    n = 1 << w
    sizes = [1 << k for k in range(w + 1)]
    blocks = [((1 << size) - 1) << start for size in sizes for start in range(0, n, size)]
    dist = [-1] * (1 << n)
    dist[0] = 0
    frontier = [0]
    while frontier:
        nxt = []
        for s in frontier:
            for b in blocks:
                t = s | b
                if dist[t] < 0:
                    dist[t] = dist[s] + 1
                    nxt.append(t)
        frontier = nxt
    return tuple(dist)


@pytest.mark.parametrize("name", ["a", "c"])
def test_field_range_is_exact_and_minimal_for_every_range(name: str) -> None:
    w = SMALL.field(name).width
    best = min_block_covers(w)
    for lo in range(1 << w):
        for hi in range(1 << w):
            hs = HS.field_range(name, lo, hi, SMALL)
            assert pts(hs) == frozenset(x for x in POINTS if lo <= field_of(x, name) <= hi)
            if lo <= hi:
                assert len(hs.cubes) == best[((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)]
            else:
                assert hs.is_empty()


def test_field_range_on_wide_field_is_prefix_cover() -> None:
    hs = HS.field_range("tp_dst", 1024, 65535)  # [1024, 65535] = 6 blocks: /6 .. /1
    assert len(hs.cubes) == 6
    assert hs.contains({"tp_dst": 1024}) and hs.contains({"tp_dst": 65535})
    assert not hs.contains({"tp_dst": 1023})
    assert HS.field_range("tp_dst", 0, 65535).equivalent(HS.all())


@SETTINGS
@given(names, st.integers(0, 15), st.integers(0, 15), st.integers(0, 4))
def test_field_eq_prefix_masked(name: str, v: int, mask: int, plen: int) -> None:
    w = SMALL.field(name).width
    v, mask, plen = v % (1 << w), mask % (1 << w), min(plen, w)
    assert pts(HS.field_eq(name, v, SMALL)) == {x for x in POINTS if field_of(x, name) == v}
    masked = {x for x in POINTS if not (field_of(x, name) ^ v) & mask}
    assert pts(HS.field_masked(name, v, mask, SMALL)) == masked
    shift = w - plen
    assert pts(HS.field_prefix(name, v, plen, SMALL)) == {x for x in POINTS if field_of(x, name) >> shift == v >> shift}


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        HS.field_eq("a", 8, SMALL)
    with pytest.raises(ValueError):
        HS.field_prefix("a", 0, 4, SMALL)
    with pytest.raises(ValueError):
        Cube(1, 0)
    with pytest.raises(ValueError):
        HS(SMALL, (Cube(0, 1 << WIDTH),))
    with pytest.raises(ValueError):
        HS.all(SMALL) & HS.all()


# ---------------------------------------------------------------- layout, determinism, index


def test_layout_offsets_and_pack_roundtrip() -> None:
    assert SMALL.width == 10
    assert [SMALL.offset(n) for n in SMALL.names] == [7, 4, 0]
    assert DEFAULT_LAYOUT.width == 507 and DEFAULT_LAYOUT.offset("tp_dst") == 0
    assert DEFAULT_LAYOUT.offset("in_edge") == 507 - 16
    assert SMALL.full_mask == 0x3FF and SMALL.field_mask("b") == 0b0001110000
    p = {"a": 5, "b": 0, "c": 9}
    assert SMALL.unpack(SMALL.pack(p)) == p
    c = HS.field_eq("b", 6, SMALL).cubes[0]
    assert c.field(SMALL, "b") == (6, 7) and c.field(SMALL, "a") == (0, 0)
    assert c.cared_fields(SMALL) == {"b": (6, 7)}
    with pytest.raises(ValueError):
        Layout([Field("x", 1), Field("x", 2)])


def _ops(seed: int) -> list[tuple[Cube, ...]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(30):
        cs = [Cube(v & m, m) for v, m in ((rnd.getrandbits(WIDTH), rnd.getrandbits(WIDTH)) for _ in range(6))]
        a = HS(SMALL, tuple(cs[:3]))
        b = HS(SMALL, tuple(cs[3:]))
        for r in (a & b, a | b, a - b, ~a, a.simplify()):
            out.append(r.cubes)
        out.append(a.disjoint_cubes())
    return out


def test_results_are_deterministic() -> None:
    assert _ops(7) == _ops(7)
    w1, w2 = well_formed(3), well_formed(3)
    assert w1.cubes == w2.cubes and w1 == w2 and hash(w1) == hash(w2)
    assert w1.simplify().cubes == w2.simplify().cubes
    v4 = HS.field_eq("eth_type", 0x0800)
    assert (~(w1 & v4)).cubes == (~(w2 & v4)).cubes


@MODES
@SETTINGS
@given(st.lists(spaces, max_size=6), spaces)
def test_space_index_matches_union(mode: str, added: list[HeaderSpace], q: HeaderSpace) -> None:
    with index_mode(mode):
        idx = SpaceIndex(SMALL)
        union: frozenset[int] = frozenset()
        for s in added:
            idx.add(s)
            union |= pts(s)
        pq = pts(q)
        assert idx.covers(q) == (pq <= union)
        assert idx.intersects(q) == bool(pq & union)
        assert pts(idx.overlap(q)) == pq & union
        assert pts(idx.space()) == union


def test_scale_shadowing_agrees_with_is_subset() -> None:
    """Many overlapping policies on the real layout: the index and plain HeaderSpace agree."""
    rnd = random.Random(3)
    wf = well_formed(4).simplify()
    pols = []
    for _ in range(400):
        m = HS.field_eq("in_edge", rnd.randrange(4)) & HS.field_eq("eth_type", 0x0800)
        if rnd.random() < 0.7:
            m &= HS.field_prefix("ipv4_dst", rnd.getrandbits(32), rnd.choice([8, 16, 24]))
        if rnd.random() < 0.6:
            lo = rnd.randrange(65536)
            hi = min(65535, lo + rnd.randrange(3000))
            m &= HS.field_eq("ip_proto", 6) & HS.field_range("tp_dst", lo, hi)
        pols.append(m & wf)
    idx, union = SpaceIndex(), HS.empty()
    for p in pols:
        assert idx.covers(p) == p.is_subset(union)
        assert idx.intersects(p) == p.intersects(union)
        idx.add(p)
        union = union | p
    assert idx.space().equivalent(union)


# ---------------------------------------------------------------- well-formed packets

WF = well_formed(3)
MAC_A, MAC_B = 0x0200_0000_0001, 0x0200_0000_0002


def pkt(**fields: int) -> dict[str, int]:
    return {"eth_src": MAC_A, "eth_dst": MAC_B, **fields}


@pytest.mark.parametrize(
    "point, ok",
    [
        (pkt(in_edge=0, eth_type=0x0800, ip_proto=6, ipv4_src=10, ipv4_dst=11, tp_src=1234, tp_dst=80), True),
        (pkt(in_edge=2, vlan_vid=0x1000 | 42, eth_type=0x0800, ip_dscp=46, ip_proto=17, tp_dst=53), True),
        (pkt(in_edge=1, eth_type=0x0800, ip_proto=1, ipv4_src=1, ipv4_dst=2), True),  # ICMP, no ports
        (pkt(in_edge=1, eth_type=0x0800, ip_proto=1, tp_dst=80), False),  # ICMP with a port
        (pkt(in_edge=1, eth_type=0x0800, ip_proto=6, ipv6_src=1), False),  # IPv4 with an IPv6 address
        (pkt(in_edge=0, eth_type=0x86DD, ip_proto=6, ipv6_src=1 << 120, ipv6_dst=5, tp_dst=443), True),
        (pkt(in_edge=0, eth_type=0x86DD, ip_proto=58, ipv6_src=1), True),  # ICMPv6
        (pkt(in_edge=0, eth_type=0x86DD, ip_proto=58, tp_src=1), False),
        (pkt(in_edge=0, eth_type=0x86DD, ipv4_dst=1), False),
        (pkt(in_edge=0, eth_type=0x0806), True),  # ARP
        (pkt(in_edge=0, eth_type=0x0806, ip_proto=6), False),
        (pkt(in_edge=0, eth_type=0x0806, ip_dscp=1), False),
        (pkt(in_edge=0, eth_type=0x0806, tp_dst=80), False),
        (pkt(in_edge=0, eth_type=0x0806, ipv4_src=1), False),
        (pkt(in_edge=3, eth_type=0x0806), False),  # only edges 0..2
        (pkt(in_edge=0, vlan_vid=5, eth_type=0x0806), False),  # vid without the present bit
        (pkt(in_edge=0, vlan_vid=0x1FFF, eth_type=0x0806), True),
        (pkt(in_edge=0, eth_type=0x88CC), True),  # LLDP
    ],
)
def test_well_formed_points(point: dict[str, int], ok: bool) -> None:
    assert WF.contains(point) == ok


def test_well_formed_spaces() -> None:
    arp_tcp = HS.field_eq("eth_type", 0x0806) & HS.field_eq("ip_proto", 6)
    assert not (arp_tcp & WF).intersects(WF) and (arp_tcp & WF).is_empty()
    tcp80 = HS.field_eq("eth_type", 0x0800) & HS.field_eq("ip_proto", 6) & HS.field_eq("tp_dst", 80)
    icmp_port = HS.field_eq("eth_type", 0x0800) & HS.field_eq("ip_proto", 1) & HS.field_eq("tp_dst", 80)
    assert (tcp80 & WF).sample() is not None and WF.contains((tcp80 & WF).sample() or {})
    assert (icmp_port & WF).is_empty()
    # Shadowing modulo well-formedness: "tcp or udp to port 80" covers "port 80" among real packets.
    port80 = HS.field_eq("tp_dst", 80)
    tcp_udp_80 = (HS.field_eq("ip_proto", 6) | HS.field_eq("ip_proto", 17)) & port80
    assert not port80.is_subset(tcp_udp_80)
    assert (port80 & WF).is_subset(tcp_udp_80)
    assert well_formed(0).is_empty()
    # The spec, spelled out literally with complements, denotes the same set.
    eq = HS.field_eq
    ported = eq("ip_proto", 6) | eq("ip_proto", 17)
    l4 = ported | (~ported & eq("tp_src", 0) & eq("tp_dst", 0))
    v4, v6 = eq("eth_type", 0x0800), eq("eth_type", 0x86DD)
    l3 = ("ip_dscp", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
    other = ~(v4 | v6)
    for name in l3:
        other &= eq(name, 0)
    spec = (
        HS.field_range("in_edge", 0, 2)
        & (eq("vlan_vid", 0) | HS.field_masked("vlan_vid", 0x1000, 0x1000))
        & (
            (v4 & eq("ipv6_src", 0) & eq("ipv6_dst", 0) & l4)
            | (v6 & eq("ipv4_src", 0) & eq("ipv4_dst", 0) & l4)
            | other
        )
    )
    assert spec.equivalent(WF)
    assert len(WF.cubes) <= 28
    assert well_formed(1).is_subset(WF) and not WF.is_subset(well_formed(2))
    assert WF.simplify().equivalent(WF)
    small_wf = well_formed(5, Layout([Field("in_edge", 4), Field("eth_type", 16), Field("tp_dst", 16)]))
    assert small_wf.contains({"in_edge": 4, "eth_type": 0x0800, "tp_dst": 80})
    assert not small_wf.contains({"in_edge": 4, "eth_type": 0x0806, "tp_dst": 80})
