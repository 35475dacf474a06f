"""What an update changes: compiled files of the deployed site vs the new ones
-> per-switch flow operations by phase, and instances started/stopped/moved.

Pure. The phases (docs/platform.md): *install* adds the new rules of the
non-ingress tables; *flip* replaces the ingress-table rules (and any rule whose
key both generations share but whose content changed); *cleanup* deletes the
old rules the new site does not have. :func:`reconcile_ops` turns any table
content into any other (restart, rollback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from backends.emit.documents import PlanDocument, ReplicaInfo
from backends.platform.controller.flowcodec import parse_switch_file
from backends.platform.controller.flows import FilesError, Flow, FlowFormatError, FlowKey
from backends.platform.controller.groups import delete_order
from backends.platform.controller.protocol import InstanceChanges, Moved, PlanAnswer, SwitchChanges, one_line
from compiler.lowering import tables as T
from compiler.placement.document import PlacementDocument

Tables = dict[FlowKey, Flow]
Op = tuple[str, Flow]  # ("add" | "delete" | "delete_cookie", flow): see flows.flow_mod


def switch_tables(files: Mapping[str, str] | None) -> dict[str, tuple[int, Tables]]:
    """Switch name -> (dpid, rules by key) from ``openflow/*.json``."""
    out: dict[str, tuple[int, Tables]] = {}
    for path, text in sorted((files or {}).items()):
        if path.startswith("openflow/") and path.endswith(".json"):
            name = path[len("openflow/") : -len(".json")]
            try:
                dpid, flows = parse_switch_file(text)
            except FlowFormatError as err:
                raise FlowFormatError(f"{path}: {err}") from None
            out[name] = (dpid, {f.key: f for f in flows})
    return out


def plan_doc(files: Mapping[str, str] | None) -> PlanDocument | None:
    """``plan.json`` of a compiled site (None: the files have none)."""
    if not files or "plan.json" not in files:
        return None
    try:
        return PlanDocument.from_text(files["plan.json"])
    except ValidationError as err:
        raise FilesError(f"plan.json: {one_line(err)}") from None


def generation_of(files: Mapping[str, str] | None) -> int:
    doc = plan_doc(files)
    return doc.generation if doc is not None else 0


def ingress_tables(files: Mapping[str, str] | None) -> frozenset[int]:
    """The tables flipped in one bundle (the compiler's layout when there is no plan.json)."""
    doc = plan_doc(files)
    return frozenset(doc.update.ingress_tables if doc is not None else T.INGRESS_TABLES)


def placement_doc(files: Mapping[str, str] | None) -> PlacementDocument | None:
    """``placement.json`` of a compiled site (None: the files have none)."""
    if not files or "placement.json" not in files:
        return None
    try:
        return PlacementDocument.from_text(files["placement.json"])
    except ValidationError as err:
        raise FilesError(f"placement.json: {one_line(err)}") from None


def placement_of(files: Mapping[str, str] | None) -> dict[str, str]:
    """Instance -> host from ``placement.json``."""
    doc = placement_doc(files)
    return {name: inst.host for name, inst in sorted(doc.instances.items())} if doc is not None else {}


@dataclass
class SwitchPlan:
    dpid: int
    install: list[Op] = field(default_factory=list)
    flip: list[Op] = field(default_factory=list)
    cleanup: list[Op] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.install or self.flip or self.cleanup)


@dataclass
class UpdatePlan:
    switches: dict[str, SwitchPlan]
    started: list[str]
    stopped: list[str]
    moved: dict[str, tuple[str, str]]
    changed_files: list[str]
    old_generation: int | None
    new_generation: int
    replicas: dict[str, ReplicaInfo] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changed_files

    def answer(self, rules: bool = True) -> PlanAnswer:
        """What ``POST /v1/plan`` answers; without ``rules``, the rules added
        and removed are counted, not described (an apply's result: describing
        10,000 rules costs more than the switch takes to install them)."""
        sw = {}
        for name, p in sorted(self.switches.items()):
            added = [f for ph in (p.install, p.flip) for c, f in ph if c == "add"]
            removed = [f for ph in (p.flip, p.cleanup) for c, f in ph if c == "delete"]
            sw[name] = SwitchChanges(
                dpid=p.dpid,
                added=len(added),
                removed=len(removed),
                install=len(p.install),
                flip=len(p.flip),
                cleanup=len(p.cleanup),
                added_rules=[f.describe() for f in added] if rules else [],
                removed_rules=[f.describe() for f in removed] if rules else [],
            )
        return PlanAnswer(
            nothing_to_change=self.empty,
            old_generation=self.old_generation,
            new_generation=self.new_generation,
            switches=sw,
            instances=InstanceChanges(
                started=self.started,
                stopped=self.stopped,
                moved={k: Moved.model_validate({"from": a, "to": b}) for k, (a, b) in sorted(self.moved.items())},
            ),
            changed_files=self.changed_files,
            replicas=self.replicas,
        )


def _same(a: Flow, b: Flow) -> bool:
    """Two flows of the same key (callers look them up by it) are the same
    rule: equal cookies and instructions. Equal instruction bytes settle it
    without building the canonical form (a switch's read-back usually
    carries the bytes that were sent; a 10,000-rule flip compares them all)."""
    if a is b:
        return True
    if a.cookie != b.cookie:
        return False
    if a.table_id >= 0 and a.inst_wire == b.inst_wire:  # a group (table -1) is its buckets, not instructions
        return True
    return a.canonical == b.canonical


def switch_plan(dpid: int, old: Tables, new: Tables, ingress: frozenset[int]) -> SwitchPlan:
    p = SwitchPlan(dpid)
    # only what changes is sorted (a one-policy change of a 10,000-rule switch changes a few)
    added = [k for k, f in new.items() if (g := old.get(k)) is None or not _same(g, f)]
    for key in sorted(added, key=_order):
        f = new[key]
        if key in old or f.table_id in ingress:
            p.flip.append(("add", f))  # an add replaces the flow with the same key
        else:
            p.install.append(("add", f))
    for key in sorted((k for k in old if k not in new), key=_order):
        (p.flip if old[key].table_id in ingress else p.cleanup).append(("delete", old[key]))
    p.cleanup.sort(key=lambda op: delete_order(op[1]))  # groups after the flows that may use them (stable)
    return p


def _order(key: FlowKey) -> tuple:
    return (key[0], -key[1], repr(key[2]))


def plan_update(
    old_files: Mapping[str, str] | None,
    new_files: Mapping[str, str],
    old_tables: dict[str, tuple[int, Tables]] | None = None,
    new_tables: dict[str, tuple[int, Tables]] | None = None,
) -> UpdatePlan:
    """The phased update from ``old_files`` (None: nothing deployed) to
    ``new_files``; ``old_tables``: ``switch_tables(old_files)`` if at hand."""
    old_sw = switch_tables(old_files) if old_tables is None else old_tables
    new_sw = switch_tables(new_files) if new_tables is None else new_tables
    ingress = ingress_tables(new_files)
    switches = {}
    for name in sorted(set(old_sw) | set(new_sw)):
        dpid = (new_sw.get(name) or old_sw[name])[0]
        switches[name] = switch_plan(dpid, old_sw.get(name, (0, {}))[1], new_sw.get(name, (0, {}))[1], ingress)
    old_pl, new_pl = placement_of(old_files), placement_of(new_files)
    old_f, new_f = dict(old_files or {}), dict(new_files)
    changed = sorted(p for p in set(old_f) | set(new_f) if old_f.get(p) != new_f.get(p))
    return UpdatePlan(
        switches=switches,
        started=sorted(set(new_pl) - set(old_pl)),
        stopped=sorted(set(old_pl) - set(new_pl)),
        moved={i: (old_pl[i], new_pl[i]) for i in sorted(set(old_pl) & set(new_pl)) if old_pl[i] != new_pl[i]},
        changed_files=changed,
        old_generation=None if old_files is None else generation_of(old_files),
        new_generation=generation_of(new_files),
        replicas=dict(doc.replicas) if (doc := plan_doc(new_files)) is not None else {},
    )


def reconcile_ops(actual: Tables, desired: Tables, keep: Callable[[Flow], bool] = lambda f: False) -> list[Op]:
    """Operations that turn ``actual`` into ``desired``; extra flows for which
    ``keep`` is true stay (used to flip back before removing a new generation)."""
    ops: list[Op] = []
    for key in sorted(desired, key=_order):
        if key not in actual or not _same(actual[key], desired[key]):
            ops.append(("add", desired[key]))
    dels = [k for k in sorted(actual, key=_order) if k not in desired and not keep(actual[k])]
    ops += [("delete", actual[k]) for k in sorted(dels, key=lambda k: delete_order(actual[k]))]
    return ops


def apply_ops(tables: Tables, ops: list[Op]) -> Tables:
    """The table content after ``ops`` (what a read-back must show)."""
    out = dict(tables)
    for cmd, f in ops:
        if cmd == "add":
            out[f.key] = f
        elif cmd == "delete_cookie":
            out = {k: g for k, g in out.items() if not (g.table_id == f.table_id and g.cookie == f.cookie)}
        else:
            out.pop(f.key, None)
    return out


def same_tables(a: Tables, b: Tables) -> list[str]:
    """Differences between two table contents, as readable lines (empty: equal).
    Only the differing keys are sorted (a read-back of 10,000s of rules is
    compared on every phase)."""
    bad = [k for k, fa in a.items() if (fb := b.get(k)) is None or not _same(fa, fb)]
    bad += [k for k in b if k not in a]
    diffs = []
    for key in sorted(bad, key=_order):
        fa, fb = a.get(key), b.get(key)
        if fa is None:
            diffs.append(f"unexpected on the switch: {b[key].describe()}")
        elif fb is None:
            diffs.append(f"missing on the switch: {fa.describe()}")
        else:
            diffs.append(f"different on the switch: {fa.describe()}")
    return diffs
