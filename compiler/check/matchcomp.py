"""Match expressions -> match sets (cubes with exclusions, exact).

``compile`` gives the :class:`~compiler.headerspace.matchset.MatchSet` that
policies and `case` arms keep (``not`` stays an exclusion, which the switch
computes with a flag); ``compile_exact`` the plain cover that module
parameters need (hosts spell a `not` as its complement).

The meaning follows pcap-filter where FSL borrows its words: `tcp` is TCP over
IPv4 or IPv6, `port` implies tcp or udp, `host` without a direction is either
address.  `host`/`net` match IP addresses only (not ARP payloads).  Names
resolve to classes (in match position) or sets (in value position).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from compiler.check.symbols import Symbols
from compiler.headerspace.cubes import DEFAULT_LAYOUT, Pair, TooManyCubes
from compiler.headerspace.matchset import MatchSet
from compiler.headerspace.space import HeaderSpace
from fslang import ast as A
from fslang.source import Span

#: the most cubes a match spelt for a host (Click classifier patterns) may take
MAX_HOST_PATTERNS = 10_000

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}


def site_universe(n_edges: int) -> HeaderSpace:
    """The packets a site can see: an existing ingress edge.  (A consistent
    VLAN field is part of every set's diagram, :meth:`MatchSet.space`, not of
    its terms, which would double every rule.)  Fields a packet lacks need no
    constraint: every primitive that touches an IP or L4 field also fixes the
    protocol, so no policy space consists of impossible packets only."""
    return HeaderSpace.field_range("in_edge", 0, max(1, n_edges) - 1)


@lru_cache(maxsize=4096)
def _eq(name: str, value: int) -> HeaderSpace:
    return HeaderSpace.field_eq(name, value)


def ipv4() -> HeaderSpace:
    return _eq("eth_type", ETH_IPV4)


def ipv6() -> HeaderSpace:
    return _eq("eth_type", ETH_IPV6)


@lru_cache(maxsize=1)
def any_ip() -> HeaderSpace:
    return ipv4() | ipv6()


@lru_cache(maxsize=256)
def proto(number: int) -> HeaderSpace:
    return any_ip() & _eq("ip_proto", number)


@lru_cache(maxsize=1)
def tcp_or_udp() -> HeaderSpace:
    return proto(6) | proto(17)


@lru_cache(maxsize=65536)
def _port_range(name: str, lo: int, hi: int) -> HeaderSpace:
    return HeaderSpace.field_range(name, lo, hi)


@lru_cache(maxsize=65536)
def _net_pairs(version: int, address: int, length: int, direction: str | None) -> tuple[Pair, ...]:
    """The cubes of a prefix (a host: its full length) in one or both
    directions, by value (a 10,000-policy site names the same hosts and
    prefixes many times; keyed by integers, no network object per host)."""
    family, eth = ("ipv4", ipv4()) if version == 4 else ("ipv6", ipv6())
    ((ev, em),) = eth._pairs()
    pairs: list[Pair] = []
    for d in ("src", "dst") if direction is None else (direction,):
        # eth & field_prefix(...), worked out: one cube each, on other fields (so their product is
        # the one cube of both, normal); the prefix's cube as HeaderSpace.field_prefix makes it
        name = f"{family}_{d}"
        width, off = DEFAULT_LAYOUT.field(name).width, DEFAULT_LAYOUT.offset(name)
        mask = ((1 << length) - 1) << (width - length)
        pairs.append((ev | (address & mask) << off, em | mask << off))
    return tuple(pairs)


PROTO_SPACES = {
    "ip": ipv4,
    "ip6": ipv6,
    "arp": lambda: _eq("eth_type", ETH_ARP),
    "tcp": lambda: proto(6),
    "udp": lambda: proto(17),
    "icmp": lambda: ipv4() & _eq("ip_proto", 1),
    "icmp6": lambda: ipv6() & _eq("ip_proto", 58),
}


_FIELDS: dict[type, tuple[str, ...]] = {}
_MEMO_KINDS = (A.MNot, A.MPort, A.MOr)


def _structure(node: Any) -> Any:
    """A hashable key of an AST match or value without its spans, or None if
    it refers to a name (a class or a set: their meaning and use are the
    symbol table's business).  Nested too deeply to key: None as well."""
    try:
        return _key(node)
    except (_Named, RecursionError):
        return None


class _Named(Exception):
    pass


def _key(node: Any) -> Any:
    if isinstance(node, (A.MRef, A.RefVal, A.Name)):
        raise _Named
    if isinstance(node, tuple):
        return tuple(_key(x) for x in node)
    names = _FIELDS.get(type(node))
    if names is None:
        if not dataclasses.is_dataclass(node):
            return node
        names = _FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node) if f.name != "span")
    return (type(node).__name__, *(_key(getattr(node, n)) for n in names))


