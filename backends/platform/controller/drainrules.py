"""Switch rules that keep established TCP connections on the old instance
while a drain moves it, and send new ones to the new instance at once (pure:
flows in, flows out; docs/platform.md, "Drain").

The flow hash is per packet and says nothing about a connection's age, so
the switch is taught which connections are new: for every steering rule the
move changes (old instance -> new one), the drain adds, atomically with the
change itself, at priorities just above it:

* ``P+2``, TCP with SYN set (a connection's first packet in each direction:
  SYN forward, SYN-ACK back): a Nicira ``learn`` writes a *pin* for the
  connection's 5-tuple and tag into :data:`PIN_TABLE`, then the new rule's
  actions (the new instance);
* ``P+1``, any other TCP packet: ``resubmit`` to :data:`PIN_TABLE` (a pin sets
  register bit ``reg6[0]``) and then to :data:`SPLIT_TABLE`, where the pinned
  ones take the new rule's actions and the rest (connections established
  before the drain) the old rule's;
* the rule itself (``P``) now carries the new actions: UDP and everything
  else that is not TCP moves at once.

The old branch's packet counters tell when the old connections have ended
(silent for the drain's ``idle`` seconds) or the grace time is over; then
:func:`cleanup_ops` removes all of it and the pins, and the old instances stop.
Learned pins carry :data:`PIN_COOKIE` and are left out of every comparison of
the switch's tables with what the controller sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from backends.platform.controller.flows import Flow
from backends.platform.controller.plan import Op, Tables

#: Tables the compiled pipeline does not use: learned pins, and the old/new split.
PIN_TABLE = 251
SPLIT_TABLE = 250
#: The controller's own drain rules, and the pins the switch learns.
DRAIN_COOKIE = 0x07D5 << 48
PIN_COOKIE = 0x07D6 << 48
#: Register bit a pin sets.
PIN_REG = "reg6"
#: A pin outlives this many seconds without a packet (the drain removes them all at its end).
PIN_IDLE = 3600
_FAMILIES = (
    (0x0800, "ipv4_src_nxm", "ipv4_dst_nxm", 32),
    (0x86DD, "ipv6_src_nxm", "ipv6_dst_nxm", 128),
)


@dataclass
class DrainRules:
    """One switch's drain rules: ``flows`` (by key), the keys of the old
    branches (their counters measure the old connections), and the steering
    rules that could not be split (moved at once)."""

    flows: Tables = field(default_factory=dict)
    old_branches: list[Any] = field(default_factory=list)
    unsplit: list[str] = field(default_factory=list)

    def add_ops(self) -> list[Op]:
        """Helpers first, so that no rule ever points at an empty table."""
        order = {PIN_TABLE: 0, SPLIT_TABLE: 1}
        return [("add", f) for _, f in sorted(self.flows.items(), key=lambda kv: (order.get(kv[0][0], 2), kv[0][1]))]


def _flow(table: int, priority: int, match: Any, instructions: list[Any], what: str) -> Flow:
    entry = {"table_id": table, "priority": priority, "cookie": DRAIN_COOKIE, "match": {}, "actions": [{"type": what}]}
    return Flow(table, priority, DRAIN_COOKIE, match, tuple(instructions), json.dumps(entry, sort_keys=True))


def _match(base: Any, **extra: Any) -> Any:
    fields = dict(base.items())
    fields.update(extra)
    return parser.OFPMatch(**fields)


def _learn(eth_type: int, src: str, dst: str, bits: int) -> Any:
    spec = [
        parser.NXFlowSpecMatch(src=("vlan_vid", 0), dst=("vlan_vid", 0), n_bits=12),  # OVS: a 12-bit field
        parser.NXFlowSpecMatch(src=eth_type, dst=("eth_type_nxm", 0), n_bits=16),
        parser.NXFlowSpecMatch(src=6, dst=("ip_proto_nxm", 0), n_bits=8),
        parser.NXFlowSpecMatch(src=(src, 0), dst=(src, 0), n_bits=bits),
        parser.NXFlowSpecMatch(src=(dst, 0), dst=(dst, 0), n_bits=bits),
        parser.NXFlowSpecMatch(src=("tcp_src_nxm", 0), dst=("tcp_src_nxm", 0), n_bits=16),
        parser.NXFlowSpecMatch(src=("tcp_dst_nxm", 0), dst=("tcp_dst_nxm", 0), n_bits=16),
        parser.NXFlowSpecLoad(src=1, dst=(PIN_REG, 0), n_bits=1),
    ]
    return parser.NXActionLearn(table_id=PIN_TABLE, specs=spec, idle_timeout=PIN_IDLE, priority=1, cookie=PIN_COOKIE)


def _with_first(instructions: tuple, action: Any) -> list[Any]:
    """``instructions`` with ``action`` first in their apply-actions."""
    out, done = [], False
    for inst in instructions:
        if isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS and not done:
            out.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [action, *inst.actions]))
            done = True
        else:
            out.append(inst)
    if not done:
        out.insert(0, parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [action]))
    return out


def _resubmits() -> list[Any]:
    actions = [
        parser.NXActionResubmitTable(in_port=0xFFF8, table_id=PIN_TABLE),
        parser.NXActionResubmitTable(in_port=0xFFF8, table_id=SPLIT_TABLE),
    ]
    return [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]


Tlvs = tuple  # a match's canonical OXM TLVs: (class, field, value & mask, mask or None), sorted


def overlap(a: Tlvs, b: Tlvs) -> bool:
    """Whether some packet matches both: every field both constrain agrees on
    the bits both masks keep.  Conservative (a field spelt in two classes,
    or a missing prerequisite, counts as agreeing)."""
    fields = {(c, f): (v, m) for c, f, v, m in a}
    for c, f, v2, m2 in b:
        if (c, f) not in fields:
            continue
        v1, m1 = fields[(c, f)]
        if len(v1) != len(v2):
            continue
        both = int.from_bytes(m1 or b"\xff" * len(v1), "big") & int.from_bytes(m2 or b"\xff" * len(v2), "big")
        if int.from_bytes(v1, "big") & both != int.from_bytes(v2, "big") & both:
            return False
    return True


#: The field every steering rule matches exactly (its tag, OXM ``vlan_vid``):
#: two matches with different exact values there never meet.
_TAG = (ofp.OFPXMC_OPENFLOW_BASIC, ofp.OFPXMT_OFB_VLAN_VID)


def _tag(m: Tlvs) -> bytes | None:
    for c, f, v, mask in m:
        if (c, f) == _TAG:
            return v if mask is None else None
    return None


class _ByTag:
    """Matches (with an item each) indexed by their exact tag, so a lookup
    meets only the matches that may overlap: the same tag, or none exact.
    Linear in the rules of one tag instead of all of them."""

    def __init__(self) -> None:
        self.exact: dict[bytes, list[tuple[Tlvs, Any]]] = {}
        self.loose: list[tuple[Tlvs, Any]] = []

    def add(self, m: Tlvs, item: Any = None) -> None:
        tag = _tag(m)
        (self.loose if tag is None else self.exact.setdefault(tag, [])).append((m, item))

    def near(self, m: Tlvs) -> list[tuple[Tlvs, Any]]:
        """Every entry whose match may overlap ``m`` (a superset)."""
        tag = _tag(m)
        if tag is None:
            return [e for group in self.exact.values() for e in group] + self.loose
        return self.exact.get(tag, []) + self.loose

    def meets(self, m: Tlvs) -> bool:
        return any(overlap(m, x) for x, _ in self.near(m))


class _Occupied:
    """What a drain's split rules must not meet.  A split rule of ``R`` (at
    ``P``) at priority ``p`` is right only when no other rule of its table at
    a priority in ``(P, p]`` meets it: one at ``p`` would tie with it (which
    one wins is undefined), one between would lose packets to it that it won
    over ``R``.  The other rules are the new tables' and the split rules
    accepted so far (the same test both ways)."""

    def __init__(self, new: Tables) -> None:
        self.at: dict[tuple[int, int], _ByTag] = {}
        for f in new.values():
            self.at.setdefault((f.table_id, f.priority), _ByTag()).add(f.key[2])
        self.splits: dict[int, _ByTag] = {}

    def free(self, base: int, split: list[Flow]) -> bool:
        for f in split:
            t, p, m = f.table_id, f.priority, f.key[2]
            if any(self.at[(t, q)].meets(m) for q in range(base + 1, p + 1) if (t, q) in self.at):
                return False
            if t in self.splits:
                for x, (b, q) in self.splits[t].near(m):
                    if (base < q <= p or b < p <= q) and overlap(m, x):
                        return False
        return True

    def take(self, base: int, split: list[Flow]) -> None:
        for f in split:
            self.splits.setdefault(f.table_id, _ByTag()).add(f.key[2], (base, f.priority))


def drain_rules(old: Tables, new: Tables, ingress: frozenset[int]) -> DrainRules:
    """The split rules for every rule outside the ingress tables whose actions
    the move changes (same key in ``old`` and ``new``, other content).  A rule
    whose split rules would meet another rule at their priorities (a more
    specific variant just above it: marked packets, an in_port variant, or
    another rule's split), or whose entries in :data:`SPLIT_TABLE` would meet
    another split rule's there (that table cannot tell their tables apart),
    moves at once instead (``unsplit``)."""
    out = DrainRules()
    occupied = _Occupied(new)
    split_matches = _ByTag()  # of the rules split so far: their entries in SPLIT_TABLE
    changed = [k for k in sorted(new, key=repr) if k in old and old[k].canonical != new[k].canonical]
    for key in changed:
        o, n = old[key], new[key]
        if n.table_id in ingress or n.table_id < 0:
            continue  # a group changed under its id is replaced at once (its id has a digest: rare)
        fields = dict(n.match.items())
        families = [f for f in _FAMILIES if fields.get("eth_type", f[0]) == f[0]]
        if n.priority + 2 > 0xFFFF or fields.get("ip_proto", 6) != 6 or not families or n.table_id >= SPLIT_TABLE:
            out.unsplit.append(n.describe())
            continue
        here = []
        for eth, src, dst, bits in families:
            syn = _flow(
                n.table_id,
                n.priority + 2,
                _match(n.match, eth_type=eth, ip_proto=6, tcp_flags=(0x002, 0x002)),
                _with_first(n.instructions, _learn(eth, src, dst, bits)),
                "learn a pin, new instance",
            )
            rest = _flow(n.table_id, n.priority + 1, _match(n.match, eth_type=eth, ip_proto=6), _resubmits(), "split")
            here += [syn, rest]
        if not occupied.free(n.priority, here):
            out.unsplit.append(n.describe())
            continue
        split_new = _flow(
            SPLIT_TABLE, 2, _match(n.match, **{PIN_REG: (1, 1)}), list(n.instructions), "new instance (pinned)"
        )
        split_old = _flow(SPLIT_TABLE, 1, n.match, list(o.instructions), "old instance (established)")
        if split_matches.meets(n.key[2]):  # table 250 would not tell them apart
            out.unsplit.append(n.describe())
            continue
        split_matches.add(n.key[2])
        out.flows[split_new.key] = split_new
        out.flows[split_old.key] = split_old
        out.old_branches.append(split_old.key)
        occupied.take(n.priority, here)
        for f in here:
            out.flows[f.key] = f
    if out.flows:
        miss = _flow(PIN_TABLE, 0, parser.OFPMatch(), [], "no pin")
        out.flows[miss.key] = miss
    return out


def is_pin(flow: Flow) -> bool:
    return flow.cookie == PIN_COOKIE


def without_pins(tables: Tables) -> Tables:
    """What the switch holds less the pins it learned (never sent by the controller)."""
    return {k: f for k, f in tables.items() if not is_pin(f)}


def pins(tables: Tables) -> int:
    return sum(1 for f in tables.values() if is_pin(f))


def old_packets(tables: Tables, rules: DrainRules) -> int:
    """Packets the old branches carried so far (read back from the switch)."""
    total = 0
    for key in rules.old_branches:
        f = tables.get(key)
        if f is not None and f.stats is not None:
            total += int(f.stats.packet_count)
    return total


def cleanup_ops(rules: DrainRules) -> list[Op]:
    """Remove the drain rules (the split first, then its helpers) and every pin."""
    order = {PIN_TABLE: 2, SPLIT_TABLE: 1}
    ops: list[Op] = [
        ("delete", f) for _, f in sorted(rules.flows.items(), key=lambda kv: (order.get(kv[0][0], 0), kv[0][1]))
    ]
    if rules.flows:
        entry = json.dumps({"table_id": PIN_TABLE, "cookie": PIN_COOKIE, "actions": [{"type": "every pin"}]})
        ops.append(("delete_cookie", Flow(PIN_TABLE, 0, PIN_COOKIE, parser.OFPMatch(), (), entry)))
    return ops
