"""The fewest SELECT entries for a decision list decided by the flow hash alone.

Such a list is a function from the 8-bit hash bucket to a result (the path's
first tag, or the connection mark to commit).  Spelling each path's bucket set
on its own (:func:`compiler.lowering.select.bucket_patterns`) pays for every
path's ragged edges; spelling the *function* with longest-prefix priorities
lets one short prefix cover a whole region and longer ones carve out the
exceptions (the idea of ORTC, Draves et al., "Constructing optimal IP routing
tables", INFOCOM 1999).  The dynamic programme below is exact for prefix
patterns: over the bucket trie, each node either writes a rule (with some
result, inherited by its subtree) or not, and the cheapest choice wins.  It is
run on the bucket bits in both orders (high bit first, and bit-reversed, which
is how `copy` takes its buckets) and the cheaper is used.

A bucket no path owns (``None``) must miss as before: the table's own miss is
what the root inherits, so such a bucket costs a rule (``MISS``, a drop) only
where it lies under a covering rule of another result.
"""

from __future__ import annotations

from functools import lru_cache

from compiler.steering import flowhash

#: the result of a bucket no path owns (lowering writes a drop for it)
MISS = -1
_NEVER = 1 << 30  # the cost of a rule that may not be written

#: (value, mask, prefix length, label): the prefix length orders the entries (longer wins)
Rule = tuple[int, int, int, int]

#: per depth, each trie node's (A, B) of :func:`_prefix_rules`
Level = list[list[tuple[dict[int, int], int]]]


@lru_cache(maxsize=4096)
def bucket_labels(sets: tuple[frozenset[int], ...], index: tuple[int, ...]) -> tuple[int | None, ...]:
    """Each bucket's label: ``index`` of the first of ``sets`` (a decision
    list's paths, in order: the first that owns a bucket wins) owning it;
    None where no path does."""
    out: list[int | None] = [None] * flowhash.BUCKETS
    for buckets, i in zip(sets, index):
        for b in buckets:
            if out[b] is None:
                out[b] = i
    return tuple(out)


#: the bit orders tried, most significant trie level first: the bucket's high bits first (replica
#: shares are runs of buckets), its low bits first (`copy` takes buckets in bit-reversed order),
#: then mixes (k high bits, then the low bits; k low bits, then the high bits) for lists that
#: combine both
_HIGH = tuple(range(flowhash.HASH_BITS - 1, -1, -1))
_LOW = tuple(range(flowhash.HASH_BITS))
ORDERS: tuple[tuple[int, ...], ...] = (
    _HIGH,
    _LOW,
    *(
        order
        for k in range(1, flowhash.HASH_BITS)
        for order in (
            _HIGH[:k] + tuple(b for b in _LOW if b not in _HIGH[:k]),
            _LOW[:k] + tuple(b for b in _HIGH if b not in _LOW[:k]),
        )
    ),
)


@lru_cache(maxsize=4096)
def spell(labels: tuple[int | None, ...], holes: bool = False) -> tuple[Rule, ...]:
    """Rules (over the BUCKETS buckets) whose longest match gives each bucket
    its label; labels are small ints (a list's results in order, so lists of
    the same shape share the cache), ``None`` a bucket no path owns.  The
    rules are prefixes of one bit order (:data:`ORDERS`), so a rule's length
    (the bits it cares about) is its priority; the first order with the
    fewest rules wins, and the mixed orders are tried only when the plain
    two leave more rules than results.  With ``holes`` a bucket no path owns
    must pass the table's later entries (a later `case` arm): no rule covers
    it, where otherwise it costs a drop rule where one covers it."""
    if len(labels) != flowhash.BUCKETS:
        raise ValueError(f"{len(labels)} labels for {flowhash.BUCKETS} buckets")
    plain = tuple(MISS if x is None else x for x in labels)
    least = len(set(labels) - {None})
    best: tuple[Rule, ...] | None = None
    for i, order in enumerate(ORDERS):
        if i == 2 and best is not None and len(best) <= least:
            break
        rules = _in_order(plain, order, holes)
        if best is None or len(rules) < len(best):
            best = rules
    assert best is not None
    return best


def _in_order(labels: tuple[int, ...], order: tuple[int, ...], holes: bool = False) -> tuple[Rule, ...]:
    """:func:`_prefix_rules` on the trie whose level j tests bucket bit
    ``order[j]``, its rules turned back into (value, mask) of the bucket."""
    to_bucket = _to_bucket(order)
    rules = _prefix_rules(tuple(labels[b] for b in to_bucket), holes)
    if order == _HIGH:
        return rules
    out = []
    for value, _, depth, label in rules:
        mask = sum(1 << b for b in order[:depth])
        out.append((to_bucket[value] & mask, mask, depth, label))
    return tuple(sorted(out))


@lru_cache(maxsize=len(ORDERS))
def _to_bucket(order: tuple[int, ...]) -> tuple[int, ...]:
    """The bucket at each trie index: bit (HASH_BITS - 1 - j) of the index is bucket bit ``order[j]``."""
    top = flowhash.HASH_BITS - 1
    return tuple(sum(((i >> (top - j)) & 1) << b for j, b in enumerate(order)) for i in range(flowhash.BUCKETS))


