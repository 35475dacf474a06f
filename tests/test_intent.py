"""The intent graph of every example: loop-free, every policy reaches an end
(exit or drop or a sink), and the instances a policy can visit are exactly the
instances of the modules its pipeline names."""

from __future__ import annotations

import networkx as nx
import pytest

from compiler import ir
from compiler.pipeline import compile_site
from compiler.steering.intent import instances_of_policy, intent_graph
from fslang.api import load
from tests.conftest import EXAMPLES


def _modules(p: ir.Pipeline) -> set[str]:
    if isinstance(p, ir.Use):
        out = set() if p.is_box else {p.target}
        for _, b in p.branches or ():
            out |= _modules(b)
        return out
    if isinstance(p, ir.Serial):
        return set().union(*(_modules(s) for s in p.stages)) if p.stages else set()
    if isinstance(p, ir.Case):
        return set().union(*(_modules(b) for _, b in p.arms)) if p.arms else set()
    if isinstance(p, ir.Copy):
        return _modules(p.target)
    return set()


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_intent_graph_is_loop_free_and_complete(example) -> None:
    site = load(example).site
    c = compile_site(site)
    g = intent_graph(c.steering)
    assert nx.is_directed_acyclic_graph(g), nx.find_cycle(g)
    for node in g.nodes:
        if g.out_degree(node) == 0:
            assert node[0] in ("exit", "drop", "visit"), node  # a visit without successors is a sink
            if node[0] == "visit":
                inst = node[1]
                module = next(m for m in site.modules if inst in m.instance_names())
                assert module.is_sink, f"{inst} has no way on"
    for policy in site.policies:
        expected = {i for m in _modules(policy.pipeline) for i in site.module(m).instance_names()}
        assert instances_of_policy(g, policy.name) == expected, policy.name
