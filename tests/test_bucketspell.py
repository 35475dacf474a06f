"""SELECT's spelling of a hash-decided list: the longest-prefix rules give
every bucket the result of the first path owning it, a bucket no path owns
misses (or hits an explicit drop), and the rules are never more than
spelling each path's bucket set on its own (exact on small cases)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.lowering import bucketspell
from compiler.lowering.bucketspell import MISS, bucket_labels, spell
from compiler.lowering.select import bucket_patterns
from compiler.steering.flowhash import BUCKETS, bucket_sets, copies


def _lookup(rules: tuple[bucketspell.Rule, ...], b: int) -> int:
    best: tuple[int, int] | None = None
    for value, mask, length, label in rules:
        if b & mask == value:
            assert best is None or best[0] != length, "two rules of one length overlap"
            if best is None or length > best[0]:
                best = (length, label)
    return MISS if best is None else best[1]


weights = st.lists(st.integers(1, 6), min_size=1, max_size=6)


@st.composite
def decision_lists(draw: st.DrawFn) -> tuple[tuple[frozenset[int], ...], tuple[int, ...]]:
    """Paths as a chain of replicated stages (and maybe a copy) would make:
    each path's buckets the intersection of one replica per stage."""
    paths: list[frozenset[int]] = [frozenset(range(BUCKETS))]
    for w in draw(st.lists(weights, min_size=1, max_size=3)):
        paths = [p & s for p in paths for s in bucket_sets(w)]
    if draw(st.booleans()):
        percent = draw(st.sampled_from([1, 5, 10, 30, 50]))
        taken = frozenset(b for b in range(BUCKETS) if copies(b, percent))
        paths = [p & part for p in paths for part in (taken, frozenset(range(BUCKETS)) - taken)]
    paths = [p for p in paths if p]
    if draw(st.booleans()):  # some buckets owned by no path
        paths = [p - frozenset(range(draw(st.integers(0, 255)), BUCKETS, 7)) for p in paths]
    # paths with the same result share a label; later paths may repeat buckets (first wins)
    index = tuple(draw(st.integers(0, i)) for i in range(len(paths)))
    return tuple(paths), index


@settings(max_examples=300, deadline=None)
@given(case=decision_lists())
def test_rules_give_each_bucket_its_first_owners_result(case) -> None:
    sets, index = case
    labels = bucket_labels(sets, index)
    rules = spell(tuple(labels))
    for b in range(BUCKETS):
        owner = next((i for s, i in zip(sets, index) if b in s), None)
        assert labels[b] == owner
        assert _lookup(rules, b) == (MISS if owner is None else owner)
    assert len(rules) <= sum(len(bucket_patterns(s)) for s in sets if s) + sum(1 for x in labels if x is None)


def test_known_shapes_cost_what_they_must() -> None:
    def cost(ws: list[int]) -> int:
        sets = tuple(bucket_sets(ws))
        return len(spell(bucket_labels(sets, tuple(range(len(sets))))))

    assert cost([1]) == 1
    assert cost([1, 1]) == 2
    # three or four equal replicas (stealing leaves each a few runs): fewer than the per-set covers
    for ws in ([1, 1, 1], [1, 1, 1, 1]):
        assert cost(ws) < sum(len(bucket_patterns(s)) for s in bucket_sets(ws))
    # no bucket owned: no rule (the table misses, as without the list)
    assert spell((None,) * BUCKETS) == ()
    # one bucket owned inside a region of another result costs its own rule; one owned by none an explicit miss
    labels: list[int | None] = [0] * BUCKETS
    labels[5] = 1
    labels[9] = None
    rules = spell(tuple(labels))
    assert len(rules) == 3 and {r[3] for r in rules} == {0, 1, MISS}


@st.composite
def three_hash_lists(draw: st.DrawFn) -> tuple[tuple[frozenset[int], ...], ...]:
    """Combos of a list decided by the flow hash and `by src`/`by dst`
    stages: each combo one share of each stage (per hash, the intersection
    of its stages' shares), in order."""
    combos: list[tuple[frozenset[int], ...]] = [tuple(frozenset(range(BUCKETS)) for _ in range(3))]
    for _ in range(draw(st.integers(1, 3))):
        dim = draw(st.integers(0, 2))
        if dim == 0 and draw(st.booleans()):
            taken = frozenset(b for b in range(BUCKETS) if copies(b, draw(st.sampled_from([5, 25, 50]))))
            shares = [taken, frozenset(range(BUCKETS)) - taken]
        else:
            shares = bucket_sets(draw(weights))
        combos = [
            tuple(s & sh if i == dim else x for i, x in enumerate(c)) for c in combos for s in [c[dim]] for sh in shares
        ]
    return tuple(tuple(c[i] for c in combos) for i in range(3))


@settings(max_examples=100, deadline=None)
@given(
    dims=three_hash_lists(), probes=st.lists(st.tuples(*[st.integers(0, BUCKETS - 1)] * 3), min_size=50, max_size=50)
)
def test_grid_cells_take_the_first_combo_allowing_all_three_hashes(dims, probes) -> None:
    cells = bucketspell.grid(dims)
    for h, s, d in probes:
        hits = [
            (rd[2], rs[2], rh[2], ci)
            for (rh, rs, rd), ci in cells
            if h & rh[1] == rh[0] and s & rs[1] == rs[0] and d & rd[1] == rd[0]
        ]
        want = next((i for i in range(len(dims[0])) if h in dims[0][i] and s in dims[1][i] and d in dims[2][i]), None)
        if not hits:
            assert want is None
            continue
        best = max(hits)
        assert sum(1 for x in hits if x[:3] == best[:3]) == 1, "two cells of one priority meet"
        assert best[3] == want


@settings(max_examples=200, deadline=None)
@given(case=decision_lists())
def test_with_holes_no_rule_covers_a_bucket_no_combo_owns(case) -> None:
    """A run under one `case` guard: its buckets no combo owns go on to the
    later arms' entries, so no rule of the run may match them."""
    sets, index = case
    labels = bucket_labels(sets, index)
    rules = spell(labels, True)
    for b in range(BUCKETS):
        got = _lookup(rules, b)
        assert got == (MISS if labels[b] is None else labels[b])
        if labels[b] is None:
            assert not any(b & mask == value for value, mask, _, _ in rules)
