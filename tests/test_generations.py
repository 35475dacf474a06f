"""Two generations of one site can share the switch tables (docs/platform.md).

For every example: generation 1 is generation 0 with bit 11 in every
steering tag, bit 47 in every classification entry and bit 63 in the cookie
of every generation-specific rule; the rules of the non-ingress tables of the
two generations never share an identity (table, priority, match) unless they
are the same rule; and a packet is handled identically in both.
"""

from __future__ import annotations

from functools import cache

import pytest

from compiler.lowering import tables as T
from compiler.lowering.lower import generation_specific
from compiler.pipeline import Compiled, compile_site
from compiler.verification.platform_sim import Platform
from fslang.api import load
from tests.conftest import EXAMPLES
from tests.ovs_harness import site_packets


@cache
def _compiled(path: str, generation: int) -> Compiled:
    res = load(path)
    assert res.ok, res.diagnostics
    c = compile_site(res.site, generation=generation)
    assert c.ok, c.diagnostics
    return c


def _identity(e) -> tuple:
    return (e.table_id, e.priority, e.match)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_generation_bits(example) -> None:
    g0, g1 = _compiled(str(example), 0), _compiled(str(example), 1)
    assert {d: t | 1 << T.GENERATION_TAG_BIT for d, t in g0.steering.tags.items()} == g1.steering.tags
    assert g1.steering.exit_tag == T.EXIT_TAG | 0x800
    for sw in g0.tables:
        e0, e1 = g0.tables[sw].entries, g1.tables[sw].entries
        assert len(e0) == len(e1)
        for e in e1:
            assert bool(e.cookie >> T.GENERATION_COOKIE_BIT) == generation_specific(e)
            if e.write_metadata is not None and e.write_metadata[1] & T.ENTRY_MASK:
                assert e.write_metadata[0] >> (T.ENTRY_SHIFT + T.GENERATION_ENTRY_BIT) & 1
        assert not any(e.cookie >> T.GENERATION_COOKIE_BIT for e in e0)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_generations_coexist_outside_ingress(example) -> None:
    """Phase 1 of an update adds generation 1 next to generation 0: no rule of
    a non-ingress table may replace a different rule of the old generation."""
    g0, g1 = _compiled(str(example), 0), _compiled(str(example), 1)
    for sw in g0.tables:
        old = {_identity(e): e for e in g0.tables[sw].entries if e.table_id not in T.INGRESS_TABLES}
        for e in g1.tables[sw].entries:
            if e.table_id in T.INGRESS_TABLES:
                continue
            same = old.get(_identity(e))
            assert same is None or same == e, (sw, e, same)
            assert (same is None) == generation_specific(e)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_generations_behave_alike(example) -> None:
    g0, g1 = _compiled(str(example), 0), _compiled(str(example), 1)
    p0, p1 = Platform(g0), Platform(g1)
    for pkt, edge, in_port in site_packets(g0.site)[:80]:
        t0, t1 = p0.trace(pkt, edge, in_port), p1.trace(pkt, edge, in_port)
        assert (t0.modules, t0.exits) == (t1.modules, t1.exits), (edge, pkt)
