"""The checked site: the typed IR every stage after `check` works on.

Frozen dataclasses only; names are resolved, values converted, ports
expanded, match expressions compiled to exact header spaces.  Nothing here
refers to syntax except ``Span``s kept for diagnostics of later stages.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from compiler.headerspace.matchset import MatchSet
from compiler.headerspace.space import HeaderSpace
from fslang.source import NO_SPAN, Span

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
PortId = tuple[str, int]  # (switch, OpenFlow port number)
ModuleKind = Literal["click", "process", "vm"]
HashBy = Literal["flow", "src", "dst"]
DefaultAction = Literal["forward", "drop"]
Direction = Literal["forward", "reverse"]  # of a policy: as written, or the reply of a symmetric one


@dataclass(frozen=True)
class Rate:
    """A checked rate parameter: ``per_second`` bits (``bps``) or packets (``pps``)."""

    per_second: float
    unit: Literal["bps", "pps"]
    text: str  # as written, for comments in generated configurations


@dataclass(frozen=True)
class Size:
    """A checked size parameter, in bytes."""

    bytes: int
    text: str  # as written


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Switch:
    name: str
    dpid: int
    ports: int | None  # None: not declared, no limit checked
    tcam: int | None  # None: no budget
    openflow: str = "1.3"
    ovs: bool = False  # Open vSwitch: its extensions may be used (masked L4 ports, ct, learn)
    span: Span = _span()


@dataclass(frozen=True)
class Link:
    a: PortId
    b: PortId
    span: Span = _span()


@dataclass(frozen=True)
class Host:
    name: str
    ports: tuple[PortId, ...]
    cores: int
    memory: int  # bytes
    runs: frozenset[str]
    spare: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Edge:
    name: str
    index: int  # the value of the `in_edge` header-space field
    ports: tuple[PortId, ...]
    nets: tuple[IPNet, ...]
    default: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Box:
    name: str
    in_port: PortId  # where the switch sends packets to the appliance
    out_port: PortId  # where they come back
    span: Span = _span()


@dataclass(frozen=True)
class Module:
    name: str
    type: str
    kind: ModuleKind
    cores: int  # per instance
    memory: int  # per instance, bytes
    replicas: int
    params: tuple[tuple[str, Any], ...]  # validated values (no syntax: Rate, Size, addresses...), in written order
    outputs: tuple[str, ...]  # () = a sink
    image: str | None = None
    labels: tuple[tuple[str, HeaderSpace], ...] = ()  # classify: label -> header space
    span: Span = _span()
    max_replicas: int = 0  # B of `replicas A..B` (``replicas`` is A, what is placed now); 0 = a fixed count
    weights: tuple[int, ...] = ()  # `weights 3, 1`: one per replica up to the most it may have; () = equal
    min_replicas: int = (
        0  # A of the range once the platform scaled it (``replicas`` is then its count); 0 = ``replicas``
    )

    @property
    def is_sink(self) -> bool:
        return not self.outputs

    @property
    def most_replicas(self) -> int:
        """The most instances the module may have (B of a range, else its count)."""
        return max(self.replicas, self.max_replicas)

    def weight_of(self, rank: int) -> int | None:
        """The user's weight of replica ``rank`` (1-based), None when not given."""
        return self.weights[rank - 1] if 0 < rank <= len(self.weights) else None

    def instance_names(self) -> tuple[str, ...]:
        if self.replicas == 1 and not self.max_replicas:  # a range names `m#1` even alone: it may grow
            return (self.name,)
        return tuple(f"{self.name}#{k}" for k in range(1, self.replicas + 1))


# ---- pipelines ---------------------------------------------------------------
@dataclass(frozen=True)
class Pass:
    span: Span = _span()


@dataclass(frozen=True)
class Drop:
    span: Span = _span()


@dataclass(frozen=True)
class Use:
    """A module or box stage.  ``branches`` maps outputs to their pipelines
    (``None`` label = else); a module without branches sends every output on."""

    target: str
    is_box: bool = False
    hash_by: HashBy = "flow"
    branches: tuple[tuple[str | None, Pipeline], ...] | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Case:
    arms: tuple[tuple[MatchSet | None, Pipeline], ...]  # None guard = else
    span: Span = _span()


@dataclass(frozen=True)
class Copy:
    percent: float
    target: Pipeline
    span: Span = _span()


@dataclass(frozen=True)
class Serial:
    stages: tuple[Pipeline, ...]
    span: Span = _span()


Pipeline = Pass | Drop | Use | Case | Copy | Serial


@dataclass(frozen=True)
class Policy:
    name: str
    index: int  # position in first-match order
    sources: tuple[str, ...]  # edge names; () = every edge
    match: MatchSet  # including the `from` edges and well-formedness
    pipeline: Pipeline  # `drop` policies have Drop()
    symmetric: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Site:
    name: str
    switches: tuple[Switch, ...]
    links: tuple[Link, ...]
    hosts: tuple[Host, ...]
    edges: tuple[Edge, ...]
    boxes: tuple[Box, ...]
    modules: tuple[Module, ...]
    policies: tuple[Policy, ...]
    pins: tuple[tuple[str, str], ...] = ()  # (module, host)
    avoids: tuple[tuple[str, str], ...] = ()
    placement: str = "spread"
    default_action: DefaultAction = "forward"

    def switch(self, name: str) -> Switch:
        return next(s for s in self.switches if s.name == name)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def edge(self, name: str) -> Edge:
        return next(e for e in self.edges if e.name == name)

    def module(self, name: str) -> Module:
        return next(m for m in self.modules if m.name == name)

    def box(self, name: str) -> Box:
        return next(b for b in self.boxes if b.name == name)
