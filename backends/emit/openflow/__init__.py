"""OpenFlow 1.3 backends: ``ovs-ofctl`` text (``ofctl``) and Ryu/os-ken
``ofctl_rest`` JSON (``ofctl_json``), both rendered from ``SwitchTables``.

Shared here: the single "unsupported" error and field kinds; address spelling
is :mod:`.addresses`'s, the deterministic flow order (table, priority
descending, match) :mod:`.lines`'s.  :func:`render_switch` renders one
switch's files in one walk over its entries.
"""

from __future__ import annotations

from compiler.oxm_fields import FIELDS


class UnsupportedError(Exception):
    """The IR uses something this backend cannot express."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"unsupported: {feature}")
        self.feature = feature


def field_kind(name: str) -> str:
    spec = FIELDS.get(name)
    if spec is None:
        raise UnsupportedError(f"field {name}")
    return spec.kind


from backends.emit.openflow.addresses import ADDRESS_FORMATS, fmt_ipv4, fmt_ipv6, fmt_mac  # noqa: E402
from backends.emit.openflow.lines import render_lines  # noqa: E402
from backends.emit.openflow.ofctl import OFCTL, lines_text, to_groups, to_ofctl  # noqa: E402
from backends.emit.openflow.ofctl_json import JsonFormat, json_text, to_json  # noqa: E402
from compiler.flowir import SwitchTables  # noqa: E402


def render_switch(tables: SwitchTables, dpid: int) -> tuple[str, str | None, str]:
    """(``.ofctl``, ``.groups`` or None, ``.json``) of one switch, both flow
    files from one walk over its entries."""
    try:
        ofctl, flows = render_lines(tables.entries, OFCTL, JsonFormat(dpid))
    except UnsupportedError:
        to_ofctl(tables)  # the error rendering the files one by one meets first
        to_groups(tables)
        raise
    return lines_text(ofctl), to_groups(tables), json_text(tables, dpid, flows)


__all__ = [
    "ADDRESS_FORMATS",
    "UnsupportedError",
    "field_kind",
    "fmt_ipv4",
    "fmt_ipv6",
    "fmt_mac",
    "render_switch",
    "to_groups",
    "to_json",
    "to_ofctl",
]