def _prefix_rules(labels: tuple[int, ...], holes: bool = False) -> tuple[Rule, ...]:
    """The fewest prefix rules, high bit first: exact, by dynamic programming
    over the bucket trie, bottom up.  For a node, ``A[x]`` is what its
    subtree costs below it when label x reaches it and it writes no rule
    (only labels present below matter: an absent one is never cheaper), and
    ``B`` = 1 + min A is the cost of writing a rule there; so x reaching it
    costs min(A[x], B), or B for an absent x (no rule there costs the
    children's B, never less).  Ties go to writing no rule, then to the
    smaller label.  With ``holes`` no rule may cover a MISS bucket: B is out
    of reach (``_NEVER``) at every node with one below."""
    bits = flowhash.HASH_BITS
    # level[d][i]: (A, B) of the i-th node at depth d (covering 2**(bits-d) buckets)
    level: Level = [[] for _ in range(bits + 1)]
    # one leaf object per label, so a subtree of one label is its halves' object (no merge): most are
    leaf = {x: ({x: 0}, _NEVER if holes and x == MISS else 1) for x in set(labels)}
    level[bits] = [leaf[x] for x in labels]
    for d in range(bits - 1, -1, -1):
        below = level[d + 1]
        nodes = []
        for i in range(0, len(below), 2):
            if below[i] is below[i + 1] and len(below[i][0]) == 1:
                nodes.append(below[i])
                continue
            (al, bl), (ar, br) = below[i], below[i + 1]
            a = {x: min(al.get(x, bl), bl) + min(ar.get(x, br), br) for x in al.keys() | ar.keys()}
            nodes.append((a, _NEVER if holes and MISS in a else 1 + min(a.values())))
        level[d] = nodes

    rules: list[Rule] = []
    _emit(level, 0, 0, MISS, rules)
    return tuple(rules)


def _emit(level: Level, d: int, i: int, inherited: int, rules: list[Rule]) -> None:
    """:func:`_prefix_rules`' rules below node ``i`` of depth ``d``, which
    ``inherited`` reaches.  A function of its own, not a closure in
    :func:`_prefix_rules`: a recursive closure is a reference cycle, and with
    the cycle collector off during a compile (``fslang.api``) each call's
    table of 511 nodes was never freed (50 MB on a 10,000-policy site)."""
    bits = len(level) - 1
    a, b = level[d][i]
    norule = a.get(inherited)
    if norule is None:  # the label reaching it is not below: each child pays for a rule
        norule = b + 1 if d == bits else level[d + 1][2 * i][1] + level[d + 1][2 * i + 1][1]
    if norule > b:  # a rule here: the smallest label of least cost
        least = min(a.values())
        inherited = min(x for x, c in a.items() if c == least)
        size = 1 << (bits - d)
        rules.append((i * size, flowhash.MASK & ~(size - 1), d, inherited))
    if d == bits or a.get(inherited) == 0 and len(a) == 1:
        return
    _emit(level, d + 1, 2 * i, inherited, rules)
    _emit(level, d + 1, 2 * i + 1, inherited, rules)


@lru_cache(maxsize=4096)
def classes(sets: tuple[frozenset[int], ...]) -> tuple[tuple[int | None, ...], tuple[frozenset[int], ...]]:
    """Buckets alike for a list: each bucket's class (numbered in bucket
    order; None where no set holds it) and each class's members (the indices
    of the sets holding its buckets)."""
    ids: dict[frozenset[int], int] = {}
    out: list[int | None] = []
    for b in range(flowhash.BUCKETS):
        members = frozenset(i for i, s in enumerate(sets) if b in s)
        out.append(ids.setdefault(members, len(ids)) if members else None)
    return tuple(out), tuple(ids)


#: one rule per hash of a list decided by several (the flow hash, the source's and the
#: destination's address hash): (rule of each hash, the first combo all three allow, or None)
Cell = tuple[tuple[Rule, Rule, Rule], int | None]


def grid(dims: tuple[tuple[frozenset[int], ...], ...]) -> tuple[Cell, ...]:
    """A list decided by three independent hashes (``dims``: per hash, each
    combo's buckets, combos in order; the first combo whose three sets hold
    a packet's three buckets wins), spelt as the product of each hash's
    fewest prefix rules (:func:`spell` of its classes).  Ordered
    lexicographically by the rules' prefix lengths (destination, source,
    flow: entry priorities), the entry a packet meets first is the one of
    its longest match in each hash, so the cell's combo is the first combo
    allowing all three of its classes; a cell no combo allows is a drop
    (a shorter cell would otherwise take the packet)."""
    spelt = []
    for sets in dims:
        labels, members = classes(sets)
        spelt.append((spell(labels), members))
    (rh, mh), (rs, ms), (rd, md) = spelt
    n = len(dims[0])
    cells: list[Cell] = []
    for d in rd:
        for s in rs:
            for h in rh:
                allowed = [
                    i for i in range(n) if all(r[3] != MISS and i in m[r[3]] for r, m in ((h, mh), (s, ms), (d, md)))
                ]
                cells.append(((h, s, d), allowed[0] if allowed else None))
    return tuple(cells)
