"""The platform's scaling of a checked site: a replica count within a
module's range (`replicas A..B`) and weights, chosen by the platform
(`fsc rebalance`) rather than written in the site.

A scale is applied to the checked site before placement (:func:`rescale`),
so placement, steering and lowering see an ordinary site with that many
replicas. The deployed placement carries the scale forward: recompiling for a
failover, a drain or a later `fsc apply` reads it back (:func:`deployed_scale`)
so that what the platform scaled stays scaled.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from compiler import ir

_INSTANCE = re.compile(r"^(?P<module>.+)#(?P<rank>[0-9]+)$")


@dataclass(frozen=True)
class Scale:
    """A module's instance count and weights (None: the site's own weights, or equal)."""

    replicas: int
    weights: tuple[int, ...] | None = None


def rescale(site: ir.Site, scale: Mapping[str, Scale]) -> ir.Site:
    """``site`` with each scaled module's count (clamped to its range; a module
    without a range keeps its count) and weights (one per instance, else ignored)."""
    if not scale:
        return site
    modules = []
    for m in site.modules:
        s = scale.get(m.name)
        if s is None:
            modules.append(m)
            continue
        lo = m.min_replicas or m.replicas
        count = min(max(s.replicas, lo), m.most_replicas) if m.max_replicas else m.replicas
        weights = m.weights
        if s.weights is not None and len(s.weights) == count and all(w > 0 for w in s.weights):
            weights = tuple(s.weights)
        modules.append(
            dataclasses.replace(m, replicas=count, weights=weights, min_replicas=lo if m.max_replicas else 0)
        )
    return dataclasses.replace(site, modules=tuple(modules))


def counts(instances: Mapping[str, str]) -> dict[str, list[str]]:
    """Module -> its replica instances (``m#1``, ``m#2``...) in rank order, from
    instance -> module pairs (a module's lone unnumbered instance is not one)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for inst, module in instances.items():
        hit = _INSTANCE.match(inst)
        if hit and hit.group("module") == module:
            out.setdefault(module, []).append((int(hit.group("rank")), inst))
    return {m: [i for _, i in sorted(v)] for m, v in sorted(out.items())}


def deployed_scale(
    instances: Mapping[str, str], weights: Mapping[str, int], keep_weights: bool = True
) -> dict[str, Scale]:
    """The scale a deployed placement carries (instance -> module, instance ->
    weight): each replicated module's instance count and, with
    ``keep_weights``, its weights. :func:`rescale` takes from it only what
    the site being compiled allows (a count within its range)."""
    return {
        module: Scale(len(names), tuple(int(weights.get(i, 1)) for i in names) if keep_weights else None)
        for module, names in counts(instances).items()
    }
