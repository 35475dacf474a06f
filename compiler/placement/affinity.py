"""Module affinity: which modules a packet visits back to back, so sharing a host saves a switch trip.

The placement objective's crossings term; also read by the incremental compile to tell which placements a
change can affect.
"""

from __future__ import annotations

from compiler import ir

#: the last site :func:`affinity` was asked about (kept alive, so its id is its own) and the answer
_last_affinity: list[tuple[ir.Site, dict[tuple[str, str], int]]] = []


def affinity(site: ir.Site) -> dict[tuple[str, str], int]:
    """Module pairs (sorted names) that a packet visits back to back, so that
    sharing a host saves a trip through the switch (as ``compiler.steering.hostplan``
    wires them), weighted by how many policy directions (symmetric counts
    twice) do so.  A box stops a chain; a ``case`` does not (the switch
    classifies at ingress); a ``copy`` forks its copies at the switch.

    The site is immutable: asked again about the same site object (placement,
    then the incremental cache of the same compile: 10,000 policies walked
    twice), the answer is the one worked out before (a copy)."""
    if _last_affinity and _last_affinity[0][0] is site:
        return dict(_last_affinity[0][1])
    out = _affinity(site)
    if len(site.policies) > 100:  # only large sites are worth keeping (and keeping alive)
        _last_affinity[:] = [(site, dict(out))]
    return out


def _affinity(site: ir.Site) -> dict[tuple[str, str], int]:
    mods = {m.name: m for m in site.modules}
    out: dict[tuple[str, str], int] = {}

    def walk(p: ir.Pipeline, preds: frozenset[str | None], pairs: set[tuple[str, str]]) -> frozenset[str | None]:
        # preds: modules whose output arrives here directly; None = from the switch
        if isinstance(p, ir.Pass):
            return preds
        if isinstance(p, ir.Drop):
            return frozenset()
        if isinstance(p, ir.Serial):
            for s in p.stages:
                preds = walk(s, preds, pairs)
            return preds
        if isinstance(p, ir.Case):  # decided at ingress (headers do not change): no stop
            outs: frozenset[str | None] = frozenset()
            for _, arm in p.arms:
                outs |= walk(arm, preds, pairs)
            return outs if any(g is None for g, _ in p.arms) else outs | preds
        if isinstance(p, ir.Copy):  # the copies fork at the switch; the rest go straight on
            walk(p.target, frozenset({None}), pairs)
            return preds
        assert isinstance(p, ir.Use)
        if p.is_box or p.target not in mods:
            return frozenset({None})
        m = mods[p.target]
        for a in preds:
            if a is not None and a != m.name:
                pairs.add((min(a, m.name), max(a, m.name)))
        if m.is_sink:
            return frozenset()
        if not p.branches:
            return frozenset({m.name})
        outs = frozenset()
        labels = {lab for lab, _ in p.branches}
        for _, branch in p.branches:
            outs |= walk(branch, frozenset({m.name}), pairs)
        if None not in labels and set(m.outputs) - labels:
            outs |= {m.name}  # unnamed outputs go on
        return outs

    for pol in site.policies:
        pairs: set[tuple[str, str]] = set()
        walk(pol.pipeline, frozenset({None}), pairs)
        for pr in pairs:
            out[pr] = out.get(pr, 0) + (2 if pol.symmetric else 1)
    return dict(sorted(out.items()))
