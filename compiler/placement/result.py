"""What placement hands on: the placement itself (and its ``placement.json`` form), its score, the result.

Read by every later stage, the CLI and the platform, without the search that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from pydantic import ValidationError

from compiler.placement.document import Amount, PlacedInstance, PlacementDocument, PlacementHost
from fslang.diagnostics import Diagnostic


class Usage(NamedTuple):
    cores_used: int
    cores_free: int
    memory_used: int
    memory_free: int


@dataclass(frozen=True)
class Placement:
    """Which host runs each instance, with enough of the site to be read alone
    (``--previous`` files, the JSON report)."""

    assignments: tuple[tuple[str, str], ...]  # instance -> host, sorted by instance
    weights: tuple[tuple[str, int], ...]  # instance -> load-balancing weight
    instances: tuple[tuple[str, str, str, int, int], ...] = ()  # (instance, module, kind, cores, memory)
    hosts: tuple[tuple[str, int, int, bool], ...] = ()  # (host, cores, memory, spare), sorted

    @cached_property
    def _where(self) -> dict[str, str]:
        return dict(self.assignments)

    def host_of(self, instance: str) -> str:
        return self._where[instance]

    def instances_on(self, host: str) -> tuple[str, ...]:
        return tuple(i for i, h in self.assignments if h == host)

    def usage(self) -> dict[str, Usage]:
        """Per host: cores and memory used and free."""
        size = {i: (c, m) for i, _, _, c, m in self.instances}
        used = {h: [0, 0] for h, *_ in self.hosts}
        for inst, h in self.assignments:
            c, m = size.get(inst, (0, 0))
            used.setdefault(h, [0, 0])
            used[h][0] += c
            used[h][1] += m
        total = {h: (c, m) for h, c, m, _ in self.hosts}
        return {
            h: Usage(u[0], total.get(h, (0, 0))[0] - u[0], u[1], total.get(h, (0, 0))[1] - u[1])
            for h, u in sorted(used.items())
        }

    def to_json(self) -> str:
        """placement.json (:class:`PlacementDocument`): sorted keys, indent 2."""
        weights = dict(self.weights)
        info = {i: (mod, kind, c, m) for i, mod, kind, c, m in self.instances}
        placed = {}
        for inst, h in self.assignments:
            mod, kind, c, m = info.get(inst, ("", "", 0, 0))
            placed[inst] = PlacedInstance(host=h, module=mod, kind=kind, cores=c, memory=m, weight=weights.get(inst, 1))
        use = self.usage()
        hosts = {
            h: PlacementHost(
                cores=Amount(used=use[h].cores_used, free=use[h].cores_free, total=c),
                memory=Amount(used=use[h].memory_used, free=use[h].memory_free, total=m),
                spare=spare,
                instances=list(self.instances_on(h)),
            )
            for h, c, m, spare in self.hosts
        }
        return PlacementDocument(instances=placed, hosts=hosts).to_text()

    @classmethod
    def from_json(cls, text: str) -> Placement:
        """Read what ``to_json`` wrote; ``ValueError`` says what is malformed."""
        try:
            doc = PlacementDocument.from_text(text)
        except ValueError as e:
            first = e.errors()[0] if isinstance(e, ValidationError) and e.errors() else None
            where = ".".join(str(x) for x in first["loc"]) if first else ""
            why = f"{where}: {first['msg']}" if first else str(e)
            raise ValueError(f"not a placement file: {why}") from None
        insts = doc.instances
        return cls(
            tuple(sorted((i, v.host) for i, v in insts.items())),
            tuple(sorted((i, v.weight) for i, v in insts.items())),
            tuple(sorted((i, v.module, v.kind, v.cores, v.memory) for i, v in insts.items())),
            tuple(sorted((h, v.cores.total, v.memory.total, v.spare) for h, v in doc.hosts.items())),
        )


@dataclass(frozen=True)
class Score:
    """The objective of one placement (see ``compiler.placement.model``)."""

    mode: str
    spare: int  # cores used on spare hosts
    replica_pairs: int
    crossings: int
    max_load: float  # highest cores used / cores of a host
    hosts_used: int

    def key(self) -> tuple[float, ...]:
        if self.mode == "fewest":  # consolidation: hosts in use before replica pairs
            return (self.spare, self.hosts_used, self.replica_pairs, self.crossings)
        if self.mode == "pack":
            return (self.spare, self.replica_pairs, self.hosts_used, self.crossings)
        return (self.spare, self.replica_pairs, self.crossings, round(self.max_load, 9))


@dataclass(frozen=True)
class PlacementResult:
    placement: Placement | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    moved: tuple[tuple[str, str, str], ...] = ()  # (instance, old host, new host)
    score: Score | None = None
    proven_optimal: bool = False  # exact mode only: the solver proved it
