"""The flow hash: which replica a flow gets, which flows a `copy` takes, and
which port of a multi-port edge a flow leaves by.

Declared here once and used by the reference interpreter, by lowering (which
compiles it into OpenFlow tables) and by `fsc trace`, so fsc can say exactly
which replica a packet reaches.  The hash is a function of header bits that
ternary matches can compute:

* ``flow``: bit i (i < HASH_BITS) = ip_src[i] ^ ip_dst[i] ^ l4_src[i] ^ l4_dst[i]
  (low bits of the addresses and ports; ports count as 0 when the packet has
  none).  XOR is symmetric, so both directions of a flow hash alike.
* ``src`` / ``dst``: the low HASH_BITS bits of that address.

Non-IP packets hash to bucket 0.  A bucket maps to a replica through bucket
sets proportional to the replicas' weights (:func:`bucket_sets`), built so
that adding or removing the last replica moves as few flows as possible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from compiler import ir

HASH_BITS = 8
BUCKETS = 1 << HASH_BITS
MASK = BUCKETS - 1

ADDR_FIELDS = {0x0800: ("ipv4_src", "ipv4_dst"), 0x86DD: ("ipv6_src", "ipv6_dst")}
L4_FIELDS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def reads_ports(site: ir.Site) -> bool:
    """The site's ``flow`` hash reads transport ports only when every switch
    is Open vSwitch (standard OpenFlow cannot match ports by mask), so that a
    flow hashes alike wherever it enters and a reply meets the same replica."""
    return bool(site.switches) and all(sw.ovs for sw in site.switches)


def bucket(packet: Mapping[str, int], by: str = "flow", ports: bool = True) -> int:
    """The hash bucket (0..BUCKETS-1) of a packet given by OXM fields
    (``ports``: whether the ``flow`` hash reads transport ports)."""
    addrs = ADDR_FIELDS.get(packet.get("eth_type", 0))
    if addrs is None:
        return 0
    src, dst = packet.get(addrs[0], 0), packet.get(addrs[1], 0)
    if by == "src":
        return src & MASK
    if by == "dst":
        return dst & MASK
    value = src ^ dst
    l4 = L4_FIELDS.get(packet.get("ip_proto", -1)) if ports else None
    if l4 is not None:
        value ^= packet.get(l4[0], 0) ^ packet.get(l4[1], 0)
    return value & MASK


def reverse_by(by: str) -> str:
    """The hash the reverse direction uses to reach the same replica."""
    return {"src": "dst", "dst": "src"}.get(by, by)


def bucket_counts(weights: Sequence[int]) -> list[int]:
    """Buckets per replica, proportional to ``weights`` (largest-remainder
    rounding, so shares are as exact as BUCKETS allows); at least one each."""
    total = sum(weights)
    if not weights or total <= 0:
        raise ValueError("weights must be positive")
    exact = [w * BUCKETS / total for w in weights]
    counts = [max(1, int(e)) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    k = 0
    while sum(counts) < BUCKETS:
        counts[order[k % len(order)]] += 1
        k += 1
    while sum(counts) > BUCKETS:
        i = max(range(len(counts)), key=lambda j: (counts[j] - exact[j], j))
        counts[i] -= 1
    return counts


def bucket_ranges(weights: Sequence[int]) -> list[tuple[int, int]]:
    """Split 0..BUCKETS-1 into contiguous ranges proportional to ``weights``
    (the ports of a multi-port edge)."""
    counts = bucket_counts(weights)
    out, lo = [], 0
    for c in counts:
        out.append((lo, lo + c - 1))
        lo += c
    return out


def bucket_sets(weights: Sequence[int]) -> list[frozenset[int]]:
    """The buckets of each replica, by *stealing*: replica k takes its share
    from replicas 0..k-1 (each gives up what it has above its new quota, its
    highest buckets first), starting from replica 0 owning everything.  So a
    stage that grows from n to n+1 replicas moves only the newcomer's share of
    flows (the ideal 1/(n+1)), and shrinking by its last replica moves only
    that replica's flows; shares are as exact as :func:`bucket_counts`.  Each
    replica's set is a few aligned runs, so its ternary cover stays small."""
    return list(_bucket_sets(tuple(weights)))


@lru_cache(maxsize=1024)
def _bucket_sets(weights: tuple[int, ...]) -> tuple[frozenset[int], ...]:
    if not weights or sum(weights) <= 0:
        raise ValueError("weights must be positive")
    owned: list[list[int]] = [list(range(BUCKETS))]
    for m in range(2, len(weights) + 1):
        quota = bucket_counts(weights[:m])
        new: list[int] = []
        for i in range(m - 1):
            surplus = len(owned[i]) - quota[i]
            if surplus > 0:
                new += owned[i][-surplus:]
                del owned[i][-surplus:]
        new.sort()
        for i in range(m - 1):  # rounding can leave an older replica one short
            short = quota[i] - len(owned[i])
            if short > 0:
                owned[i] = sorted(owned[i] + new[-short:])
                del new[-short:]
        owned.append(new)
    return tuple(frozenset(o) for o in owned)


def replica_index(b: int, weights: Sequence[int]) -> int:
    """The replica (0-based) that owns bucket ``b``."""
    for i, s in enumerate(_bucket_sets(tuple(weights))):
        if b in s:
            return i
    raise ValueError(b)


def copy_buckets(percent: float) -> int:
    """How many buckets a `copy P%` takes: the nearest count, at least one."""
    return max(1, min(BUCKETS, round(percent * BUCKETS / 100)))


_REVERSED = tuple(int(f"{b:0{HASH_BITS}b}"[::-1], 2) for b in range(1 << HASH_BITS))


def bit_reverse(b: int) -> int:
    return _REVERSED[b]


def copies(b: int, percent: float) -> bool:
    """True when a flow in bucket ``b`` is copied.  Buckets are taken in
    bit-reversed order, so the copied flows spread over every replica range
    instead of all coming from the first replica."""
    return bit_reverse(b) < copy_buckets(percent)


def egress_index(packet: Mapping[str, int], n_ports: int) -> int:
    """Which port (0-based) of an n-port edge a packet leaves by: a hash of
    its destination, so one flow always takes one port.  The ports share the
    buckets as contiguous ranges (:func:`bucket_ranges`; an edge's ports are
    fixed, so the replica sets' stealing order buys nothing here and ranges
    have the smaller ternary covers)."""
    if n_ports <= 1:
        return 0
    b = bucket(packet, "dst")
    return next(i for i, (lo, hi) in enumerate(bucket_ranges([1] * n_ports)) if lo <= b <= hi)
