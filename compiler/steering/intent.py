"""The intent graph (networkx): policies -> their unfolded paths -> instances.

Nodes: ``("policy", name, direction)``, ``("entry", id)`` (where the switch
classifies: a policy's ingress or a box return), ``("visit", instance, tag)``,
``("box", name)``, ``("fork", tag)``, ``("exit",)`` and ``("drop",)``.  Edges
carry what selects them: ``combo`` (a switch decision at an entry) or
``output`` (a module's output).  It is derived from the steering plan, so
questions about the compiled intent (is every path loop-free? which policies
reach an instance?) are graph questions."""

from __future__ import annotations

import networkx as nx

from compiler.steering.steer import BoxVisit, Dispatch, Dropped, Exit, Fork, SteeringPlan, Visit


def _node(d: Dispatch, plan: SteeringPlan) -> tuple:
    if isinstance(d, Exit):
        return ("exit",)
    if isinstance(d, Dropped):
        return ("drop",)
    if isinstance(d, Visit):
        return ("visit", d.instance, plan.tag(d))
    if isinstance(d, BoxVisit):
        return ("box", d.box, d.occurrence)
    return ("fork", plan.tag(d))


def intent_graph(plan: SteeringPlan) -> nx.DiGraph:
    g = nx.DiGraph()
    seen: set[Dispatch] = set()

    def walk(d: Dispatch) -> None:
        if d in seen:
            return
        seen.add(d)
        here = _node(d, plan)
        g.add_node(here)
        if isinstance(d, Visit):
            for out, nxt in d.next:
                g.add_edge(here, _node(nxt, plan), output=out)
                walk(nxt)
        elif isinstance(d, Fork):
            g.add_edge(here, _node(d.copy, plan), output="copy")
            g.add_edge(here, _node(d.main, plan), output="main")
            walk(d.copy)
            walk(d.main)
        elif isinstance(d, BoxVisit):
            g.add_edge(here, ("entry", d.occurrence), output="returns")

    for policy, direction, entry in plan.ingress:
        g.add_edge(("policy", policy.name, direction), ("entry", entry.id))
    for entry in plan.entries:
        for k, (_, d) in enumerate(entry.combos):
            g.add_edge(("entry", entry.id), _node(d, plan), combo=k)
            walk(d)
    return g


def instances_of_policy(g: nx.DiGraph, policy: str) -> set[str]:
    """Every instance some packet of ``policy`` (either direction) can visit."""
    out: set[str] = set()
    for node in g.nodes:
        if node[0] == "policy" and node[1] == policy:
            out |= {n[1] for n in nx.descendants(g, node) if n[0] == "visit"}
    return out
