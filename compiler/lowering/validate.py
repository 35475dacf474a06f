"""Static checks on ``SwitchTables``: what a switch would reject at load time,
or what makes the pipeline's behaviour undefined.

It mirrors OpenFlow 1.3 plus the checks Open vSwitch applies when a flow is
added (``ofpacts_check``): a ``set_field``, ``pop_vlan`` or ``pop_mpls`` must
be justified by the match and the preceding actions (e.g. ``set_field`` on
ipv4_dst needs ``eth_type=0x0800`` in the match and no ``push_mpls`` before
it).  Group buckets are checked in the context of each flow that reaches them,
which OVS does not do (it silently skips the action at run time instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.flowir import (
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Ct,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Match,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.oxm_fields import FIELDS, MPLS_ETH_TYPES, TAGGED, VLAN_TPIDS, Cond

OFPP_MAX = 0xFFFFFF00
VALID_RESERVED_OUTPUTS = frozenset(range(OFPP_IN_PORT, 0xFFFFFFFF))  # IN_PORT..LOCAL
GROUP_TYPES = ("all", "select", "indirect", "ff")
_KEEP_ON_PUSH_MPLS = ("in_port", "eth_src", "eth_dst", "metadata", "tunnel_id")


@dataclass(frozen=True, order=True)
class Problem:
    kind: str  # field | mask | prereq | action | port | goto | group | overlap | duplicate | range
    where: str  # "table 0 priority 10 cookie 0x1" or "group 3 bucket 0"
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: [{self.kind}] {self.detail}"


@dataclass
class _State:
    """What is provably true of every packet at this point of an action list."""

    exact: dict[str, int] = field(default_factory=dict)
    vlans: int = 0  # VLAN tags known to be present

    def copy(self) -> _State:
        return _State(dict(self.exact), self.vlans)

    def holds(self, cond: Cond) -> bool:
        name, allowed = cond
        if allowed is TAGGED:
            return self.vlans > 0
        return self.exact.get(name) in allowed


def _where(e: FlowEntry) -> str:
    return f"table {e.table_id} priority {e.priority} cookie {e.cookie:#x}"


def _state_from_match(match: Match) -> _State:
    st = _State()
    for fm in match.fields:
        spec = FIELDS.get(fm.field)
        if spec is None:
            continue
        if fm.field == "vlan_vid":
            if (fm.mask is None or fm.mask & OFPVID_PRESENT) and fm.value & OFPVID_PRESENT:
                st.vlans = 1
        if fm.mask is None or fm.mask == spec.full:
            st.exact[fm.field] = fm.value
    return st


def overlaps(a: Match, b: Match) -> bool:
    """Can one packet match both?  Exact when both matches carry their
    prerequisites (fields on one side only never conflict)."""
    other = {f.field: f for f in b.fields}
    for fa in a.fields:
        fb = other.get(fa.field)
        if fb is None:
            continue
        ma = -1 if fa.mask is None else fa.mask
        mb = -1 if fb.mask is None else fb.mask
        if (fa.value ^ fb.value) & ma & mb:
            return False
    return True


class _Checker:
    def __init__(self, tables: SwitchTables) -> None:
        self.tables = tables
        self.groups: dict[int, GroupEntry] = {}
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, kind: str, where: str, detail: str, origin: str = "") -> None:
        if (kind, where, detail) in self._seen:
            return
        self._seen.add((kind, where, detail))
        suffix = f" (reached from {origin})" if origin else ""
        self.problems.append(Problem(kind, where, detail + suffix))

    def run(self) -> list[Problem]:
        self.check_groups()
        by_slot: dict[tuple[int, int], list[FlowEntry]] = {}
        for e in self.tables.entries:
            self.check_entry(e)
            by_slot.setdefault((e.table_id, e.priority), []).append(e)
        for (_table, _prio), entries in sorted(by_slot.items()):
            self.check_overlaps(entries)
        return self.problems

    # -- flow entries -----------------------------------------------------
    def check_entry(self, e: FlowEntry) -> None:
        w = _where(e)
        if not 0 <= e.table_id <= 254:
            self.add("range", w, f"table_id {e.table_id} outside 0..254")
        if not 0 <= e.priority <= 0xFFFF:
            self.add("range", w, f"priority {e.priority} outside 0..65535")
        if not 0 <= e.cookie < 1 << 64:
            self.add("range", w, f"cookie {e.cookie} outside 64 bits")
        self.check_match(e.match, w)
        st = _state_from_match(e.match)
        for fm in e.match.fields:
            if fm.field in FIELDS:
                for cond in FIELDS[fm.field].prereqs:
                    if not st.holds(cond):
                        self.add("prereq", w, f"{fm.field} needs {_cond(cond)}")
        self.check_actions(e.actions, st, w, w, ())
        if e.write_metadata is not None:
            self.check_write_metadata(e.write_metadata, w)
        if e.goto_table is not None:
            if e.goto_table <= e.table_id:
                self.add("goto", w, f"goto_table:{e.goto_table} does not move forward")
            if e.goto_table > 254:
                self.add("goto", w, f"goto_table:{e.goto_table} outside 0..254")

    def check_write_metadata(self, wm: tuple[int, int], w: str) -> None:
        value, mask = wm
        full = FIELDS["metadata"].full
        if not 0 <= value <= full:
            self.add("range", w, f"write_metadata value {value:#x} outside 64 bits")
        if not 0 <= mask <= full:
            self.add("range", w, f"write_metadata mask {mask:#x} outside 64 bits")
        if value & ~mask:
            self.add("mask", w, f"write_metadata value {value:#x} has bits outside mask {mask:#x}")

    def check_match(self, m: Match, w: str) -> None:
        names = [f.field for f in m.fields]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            self.add("field", w, f"{dup} matched twice")
        for fm in m.fields:
            spec = FIELDS.get(fm.field)
            if spec is None:
                self.add("field", w, f"unknown field {fm.field!r}")
                continue
            if not 0 <= fm.value <= spec.full:
                self.add("range", w, f"{fm.field} value {fm.value:#x} wider than {spec.bits} bits")
            if fm.mask is None:
                if fm.field == "vlan_vid" and fm.value and not fm.value & OFPVID_PRESENT:
                    self.add("field", w, f"vlan_vid={fm.value:#x} lacks OFPVID_PRESENT (only 0 means untagged)")
                continue
            if not spec.maskable:
                self.add("mask", w, f"{fm.field} is not maskable")
            if not 0 <= fm.mask <= spec.full:
                self.add("mask", w, f"{fm.field} mask {fm.mask:#x} wider than {spec.bits} bits")
            if fm.value & ~fm.mask:
                self.add("mask", w, f"{fm.field} value {fm.value:#x} has bits outside mask {fm.mask:#x}")

    def check_actions(
        self, actions: tuple[Action, ...], st: _State | None, w: str, origin: str, chain: tuple[int, ...]
    ) -> None:
        """``st`` None: context unknown (unreferenced group), so only
        context-free checks apply."""
        org = "" if origin == w else origin
        for a in actions:
            if isinstance(a, Output):
                p = a.port
                if p <= 0 or (p >= OFPP_MAX and p not in VALID_RESERVED_OUTPUTS):
                    self.add("port", w, f"output to invalid port {p:#x}")
            elif isinstance(a, SetField):
                self.check_set_field(a, st, w, org)
            elif isinstance(a, PushVlan):
                if a.ethertype not in VLAN_TPIDS:
                    self.add("action", w, f"push_vlan:{a.ethertype:#06x} is not a VLAN TPID")
                if st is not None:
                    if st.vlans >= 2:
                        self.add("action", w, "push_vlan onto 2 tags (OVS supports at most 2)", org)
                    st.vlans += 1
            elif isinstance(a, PopVlan):
                if st is not None:
                    if st.vlans == 0:
                        self.add("action", w, "pop_vlan without a VLAN tag proven by the match", org)
                    st.vlans = max(0, st.vlans - 1)
            elif isinstance(a, PushMpls):
                if a.ethertype not in MPLS_ETH_TYPES:
                    self.add("action", w, f"push_mpls:{a.ethertype:#06x} is not an MPLS ethertype")
                if st is not None:
                    st.exact = {k: v for k, v in st.exact.items() if k in _KEEP_ON_PUSH_MPLS}
                    st.exact["eth_type"] = a.ethertype
            elif isinstance(a, PopMpls):
                if st is not None:
                    if st.exact.get("eth_type") not in MPLS_ETH_TYPES:
                        self.add("action", w, "pop_mpls on a packet not proven MPLS", org)
                    st.exact.pop("ip_proto", None)
                    st.exact["eth_type"] = a.ethertype
            elif isinstance(a, GroupAction):
                self.check_group_ref(a.group_id, st, w, origin, chain)
            elif isinstance(a, Ct):  # Open vSwitch refuses a ct whose match does not prove IP
                if st is not None and st.exact.get("eth_type") not in (0x0800, 0x86DD):
                    self.add("prereq", w, "ct needs eth_type IPv4 or IPv6 proven by the match", org)
                if a.mark_from is not None and (a.mark_from not in FIELDS or FIELDS[a.mark_from].bits != 32):
                    self.add("field", w, f"ct mark from {a.mark_from!r}: not a 32-bit field", org)
                if a.mark is not None and not 0 <= a.mark < 1 << 32:
                    self.add("range", w, f"ct_mark {a.mark:#x} outside 32 bits", org)
                if not 0 <= a.zone < 1 << 16:
                    self.add("range", w, f"ct zone {a.zone} outside 16 bits", org)
            else:
                self.add("action", w, f"unknown action {a!r}")

    def check_set_field(self, a: SetField, st: _State | None, w: str, org: str) -> None:
        spec = FIELDS.get(a.field)
        if spec is None:
            self.add("field", w, f"set_field on unknown field {a.field!r}")
            return
        if not spec.writable:
            self.add("action", w, f"set_field on read-only field {a.field}")
        if not 0 <= a.value <= spec.full:
            self.add("range", w, f"set_field {a.field} value {a.value:#x} wider than {spec.bits} bits")
        if a.field == "vlan_vid" and not a.value & OFPVID_PRESENT:
            self.add("action", w, "set_field vlan_vid needs OFPVID_PRESENT (0x1000) in the value")
        if st is None:
            return
        conds = spec.prereqs + ((("vlan_vid", TAGGED),) if a.field == "vlan_vid" else ())
        missing = [c for c in conds if not st.holds(c)]
        if missing:
            self.add(
                "prereq", w, f"set_field {a.field} needs {', '.join(_cond(c) for c in missing)} at this point", org
            )

    def check_group_ref(self, gid: int, st: _State | None, w: str, origin: str, chain: tuple[int, ...]) -> None:
        g = self.groups.get(gid)
        if g is None:
            self.add("group", w, f"unknown group {gid}")
            return
        if gid in chain:
            return  # the cycle is reported by check_groups
        for i, b in enumerate(g.buckets):
            self.check_actions(
                b.actions, None if st is None else st.copy(), f"group {gid} bucket {i}", origin, chain + (gid,)
            )

    def check_overlaps(self, entries: list[FlowEntry]) -> None:
        for i, a in enumerate(entries):
            for b in entries[i + 1 :]:
                if a == b:
                    self.add("duplicate", _where(a), "identical entry twice")
                elif a.match == b.match:
                    self.add(
                        "overlap",
                        _where(a),
                        f"same match as cookie {b.cookie:#x} at equal priority (OVS keeps only the last)",
                    )
                elif overlaps(a.match, b.match):
                    self.add(
                        "overlap", _where(a), f"overlaps cookie {b.cookie:#x} at equal priority: {a.match} / {b.match}"
                    )

    # -- groups -------------------------------------------------------------
    def check_groups(self) -> None:
        for g in self.tables.groups:
            w = f"group {g.group_id}"
            if g.group_id in self.groups:
                self.add("group", w, "group id defined twice")
            self.groups[g.group_id] = g
            if not 0 <= g.group_id <= 0xFFFFFF00:
                self.add("range", w, "group id outside 0..0xffffff00")
            if g.type not in GROUP_TYPES:
                self.add("group", w, f"unknown group type {g.type!r}")
            if g.type == "indirect" and len(g.buckets) != 1:
                self.add("group", w, "indirect group needs exactly one bucket")
            for i, b in enumerate(g.buckets):
                if g.type == "select" and not 0 <= b.weight <= 0xFFFF:
                    self.add("range", w, f"bucket {i} weight {b.weight}")
                if g.type == "ff" and ff_watch(b.actions) is None:
                    self.add("group", w, f"ff bucket {i} has no output port or group to watch")
        for g in self.tables.groups:
            if self._cycle(g.group_id, ()):
                self.add("group", f"group {g.group_id}", "group chain cycle")
        referenced = {a.group_id for e in self.tables.entries for a in e.actions if isinstance(a, GroupAction)}
        for g in self.tables.groups:
            if g.group_id not in referenced:  # context-free checks only
                self.check_group_ref(g.group_id, None, f"group {g.group_id}", f"group {g.group_id}", ())

    def _cycle(self, gid: int, path: tuple[int, ...]) -> bool:
        if gid in path:
            return True
        g = self.groups.get(gid)
        if g is None:
            return False
        return any(
            self._cycle(a.group_id, path + (gid,)) for b in g.buckets for a in b.actions if isinstance(a, GroupAction)
        )


def ff_watch(actions: tuple[Action, ...]) -> tuple[str, int] | None:
    """What a fast-failover bucket watches: its first output to a physical
    port, else its first group (the IR has no explicit watch_port)."""
    for a in actions:
        if isinstance(a, Output) and 0 < a.port < OFPP_MAX:
            return ("watch_port", a.port)
    for a in actions:
        if isinstance(a, GroupAction):
            return ("watch_group", a.group_id)
    return None


def _cond(cond: Cond) -> str:
    name, allowed = cond
    if allowed is TAGGED:
        return "a VLAN tag (vlan_vid with OFPVID_PRESENT)"
    vals = "|".join(f"{v:#06x}" if name == "eth_type" else str(v) for v in sorted(allowed))
    return f"{name}={vals}"


def validate(tables: SwitchTables) -> list[Problem]:
    """Every problem found, in a deterministic order (empty = loadable and
    unambiguous)."""
    return _Checker(tables).run()
