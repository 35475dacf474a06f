"""The compile pipeline: checked site -> placement -> steering -> tables.

Each stage is a pure function; this module only chains them and collects
their diagnostics.  Post-lowering checks (tag space, box ambiguity, tcam
budgets) live here because they need the lowered result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from compiler import ir
from compiler.flowir import SwitchTables
from compiler.lowering import tables as T
from compiler.lowering.lower import lower
from compiler.placement.place import Placement, place
from compiler.steering.hostplan import HostPlan, host_plans
from compiler.steering.regions import reverse_space
from compiler.steering.steer import MAX_CHOICES, MAX_TERMS, SteeringPlan, plan
from fslang.diagnostics import Diagnostic


@dataclass
class Compiled:
    site: ir.Site
    placement: Placement | None
    steering: SteeringPlan | None
    tables: dict[str, SwitchTables]
    hosts: dict[str, HostPlan]
    diagnostics: list[Diagnostic]
    moved: tuple[tuple[str, str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.placement is not None and not any(d.severity == "error" for d in self.diagnostics)

    def weights(self) -> dict[str, int]:
        return dict(self.placement.weights) if self.placement else {}

    def host_of(self) -> dict[str, str]:
        return dict(self.placement.assignments) if self.placement else {}


def compile_site(
    site: ir.Site,
    previous: Placement | None = None,
    optimal: bool = False,
    generation: int = 0,
    unavailable: frozenset[str] = frozenset(),
) -> Compiled:
    """Place, steer and lower ``site``; ``generation`` (0 or 1) is folded into
    every tag, entry and cookie so two compiles can share the switch tables
    during an update (docs/platform.md); ``unavailable``: hosts that must not
    be used (down or drained, named by the platform)."""
    placed = place(site, previous, optimal, unavailable)
    diags = list(placed.diagnostics) + _check_scaled(site, unavailable)
    if placed.placement is None or any(d.severity == "error" for d in diags):
        return Compiled(site, None, None, {}, {}, diags, placed.moved)
    assignment = dict(placed.placement.assignments)
    weights = dict(placed.placement.weights)
    steering = plan(site, weights, generation)
    diags += _check_choices(site, steering) + _check_tags(steering) + _check_boxes(site, steering)
    if any(d.severity == "error" for d in diags):
        return Compiled(site, placed.placement, steering, {}, {}, diags, placed.moved)
    tables, low_diags = lower(site, assignment, steering)
    diags += low_diags + _check_tcam(site, tables)
    return Compiled(
        site, placed.placement, steering, tables, host_plans(site, assignment, steering), diags, placed.moved
    )


def _check_choices(site: ir.Site, steering: SteeringPlan) -> list[Diagnostic]:
    policies = {p.name: p for p in site.policies}
    return [
        Diagnostic(
            "E0803",
            f"policy `{name}`'s pipeline multiplies into more than {MAX_CHOICES} choices, or into header "
            f"conditions of more than {MAX_TERMS} terms, where the switch classifies its packets (case arms x "
            "replica shares x copies x the continuations of every module output)",
            policies[name].span,
            hint="split the pipeline: give nested `case`s or branches their own policies, or hash "
            "replicated stages by the same field (`by flow`) so their choices do not multiply",
        )
        for name in steering.too_many_choices
    ]


def _check_scaled(site: ir.Site, unavailable: frozenset[str]) -> list[Diagnostic]:
    """`replicas A..B`: A instances are placed now; B must fit as well (the
    platform may scale up to it), so the site is placed once more with every
    range at its top (the heuristic; its E0701/E0702 say what is short)."""
    ranged = [m for m in site.modules if m.max_replicas > m.replicas]
    if not ranged:
        return []
    top = dataclasses.replace(
        site, modules=tuple(dataclasses.replace(m, replicas=m.most_replicas) for m in site.modules)
    )
    errors = [d for d in place(top, None, False, unavailable).diagnostics if d.severity == "error"]
    names = ", ".join(f"`{m.name}` ({m.replicas}..{m.max_replicas})" for m in ranged)
    return [
        dataclasses.replace(d, message=f"at the top of the replica ranges of {names}: {d.message}") for d in errors[:1]
    ]


def _check_tags(steering: SteeringPlan) -> list[Diagnostic]:
    out = []
    labels = len(steering.labelled)
    if steering.vlan_overflow:
        out.append(
            Diagnostic(
                "E0802",
                f"the site needs {T.MAX_TAG + steering.vlan_overflow} steering tags that the "
                f"switch must take off (box visits and copies before the exit); a VLAN id offers "
                f"{T.MAX_TAG} per update generation",
                hint="share pipelines between policies, or use fewer boxes and copies at the end",
            )
        )
    if labels > T.MAX_MPLS_TAG - T.FIRST_TAG:
        out.append(
            Diagnostic(
                "E0802",
                f"the site needs {labels} steering tags; MPLS labels offer "
                f"{T.MAX_MPLS_TAG - T.FIRST_TAG} per update generation",
                hint="share pipelines between policies or reduce replicas and copies",
            )
        )
    if len(steering.selectors) > T.MAX_ENTRIES:
        out.append(
            Diagnostic(
                "E0802",
                f"the site needs {len(steering.selectors)} distinct decision lists; the "
                f"switch metadata tells {T.MAX_ENTRIES} apart",
                hint="share pipelines between policies (equal pipelines share one list)",
            )
        )
    return out


def _check_boxes(site: ir.Site, steering: SteeringPlan) -> list[Diagnostic]:
    """A box returns packets untagged: its users must be told apart by headers."""
    out: list[Diagnostic] = []
    policies = {p.name: p for p in site.policies}
    by_box: dict[str, list] = {}
    for e in steering.entries:
        if e.box is None:
            continue
        pol = policies[e.policy]
        space = (pol.match.space() if e.direction == "forward" else reverse_space(site, pol)).forget(["in_edge"])
        for other, ospace in by_box.get(e.box, []):
            if other.id != e.id and space.intersects(ospace):  # the same continuation needs no telling apart
                out.append(
                    Diagnostic(
                        "E0703",
                        f"box `{e.box}` is used by `{other.policy}` and `{e.policy}` ({e.direction}) "
                        f"for traffic that looks the same when it comes back from the box",
                        pol.span,
                        hint="a box returns packets unchanged, so fsc tells its users apart by "
                        "their headers; make the policies' matches disjoint or use the box once",
                    )
                )
        by_box.setdefault(e.box, []).append((e, space))
    return out


def _check_tcam(site: ir.Site, tables: dict[str, SwitchTables]) -> list[Diagnostic]:
    out = []
    for sw in site.switches:
        n = len(tables[sw.name].entries)
        if sw.tcam is not None and n > sw.tcam:
            out.append(
                Diagnostic(
                    "E0801",
                    f"switch `{sw.name}` needs {n} flow entries but holds {sw.tcam}: {n - sw.tcam} too many",
                    sw.span,
                    hint=f"raise `tcam` of `{sw.name}` to at least {n}, or simplify the policies "
                    "(fewer `not` and port ranges, fewer replicated stages)",
                )
            )
    return out
