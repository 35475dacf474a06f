"""The partial-overlap scan (``policies._first_partial``) names the same
earlier policy as the chain of binary searches over prefix unions it
replaced, on sites whose policies all overlap one another."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from benchmarks.compile_scale import overlap_site
from compiler.check import policies as P
from compiler.check.checker import check
from compiler.headerspace.bdd import Space
from fslang.diagnostics import DiagnosticSink
from fslang.parser import parse
from fslang.source import SourceFile


def chain_reference(space, prefix, checked, first):
    k = first
    while k is not None:
        if not checked[k].match.space().is_subset(space):
            return k
        k = P._first_meeting(prefix, space - prefix[k], k + 1) if k + 1 < len(prefix) else None
    return None


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_scan_names_what_the_chain_named(seed):
    result = check(parse(SourceFile("ov.fs", overlap_site(150))).program, DiagnosticSink())
    assert result.site is not None
    policies = list(result.site.policies)
    if seed is not None:  # other orders: earlier policies inside, around and across later ones
        random.Random(seed).shuffle(policies)
    kinds = Counter()
    checked, prefix = [], []
    taken = P.Taken()  # kept across policies, as check_order keeps it
    for pol in policies:
        space = pol.match.space()
        checked.append(pol)
        before = prefix[-1] if prefix else Space.empty()
        if prefix and before.intersects(space) and not space.is_subset(before):
            first = P._first_meeting(prefix, space, 0)
            want = chain_reference(space, prefix, checked, first)
            assert P._first_partial(pol, space, prefix, checked, first, taken) == want
            assert P._first_partial(pol, space, prefix, checked, first) == want
            kinds["none" if want is None else "first" if want == first else "later"] += 1
        prefix.append(before | space)
    assert sum(kinds.values()) > 30
    if seed is not None:
        assert kinds["first"] and kinds["later"], kinds
