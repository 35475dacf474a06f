"""Parsing ``ovs-appctl ofproto/trace`` output: where a packet goes and what it looks like after the actions.

Pure text parsing, apart from the OVS instance that produces the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: OpenFlow 1.3 number of the bridge's LOCAL port, as reported in output_ports.
OFPP_LOCAL = 0xFFFFFFFE


@dataclass
class TraceResult:
    """Parsed ``ovs-appctl ofproto/trace`` output.

    ``output_ports``: OpenFlow port numbers the packet is sent out of, in the
    order of the OpenFlow actions (``output:N`` lines, including those in
    group buckets and resubmits; ``IN_PORT`` resolves to the packet's in_port,
    ``LOCAL`` to :data:`OFPP_LOCAL`). Outputs that OVS refuses (to the input
    port, to a nonexistent port, ...: a ``>>`` line follows) are left out.
    Datapath port numbers (``Datapath actions``) are *not* OpenFlow numbers
    and are not used. ``outputs`` has the same as ``(bridge, port)`` pairs
    (a trace crosses patch ports into other bridges).
    ``final_flow``: the packet's headers after all actions (the ``Flow:``
    line when OVS says "unchanged"), e.g. with ``mpls_label=5`` after a push.
    ``dropped``: the (last) datapath actions are ``drop``.
    """

    raw: str
    flow: str = ""
    final_flow: str = ""
    output_ports: list[int] = field(default_factory=list)
    outputs: list[tuple[str, int]] = field(default_factory=list)
    datapath_actions: str = ""
    dropped: bool = False
    to_controller: bool = False

    @classmethod
    def parse(cls, raw: str) -> TraceResult:
        res = cls(raw=raw)
        lines = raw.splitlines()
        flow = ""
        bridge = ""
        for i, line in enumerate(lines):
            s = line.strip()
            if line.startswith("Flow: "):
                flow = s[len("Flow: ") :]
                if not res.flow:
                    res.flow = flow
                continue
            if s.startswith("Final flow: "):
                v = s[len("Final flow: ") :]
                res.final_flow = flow if v == "unchanged" else v
                continue
            if s.startswith("Datapath actions: "):
                res.datapath_actions = s[len("Datapath actions: ") :]
                continue
            m = re.fullmatch(r'bridge\("(.+)"\)', s)
            if m:
                bridge = m.group(1)
                continue
            port: int | None = None
            m = re.fullmatch(r"output:(\d+)", s)
            if m:
                port = int(m.group(1))
            elif s == "IN_PORT":
                m = re.search(r"(?:^|,)in_port=(\d+)", flow)
                port = int(m.group(1)) if m else None
            elif s == "LOCAL":
                port = OFPP_LOCAL
            elif s.startswith("CONTROLLER:") or s.startswith("controller("):
                if not _refused(lines, i):
                    res.to_controller = True
                continue
            if port is not None and not _refused(lines, i):
                res.output_ports.append(port)
                res.outputs.append((bridge, port))
        if not res.final_flow:
            res.final_flow = flow
        res.dropped = res.datapath_actions == "drop"
        return res


def _refused(lines: list[str], i: int) -> bool:
    """True when the action on line i is followed by an OVS '>> ...' complaint."""
    for nxt in lines[i + 1 :]:
        t = nxt.strip()
        if t:
            return t.startswith(">>")
    return False
