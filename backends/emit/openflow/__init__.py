"""OpenFlow 1.3 backends: ``ovs-ofctl`` text (``ofctl``) and Ryu/os-ken
``ofctl_rest`` JSON (``ofctl_json``), both rendered from ``SwitchTables``.

Shared here: the single "unsupported" error, address formatting and the
deterministic flow order (table, priority descending, match).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from compiler.flowir import FlowEntry, SwitchTables
from compiler.oxm_fields import FIELDS


class UnsupportedError(Exception):
    """The IR uses something this backend cannot express."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"unsupported: {feature}")
        self.feature = feature


def fmt_mac(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def fmt_ipv4(v: int) -> str:
    return str(ipaddress.IPv4Address(v))


def fmt_ipv6(v: int) -> str:
    return str(ipaddress.IPv6Address(v))


ADDRESS_FORMATS: dict[str, Callable[[int], str]] = {
    "mac": fmt_mac,
    "ipv4": fmt_ipv4,
    "ipv6": fmt_ipv6,
}


def field_kind(name: str) -> str:
    spec = FIELDS.get(name)
    if spec is None:
        raise UnsupportedError(f"field {name}")
    return spec.kind


def ordered_entries(tables: SwitchTables, render: Callable[[FlowEntry], str]) -> list[tuple[FlowEntry, str]]:
    """Entries with their rendering, by table, priority descending, match and
    finally the rendering itself (so equal matches still sort stably)."""
    rendered = [(e, render(e)) for e in tables.entries]
    rendered.sort(key=lambda er: (er[0].table_id, -er[0].priority, er[0].match, er[1]))
    return rendered


from backends.emit.openflow.ofctl import to_groups, to_ofctl  # noqa: E402
from backends.emit.openflow.ofctl_json import to_json  # noqa: E402

__all__ = ["UnsupportedError", "to_groups", "to_json", "to_ofctl"]