@dataclass
class MatchCompiler:
    """Compiles match ASTs of one site, memoising classes and sets."""

    symbols: Symbols
    class_cache: dict[str, MatchSet] = field(default_factory=dict)
    in_progress: set[str] = field(default_factory=set)
    memo: dict[Any, MatchSet] = field(default_factory=dict)

    # ---- values ----
    def values(self, value: Any, seen: frozenset[str] = frozenset()) -> list[Any]:
        """Flatten a value (set literal, set name, scalar) to scalar AST values."""
        if isinstance(value, A.SetVal):
            out: list[Any] = []
            for item in value.items:
                out.extend(self.values(item, seen))
            return out
        if isinstance(value, (A.RefVal, A.MRef)):
            name = value.name
            if name.text in seen:
                self.symbols.sink.error(
                    "E0208", f"set `{name.text}` refers to itself", name.span, hint="remove the cycle between the sets"
                )
                return []
            stmt = self.symbols.lookup(name, "set")
            if stmt is None:
                return []
            return self.values(stmt.value, seen | {name.text})
        return [value]

    def _bad(self, span: Span, message: str, hint: str | None = None) -> MatchSet:
        self.symbols.sink.error("E0505", message, span, hint=hint)
        return MatchSet.empty()

    # ---- expressions ----
    def compile_exact(self, expr: Any) -> HeaderSpace:
        """The plain cover of ``expr`` (a `not` spelt as its complement), for
        hosts' classifiers; past MAX_HOST_PATTERNS cubes, E0804 (`not (net A
        or ether B)` spells into the product of each side's complement)."""
        try:
            return self.compile(expr).exact(limit=MAX_HOST_PATTERNS)
        except TooManyCubes:
            self.symbols.sink.error(
                "E0804",
                f"this match needs more than {MAX_HOST_PATTERNS:,} patterns once its `not`s are spelt out for "
                "the host's classifier",
                expr.span,
                hint="match what to take rather than what to leave out, or split it into labels of their own",
            )
            return HeaderSpace.empty()

    def compile(self, expr: Any) -> MatchSet:
        """The space of ``expr``.  Sub-expressions that name nothing are
        memoised by their structure (spans left out): large sites repeat
        `not dst port 53` or `dst port {80, 443}` many times, and a
        complement is costly.  Only the costly kinds are keyed (a key costs
        a walk of the expression).  Only results that raised no diagnostic are
        kept, so a repeated mistake is still reported at each place."""
        key = _structure(expr) if type(expr) in _MEMO_KINDS else None
        if key is not None:
            hit = self.memo.get(key)
            if hit is not None:
                return hit
        before = len(self.symbols.sink.items)
        space = getattr(self, "m_" + type(expr).__name__)(expr)
        if key is not None and len(self.symbols.sink.items) == before:
            self.memo[key] = space
        return space

    def m_MOr(self, e: A.MOr) -> MatchSet:
        return MatchSet.union(self.compile(item) for item in e.items)

    def m_MAnd(self, e: A.MAnd) -> MatchSet:
        out = MatchSet.all()
        for item in e.items:
            out = out & self.compile(item)
        return out

    def m_MNot(self, e: A.MNot) -> MatchSet:
        return self.compile(e.expr).negate()

    def m_MProto(self, e: A.MProto) -> MatchSet:
        return MatchSet.of(PROTO_SPACES[e.proto]())

    def m_MProtoNum(self, e: A.MProtoNum) -> MatchSet:
        return MatchSet.of(proto(e.number))

    def m_MRef(self, e: A.MRef) -> MatchSet:
        name = e.name.text
        if name in self.class_cache:
            self.symbols.used.add(name)
            return self.class_cache[name]
        if name in self.in_progress:
            self.symbols.sink.error(
                "E0208", f"class `{name}` refers to itself", e.name.span, hint="remove the cycle between the classes"
            )
            return MatchSet.empty()
        stmt = self.symbols.lookup(e.name, "class")
        if stmt is None:
            return MatchSet.empty()
        self.in_progress.add(name)
        space = self.compile(stmt.match)
        self.in_progress.discard(name)
        self.class_cache[name] = space
        return space

    def _directions(self, d: str | None) -> tuple[str, ...]:
        return ("src", "dst") if d is None else (d,)

    def _addresses(self, e: Any, allow_prefix: bool) -> MatchSet:
        pairs: list[tuple[int, int]] = []
        for v in self.values(e.value):
            if isinstance(v, A.AddrVal):  # the host's network: the address at its full length
                addr = v.addr
                pairs += _net_pairs(addr.version, int(addr), addr.max_prefixlen, e.dir)
            elif isinstance(v, A.PrefixVal) and allow_prefix:
                net = v.net
                pairs += _net_pairs(net.version, int(net.network_address), net.prefixlen, e.dir)
            elif isinstance(v, A.PrefixVal):
                return self._bad(
                    v.span, f"`host` takes addresses, and {v.net} is a prefix", hint=f"write `net {v.net}`"
                )
            else:
                return self._bad(getattr(v, "span", e.span), "expected an IP address or prefix here")
        return MatchSet.of(HeaderSpace._of(DEFAULT_LAYOUT, pairs))

    def m_MHost(self, e: A.MHost) -> MatchSet:
        return self._addresses(e, allow_prefix=False)

    def m_MNet(self, e: A.MNet) -> MatchSet:
        return self._addresses(e, allow_prefix=True)

    def m_MPort(self, e: A.MPort) -> MatchSet:
        """A port set is merged into ranges first, so its cover is built once
        (a set of 20,000 ports costs one pass, not 20,000 unions)."""
        pairs: list[tuple[int, int]] = []
        ranges = merge_ranges(self.port_ranges(e.value, e.span))  # once: a bad port is reported once
        directions = self._directions(e.dir)
        if len(ranges) == 1 and len(directions) == 1:  # one range's cover is normal already
            return MatchSet.of(tcp_or_udp() & _port_range(f"tp_{directions[0]}", *ranges[0]))
        for d in directions:
            for lo, hi in ranges:
                pairs += _port_range(f"tp_{d}", lo, hi)._pairs()
        return MatchSet.of(tcp_or_udp() & HeaderSpace._of(DEFAULT_LAYOUT, pairs))

    def port_ranges(self, value: Any, span: Span) -> list[tuple[int, int]]:
        out = []
        for v in self.values(value):
            if isinstance(v, A.IntVal):
                lo = hi = v.value
            elif isinstance(v, A.RangeVal):
                lo, hi = v.lo, v.hi
            else:
                self._bad(getattr(v, "span", span), "expected a port number, range or set of them")
                continue
            if hi > 65535:
                shown = str(hi) if hi < 10**12 else "beyond 10^12"
                self.symbols.sink.error("E0014", f"port {shown} is out of range (0..65535)", v.span)
                continue
            if lo <= hi:
                out.append((lo, hi))
        return out

    def m_MVlan(self, e: A.MVlan) -> MatchSet:
        return MatchSet.of(_eq("vlan_vid", 0x1000 | e.vid))

    def m_MEther(self, e: A.MEther) -> MatchSet:
        pairs: list[tuple[int, int]] = []
        for v in self.values(e.value):
            if not isinstance(v, A.MacVal):
                return self._bad(getattr(v, "span", e.span), "`ether` takes a MAC address like 00:11:22:33:44:55")
            for d in self._directions(e.dir):
                pairs += _eq(f"eth_{d}", v.value)._pairs()
        return MatchSet.of(HeaderSpace._of(DEFAULT_LAYOUT, pairs))

    def m_MDscp(self, e: A.MDscp) -> MatchSet:
        return MatchSet.of(any_ip() & _eq("ip_dscp", e.value))


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping and adjacent ranges joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
