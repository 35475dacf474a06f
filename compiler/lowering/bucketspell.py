"""The fewest SELECT entries for a decision list decided by the flow hash alone.

Such a list is a function from the 8-bit hash bucket to a result (the path's
first tag, or the connection mark to commit).  Spelling each path's bucket set
on its own (:func:`compiler.lowering.lower.bucket_patterns`) pays for every
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

from collections.abc import Sequence
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


def spell(labels: Sequence[int | None]) -> tuple[Rule, ...]:
    """Prefix rules (over the BUCKETS buckets) whose longest match gives each
    bucket its label; labels are small ints (first-appearance order keeps the
    cache shared between lists of the same shape), ``None`` a bucket no path
    owns."""
    if len(labels) != flowhash.BUCKETS:
        raise ValueError(f"{len(labels)} labels for {flowhash.BUCKETS} buckets")
    return _spell_labels(tuple(labels))


@lru_cache(maxsize=4096)
def _spell_labels(labels: tuple[int | None, ...]) -> tuple[Rule, ...]:
    """:func:`spell` of a tuple, cached as it comes (the tuple ``bucket_labels``
    caches): a site of chains of their own spells 7,500 lists of a few dozen
    shapes, and renaming each list's 256 labels was most of the cost."""
    return _spell(tuple(MISS if x is None else x for x in labels))


@lru_cache(maxsize=4096)
def _spell(labels: tuple[int, ...]) -> tuple[Rule, ...]:
    forward = _prefix_rules(labels)
    rev = tuple(labels[flowhash.bit_reverse(b)] for b in range(flowhash.BUCKETS))
    backward = _prefix_rules(rev)
    if len(backward) < len(forward):
        r = flowhash.bit_reverse
        return tuple(sorted((r(v), r(m), n, x) for v, m, n, x in backward))
    return forward


def _prefix_rules(labels: tuple[int, ...]) -> tuple[Rule, ...]:
    """The fewest prefix rules, high bit first (exact, by dynamic programming
    over the trie; ties go to writing no rule, then to the smaller label)."""
    return _Trie(labels).rules()


class _Trie:
    """The dynamic programme of :func:`_prefix_rules` over one label tuple.
    Methods, not nested closures: a recursive closure is a reference cycle,
    and with the cycle collector off during a compile (``fslang.api``) its
    tables (tens of thousands of entries per spelling) were never freed."""

    def __init__(self, labels: tuple[int, ...]) -> None:
        self.labels = labels
        self.bits = flowhash.HASH_BITS
        self.memo: dict[tuple[int, int, int], tuple[int, int | None]] = {}
        self.present: dict[tuple[int, int], frozenset[int]] = {}

    def seen(self, lo: int, depth: int) -> frozenset[int]:
        key = (lo, depth)
        got = self.present.get(key)
        if got is None:
            size = 1 << (self.bits - depth)
            got = self.present[key] = frozenset(self.labels[lo : lo + size])
        return got

    def cost(self, lo: int, depth: int, inherited: int) -> int:
        """Rules needed below node (lo, depth) when ``inherited`` reaches it;
        memo holds the choice: None (no rule here) or the label written."""
        key = (lo, depth, inherited)
        done = self.memo.get(key)
        if done is not None:
            return done[0]
        here = self.seen(lo, depth)
        if here == {inherited}:
            self.memo[key] = (0, None)
            return 0
        if depth == self.bits:  # one bucket, not the inherited label: a rule of its own
            self.memo[key] = (1, self.labels[lo])
            return 1
        half = 1 << (self.bits - depth - 1)
        best, choice = self.cost(lo, depth + 1, inherited) + self.cost(lo + half, depth + 1, inherited), None
        for label in sorted(here):
            if label == inherited:
                continue
            c = 1 + self.cost(lo, depth + 1, label) + self.cost(lo + half, depth + 1, label)
            if c < best:
                best, choice = c, label
        self.memo[key] = (best, choice)
        return best

    def rules(self) -> tuple[Rule, ...]:
        out: list[Rule] = []
        self.emit(0, 0, MISS, out)
        return tuple(out)

    def emit(self, lo: int, depth: int, inherited: int, out: list[Rule]) -> None:
        self.cost(lo, depth, inherited)
        _, choice = self.memo[(lo, depth, inherited)]
        if choice is not None:
            mask = flowhash.MASK & ~((1 << (self.bits - depth)) - 1)
            out.append((lo, mask, depth, choice))
            inherited = choice
        if depth == self.bits or self.seen(lo, depth) == {inherited}:
            return
        half = 1 << (self.bits - depth - 1)
        self.emit(lo, depth + 1, inherited, out)
        self.emit(lo + half, depth + 1, inherited, out)
