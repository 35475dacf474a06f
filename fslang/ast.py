"""The typed FSL syntax tree.

Every node is a frozen dataclass with a ``span`` (excluded from equality, so a
printed-and-reparsed program compares equal to the original).  Values are
already converted (sizes in bytes, rates in bits or packets per second,
addresses as ``ipaddress`` objects) so later stages never re-parse text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from fslang.source import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Name:
    text: str
    span: Span = _span()


# ---- values ---------------------------------------------------------------
@dataclass(frozen=True)
class IntVal:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class RangeVal:
    lo: int
    hi: int
    span: Span = _span()


@dataclass(frozen=True)
class SizeVal:
    bytes: int
    text: str
    span: Span = _span()


@dataclass(frozen=True)
class RateVal:
    per_second: float
    unit: str  # "bps" or "pps"
    text: str
    span: Span = _span()


@dataclass(frozen=True)
class PercentVal:
    value: float
    text: str
    span: Span = _span()


@dataclass(frozen=True)
class AddrVal:
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    span: Span = _span()


@dataclass(frozen=True)
class PrefixVal:
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    span: Span = _span()


@dataclass(frozen=True)
class MacVal:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class StringVal:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class BoolVal:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class RefVal:
    name: Name
    span: Span = _span()


@dataclass(frozen=True)
class SetVal:
    items: tuple[Value, ...]
    span: Span = _span()


Scalar = IntVal | RangeVal | SizeVal | RateVal | PercentVal | AddrVal | PrefixVal | MacVal
Value = Scalar | StringVal | BoolVal | RefVal | SetVal


# ---- match expressions ----------------------------------------------------
@dataclass(frozen=True)
class MProto:
    proto: str  # ip ip6 arp tcp udp icmp icmp6
    span: Span = _span()


@dataclass(frozen=True)
class MProtoNum:
    number: int
    span: Span = _span()


@dataclass(frozen=True)
class MHost:
    dir: str | None  # "src" | "dst" | None (either)
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class MNet:
    dir: str | None
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class MPort:
    dir: str | None
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class MVlan:
    vid: int
    span: Span = _span()


@dataclass(frozen=True)
class MEther:
    dir: str | None
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class MDscp:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class MRef:
    name: Name
    span: Span = _span()


@dataclass(frozen=True)
class MNot:
    expr: MatchExpr
    span: Span = _span()


@dataclass(frozen=True)
class MAnd:
    items: tuple[MatchExpr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class MOr:
    items: tuple[MatchExpr, ...]
    span: Span = _span()


MatchExpr = MProto | MProtoNum | MHost | MNet | MPort | MVlan | MEther | MDscp | MRef | MNot | MAnd | MOr


# ---- pipelines ------------------------------------------------------------
@dataclass(frozen=True)
class Branch:
    label: Name | None  # None = else
    pipeline: Pipeline
    span: Span = _span()


@dataclass(frozen=True)
class PUse:
    """A module or box as a stage, maybe replicated, maybe split by output."""

    name: Name
    replicas: IntVal | None = None  # the count, or the low end of a range `m * A..B`
    by: str | None = None  # "src" | "dst" | "flow"; None = not given
    branches: tuple[Branch, ...] | None = None
    span: Span = _span()
    upto: IntVal | None = None  # B of `m * A..B`: the platform may scale up to it
    weights: tuple[IntVal, ...] = ()  # `weights 3, 1`: shares of new flows per replica


@dataclass(frozen=True)
class CaseArm:
    guard: MatchExpr | None  # None = else
    pipeline: Pipeline
    span: Span = _span()


@dataclass(frozen=True)
class PCase:
    arms: tuple[CaseArm, ...]
    span: Span = _span()


@dataclass(frozen=True)
class PCopy:
    percent: PercentVal
    target: Pipeline
    span: Span = _span()


@dataclass(frozen=True)
class PPass:
    span: Span = _span()


@dataclass(frozen=True)
class PDrop:
    span: Span = _span()


@dataclass(frozen=True)
class PSerial:
    stages: tuple[Stage, ...]
    span: Span = _span()


Stage = PUse | PCase | PCopy | PPass | PDrop | PSerial
Pipeline = Stage


# ---- statements -----------------------------------------------------------
@dataclass(frozen=True)
class PortRef:
    switch: Name
    port: int
    span: Span = _span()


@dataclass(frozen=True)
class PortSpec:
    switch: Name
    lo: int
    hi: int | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Option:
    """A statement option as written (``cores 8``): kept for duplicate checks."""

    key: str
    value: Any  # by key: an int, a Size, a Name, a list of names or values (the grammar decides)
    span: Span = _span()


@dataclass(frozen=True)
class SiteStmt:
    name: Name
    span: Span = _span()


@dataclass(frozen=True)
class SwitchStmt:
    name: Name
    options: tuple[Option, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class LinkStmt:
    a: PortRef
    b: PortRef
    span: Span = _span()


@dataclass(frozen=True)
class HostStmt:
    name: Name
    at: tuple[PortRef, ...]
    options: tuple[Option, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class EdgeStmt:
    name: Name
    at: tuple[PortSpec, ...]
    options: tuple[Option, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class BoxStmt:
    name: Name
    in_port: PortRef
    out_port: PortRef
    span: Span = _span()


@dataclass(frozen=True)
class SetStmt:
    name: Name
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class ClassStmt:
    name: Name
    match: MatchExpr
    span: Span = _span()


@dataclass(frozen=True)
class Param:
    name: Name
    value: Value | MatchExpr
    span: Span = _span()


@dataclass(frozen=True)
class ModuleStmt:
    name: Name
    type: Name
    params: tuple[Param, ...] = ()
    options: tuple[Option, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class PolicyStmt:
    name: Name
    sources: tuple[Name, ...] = ()
    match: MatchExpr | None = None
    pipeline: Pipeline | None = None  # None = `drop` action
    symmetric: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class PinStmt:
    module: Name
    host: Name
    span: Span = _span()


@dataclass(frozen=True)
class AvoidStmt:
    module: Name
    host: Name
    span: Span = _span()


@dataclass(frozen=True)
class PlacementStmt:
    mode: str
    span: Span = _span()


@dataclass(frozen=True)
class DefaultStmt:
    action: str
    span: Span = _span()


Statement = (
    SiteStmt
    | SwitchStmt
    | LinkStmt
    | HostStmt
    | EdgeStmt
    | BoxStmt
    | SetStmt
    | ClassStmt
    | ModuleStmt
    | PolicyStmt
    | PinStmt
    | AvoidStmt
    | PlacementStmt
    | DefaultStmt
)


@dataclass(frozen=True)
class Program:
    statements: tuple[Statement, ...]


def _fast_inits(classes: list[type]) -> None:
    """Give every node an ``__init__`` that fills its instance dict directly.

    The one ``dataclass(frozen=True)`` writes sets each field through
    ``object.__setattr__``, and a parse builds a node per syntax element (a
    10,000-policy site: hundreds of thousands).  Same parameters, defaults
    and order; the classes stay frozen (``__setattr__`` still refuses).  One
    ``exec`` for all of them."""
    src: list[str] = []
    ns: dict[str, Any] = {}
    for k, cls in enumerate(classes):
        params, body = [], []
        for f in fields(cls):
            if f.default_factory is not MISSING or not f.init:  # pragma: no cover - no node has them
                raise TypeError(f"{cls.__name__}.{f.name}: only plain fields and defaults")
            if f.default is MISSING:
                params.append(f.name)
            else:
                ns[f"_d{k}_{f.name}"] = f.default
                params.append(f"{f.name}=_d{k}_{f.name}")
            body.append(f"    d[{f.name!r}] = {f.name}")
        src.append(f"def _init{k}(self, {', '.join(params)}):\n    d = self.__dict__\n" + "\n".join(body))
    exec("\n".join(src), ns)  # noqa: S102 - code generated above from the classes' own fields
    for k, cls in enumerate(classes):
        init = ns[f"_init{k}"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        init.__module__ = __name__
        cls.__init__ = init  # type: ignore[misc]


_fast_inits(
    [c for c in list(globals().values()) if isinstance(c, type) and c.__module__ == __name__ and is_dataclass(c)]
)
