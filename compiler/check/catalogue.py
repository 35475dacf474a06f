"""The built-in module catalogue, declared as data.

Each type names its parameter schema (a pydantic model: unknown, missing and
mistyped parameters are found by validation, not by hand-written checks), its
outputs, its default kind and the Click template that implements it.
Resources are per instance and default by kind.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.functional_validators import AfterValidator

from compiler import ir
from fslang import ast as A

KINDS = ("click", "process", "vm")
GiB = 2**30
MiB = 2**20
DEFAULT_RESOURCES: dict[str, tuple[int, int]] = {  # kind -> (cores, memory bytes)
    "click": (1, 512 * MiB),
    "process": (1, 256 * MiB),
    "vm": (2, 2 * GiB),
}


def _is_match(v: Any) -> Any:
    if not isinstance(v, A.MatchExpr.__args__):
        raise ValueError("expected a match expression")
    return v


def _is_addr(v: Any) -> Any:
    if not isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise ValueError("expected an IP address")
    return v


def _is_addr_set(v: Any) -> Any:
    items = v if isinstance(v, tuple) else (v,)
    if not items or not all(isinstance(i, (ipaddress.IPv4Address, ipaddress.IPv6Address)) for i in items):
        raise ValueError("expected a set of IP addresses like {10.0.0.1, 10.0.0.2}")
    return items


def _is_rate(v: Any) -> Any:
    """A rate, as the IR's own value (no syntax node goes past the check)."""
    if not isinstance(v, A.RateVal):
        raise ValueError("expected a rate like 100Mbps or 1.5Mpps")
    return ir.Rate(v.per_second, "pps" if v.unit == "pps" else "bps", v.text)


def _is_size(v: Any) -> Any:
    if not isinstance(v, A.SizeVal):
        raise ValueError("expected a size like 64KiB")
    if v.bytes < 1:
        raise ValueError("expected a size above zero")
    return ir.Size(v.bytes, v.text)


MatchParam = Annotated[Any, AfterValidator(_is_match)]
AddrParam = Annotated[Any, AfterValidator(_is_addr)]
AddrSetParam = Annotated[Any, AfterValidator(_is_addr_set)]
RateParam = Annotated[Any, AfterValidator(_is_rate)]
SizeParam = Annotated[Any, AfterValidator(_is_size)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True)


class FirewallParams(_Params):
    allow: MatchParam | None = None
    deny: MatchParam | None = None

    @model_validator(mode="after")
    def _one(self) -> FirewallParams:
        if self.allow is None and self.deny is None:
            raise ValueError("a firewall needs `allow` and/or `deny`")
        return self


class MonitorParams(_Params):
    sink: bool = False


class RatelimitParams(_Params):
    rate: RateParam
    burst: SizeParam


class NatParams(_Params):
    to: AddrParam


class LoadbalanceParams(_Params):
    vip: AddrParam
    backends: AddrSetParam


class CryptoParams(_Params):
    spi: int = Field(ge=256, le=2**32 - 1)  # SPIs 1..255 are reserved by IANA
    key: str = Field(min_length=1)


class TunnelParams(_Params):
    remote: AddrParam
    local: AddrParam


class IdsParams(_Params):
    rules: str = Field(min_length=1)


class NoParams(_Params):
    pass


class ProcessParams(_Params):
    command: str = Field(min_length=1)


@dataclass(frozen=True)
class ModuleType:
    name: str
    params: type[_Params] | None  # None: every parameter is an output label with a MATCH
    outputs: tuple[str, ...] | None  # None: the labels, then `else`
    default_kind: str
    template: str  # Click template implementing it (backends/click/templates/)
    sink_param: str | None = None  # a bool parameter that, when true, removes every output
    kinds: tuple[str, ...] = KINDS  # the kinds it can run as

    def outputs_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        """The outputs of one module of this type, given its parameters."""
        if self.sink_param and params.get(self.sink_param):
            return ()
        if self.outputs is None:
            return tuple(params) + ("else",)
        return self.outputs


CATALOGUE: dict[str, ModuleType] = {
    t.name: t
    for t in (
        ModuleType("firewall", FirewallParams, ("out",), "click", "firewall.click.j2"),
        ModuleType("classify", None, None, "click", "classify.click.j2"),
        ModuleType("monitor", MonitorParams, ("out",), "click", "monitor.click.j2", sink_param="sink"),
        ModuleType("ratelimit", RatelimitParams, ("out",), "click", "ratelimit.click.j2"),
        ModuleType("nat", NatParams, ("out",), "click", "nat.click.j2"),
        ModuleType("loadbalance", LoadbalanceParams, ("out",), "click", "loadbalance.click.j2"),
        ModuleType("encrypt", CryptoParams, ("out",), "click", "encrypt.click.j2"),
        ModuleType("decrypt", CryptoParams, ("out",), "click", "decrypt.click.j2"),
        ModuleType("tunnel", TunnelParams, ("out",), "click", "tunnel.click.j2"),
        ModuleType("ids", IdsParams, ("out", "alert"), "vm", "ids.click.j2"),
        ModuleType("dpi", NoParams, ("out",), "vm", "dpi.click.j2"),
        ModuleType("process", ProcessParams, ("out",), "process", "process.click.j2", kinds=("process",)),
    )
}

# How a parameter's declared type reads an FSL value; used to say what was expected.
EXPECTED: dict[str, str] = {
    "MatchParam": "a match expression",
    "AddrParam": "an IP address",
    "AddrSetParam": "a set of IP addresses",
    "RateParam": "a rate",
    "SizeParam": "a size",
    "bool": "true or false",
    "int": "a number",
    "str": 'a string "..."',
}
