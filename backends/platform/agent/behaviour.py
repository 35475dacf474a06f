"""The reference behaviour of a module instance, on real frames (pure).

``compiler.modulemodel.default_oracle`` decides which output a packet takes
(the same model the interpreter and the simulator use); this module turns
that into the answer frame a host's Click configuration expects: same VLAN
id, the output's index in the PCP bits, or no frame when the module drops or
consumes the packet.

Replies are decided per flow, as the interpreter does (docs/semantics.md):
the instance remembers the flows it has seen (up to :data:`MAX_FLOWS`), and a
packet whose reverse flow it saw first is decided on the swapped packet, the
forward orientation; so a firewall passes the replies of the flows it
allows, as a stateful one does.  (A host's Click configuration tells the
directions apart by tag; a `vm` or `process` instance sees only the packet.)

The module is built from the site source (``compiler.check.frontend``); without a
source (or for a module the source does not know) it is a pass-through with
outputs ``out`` (and ``alert``), which is exactly the model of every module
type whose decision does not depend on parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from backends.platform.agent import frames
from compiler import ir
from compiler.verification.modulemodel import default_oracle, swapped

MAX_FLOWS = 65536
FlowKey = tuple[int, ...]
_KEY_FIELDS = (
    "eth_type",
    "ipv4_src",
    "ipv4_dst",
    "ipv6_src",
    "ipv6_dst",
    "ip_proto",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
)


def flow_key(pkt: Mapping[str, int]) -> FlowKey:
    return tuple(pkt.get(f, -1) for f in _KEY_FIELDS)


@dataclass(frozen=True)
class Decision:
    """What happened to one frame: ``answer`` is None when it was dropped."""

    label: str | None
    answer: bytes | None


@dataclass
class Behaviour:
    """One instance's reference behaviour and its counters."""

    instance: str
    module: ir.Module | None
    note: str = ""
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    dropped: int = 0
    untagged: int = 0
    outputs: dict[str, int] = field(default_factory=dict)
    flows: OrderedDict[FlowKey, None] = field(default_factory=OrderedDict)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.module.outputs if self.module is not None else ("out",)

    @property
    def type(self) -> str:
        return self.module.type if self.module is not None else "pass-through"

    def handle(self, tci: int | None, frame: bytes) -> Decision:
        """Judge a frame whose outer tag the caller already removed (``tci``), or
        a frame that may still carry it (``tci`` None: taken from the frame)."""
        if tci is None:
            split = frames.outer_tag(frame)
            if split is None:
                self.untagged += 1  # Click only ever sends tagged frames: not ours
                return Decision(None, None)
            tci, frame = split
        self.packets_in += 1
        self.bytes_in += len(frame)
        label = "out" if self.module is None else default_oracle(self.module, self.instance, self.view(frame))
        if label is None:
            self.dropped += 1
            return Decision(None, None)
        index = self.labels.index(label)
        self.outputs[label] = self.outputs.get(label, 0) + 1
        self.packets_out += 1
        return Decision(label, frames.with_tag(frame, tci & 0x0FFF, index))

    def view(self, frame: bytes) -> dict[str, int]:
        """The packet as the module judges it: swapped when it is a reply of a known flow."""
        pkt = frames.decode(frame)
        if "ip_proto" not in pkt:
            return pkt
        key = flow_key(pkt)
        rev = swapped(pkt)
        if key not in self.flows and flow_key(rev) in self.flows:
            return rev
        self.flows[key] = None
        self.flows.move_to_end(key)
        if len(self.flows) > MAX_FLOWS:
            self.flows.popitem(last=False)
        return pkt

    def stats(self) -> dict[str, object]:
        return {
            "instance": self.instance,
            "type": self.type,
            "packets": self.packets_in,
            "packets_in": self.packets_in,
            "bytes": self.bytes_in,
            "packets_out": self.packets_out,
            "dropped": self.dropped,
            "untagged": self.untagged,
            "outputs": dict(sorted(self.outputs.items())),
            "note": self.note,
        }

    def seed(self, stats: dict[str, object]) -> None:
        """Carry counters over from an earlier run (a restart, or a move from another host)."""
        for name, key in (
            ("packets_in",) * 2,
            ("packets_out",) * 2,
            ("dropped",) * 2,
            ("untagged",) * 2,
            ("bytes_in", "bytes"),
        ):
            value = stats.get(key)
            if isinstance(value, int):
                setattr(self, name, value)
        outs = stats.get("outputs")
        if isinstance(outs, dict):
            self.outputs = {str(k): int(v) for k, v in outs.items()}


def module_from_source(source: str, module: str) -> tuple[ir.Module | None, str]:
    """(the module of ``source`` named ``module``, a note saying what was used)."""
    if not source.strip():
        return None, "no site source: pass-through reference behaviour (every frame to output 0)"
    from compiler.check.frontend import run  # the front end is only needed when a source is given

    result = run("site.fs", source)
    if result.site is None:
        first = next((d.message for d in result.diagnostics if d.severity == "error"), "?")
        return None, f"the site source does not check ({first}): pass-through reference behaviour"
    for m in result.site.modules:
        if m.name == module:
            return m, f"reference behaviour of module type `{m.type}`"
    return None, f"module `{module}` is not in the site source: pass-through reference behaviour"


def module_name(instance: str) -> str:
    """``ids#2`` -> ``ids``."""
    return instance.partition("#")[0]
