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

#: (value, mask, prefix length, label): the prefix length orders the entries (longer wins)
Rule = tuple[int, int, int, int]


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


@lru_cache(maxsize=4096)
def spell(labels: tuple[int | None, ...]) -> tuple[Rule, ...]:
    """Prefix rules (over the BUCKETS buckets) whose longest match gives each
    bucket its label; labels are small ints (a list's results in order, so
    lists of the same shape share the cache), ``None`` a bucket no path
    owns."""
    if len(labels) != flowhash.BUCKETS:
        raise ValueError(f"{len(labels)} labels for {flowhash.BUCKETS} buckets")
    plain = tuple(MISS if x is None else x for x in labels)
    forward = _prefix_rules(plain)
    backward = _prefix_rules(tuple(plain[flowhash.bit_reverse(b)] for b in range(flowhash.BUCKETS)))
    if len(backward) < len(forward):
        r = flowhash.bit_reverse
        return tuple(sorted((r(v), r(m), n, x) for v, m, n, x in backward))
    return forward


def _prefix_rules(labels: tuple[int, ...]) -> tuple[Rule, ...]:
    """The fewest prefix rules, high bit first: exact, by dynamic programming
    over the bucket trie, bottom up.  For a node, ``A[x]`` is what its
    subtree costs below it when label x reaches it and it writes no rule
    (only labels present below matter: an absent one is never cheaper), and
    ``B`` = 1 + min A is the cost of writing a rule there; so x reaching it
    costs min(A[x], B), or B for an absent x (no rule there costs the
    children's B, never less).  Ties go to writing no rule, then to the
    smaller label."""
    bits = flowhash.HASH_BITS
    # level[d][i]: (A, B) of the i-th node at depth d (covering 2**(bits-d) buckets)
    level: list[list[tuple[dict[int, int], int]]] = [[] for _ in range(bits + 1)]
    level[bits] = [({x: 0}, 1) for x in labels]
    for d in range(bits - 1, -1, -1):
        below = level[d + 1]
        nodes = []
        for i in range(0, len(below), 2):
            (al, bl), (ar, br) = below[i], below[i + 1]
            a = {x: min(al.get(x, bl), bl) + min(ar.get(x, br), br) for x in al.keys() | ar.keys()}
            nodes.append((a, 1 + min(a.values())))
        level[d] = nodes

    rules: list[Rule] = []

    def emit(d: int, i: int, inherited: int) -> None:
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
        emit(d + 1, 2 * i, inherited)
        emit(d + 1, 2 * i + 1, inherited)

    emit(0, 0, MISS)
    return tuple(rules)
