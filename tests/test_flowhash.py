"""Replica shares of the flow hash: exact proportions, and growing or
shrinking a stage by its last replica moves only that replica's buckets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.steering.flowhash import BUCKETS, bucket_counts, bucket_sets, replica_index

weights = st.lists(st.integers(1, 8), min_size=1, max_size=16)


@settings(max_examples=300, deadline=None)
@given(w=weights)
def test_shares_partition_the_buckets_in_proportion(w: list[int]) -> None:
    sets = bucket_sets(w)
    assert sorted(b for s in sets for b in s) == list(range(BUCKETS))
    assert [len(s) for s in sets] == bucket_counts(w)
    assert all(replica_index(b, w) == i for i, s in enumerate(sets) for b in s)


@settings(max_examples=300, deadline=None)
@given(w=weights, extra=st.integers(1, 8))
def test_adding_a_replica_moves_only_its_share(w: list[int], extra: int) -> None:
    before, after = bucket_sets(w), bucket_sets([*w, extra])
    moved = sum(1 for b in range(BUCKETS) if replica_index(b, w) != replica_index(b, [*w, extra]))
    # every moved bucket goes to the newcomer, except the odd one rounding hands back
    assert moved <= len(after[-1]) + len(w)
    assert all(len(after[i] - before[i]) <= 1 for i in range(len(w)))
