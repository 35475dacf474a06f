"""`fsc rebalance` and the automatic mode: the controller measures (its
:class:`LoadBook`), decides (:mod:`rebalance`, pure), compiles the target
with the injected compile function (the other generation, the deployed
placement as the previous one, so only new replicas are placed) and carries
it out with the same consistent update as `fsc apply` (a new generation;
connection keeping comes with it). The deployed digest is kept: applying the
same site file again changes nothing, so the platform's scale stays.

:class:`AutoRebalance` is run by the monitoring loop on every tick: a change
is made only when the same decision has held for ``sustain`` seconds
(hysteresis) and no change was made in the last ``every`` seconds (rate
limit); both read the controller's injectable clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from backends.emit.documents import ReplicaInfo
from backends.platform.controller.metrics import result_of
from backends.platform.controller.plan import placement_doc, plan_doc, plan_update
from backends.platform.controller.protocol import ApplyRequest, PlanAnswer, ResultFailed, ResultOk, _Model
from backends.platform.controller.rebalance import Decision, Stage, Thresholds, decide, stages_of
from compiler.scale import Scale, deployed_scale

if TYPE_CHECKING:
    from backends.platform.controller.service import Controller

LOG = logging.getLogger("fsc.controller.rebalance")


class RebalanceRequest(_Model):
    """Body of ``POST /v1/rebalance/plan`` and ``POST /v1/rebalance``: the
    thresholds of this decision (the controller's own when not given)."""

    high: float | None = Field(default=None, gt=0, le=10)
    low: float | None = Field(default=None, ge=0, le=10)
    capacity_pps: float | None = Field(default=None, gt=0)
    ready_timeout: float = Field(default=60.0, gt=0, le=3600)
    #: carry out exactly these targets (module -> [replicas, weights...]), as a
    #: plan showed them, instead of deciding again
    targets: dict[str, list[int]] | None = None


class StageLoadInfo(_Model):
    instance: str
    host: str
    packets_per_second: float
    cpu: float
    utilization: float
    weight: int


class RebalanceAnswer(_Model):
    """What a rebalance would do (``fsc rebalance`` without ``--yes``): one reason
    per replicated stage, the shares before, and the update (like ``fsc plan``;
    its ``replicas`` are the shares after). ``plan`` is null when nothing changes."""

    changed: bool
    reasons: list[str] = Field(default_factory=list)
    load: dict[str, list[StageLoadInfo]] = Field(default_factory=dict)
    before: dict[str, ReplicaInfo] = Field(default_factory=dict)
    plan: PlanAnswer | None = None
    targets: dict[str, list[int]] = Field(default_factory=dict)  # module -> [replicas, weights...]
    generation: int | None = None
    error: str = ""


class RebalanceFailed(Exception):
    """The target cannot be compiled or applied; the message says why."""


def thresholds_for(base: Thresholds, req: RebalanceRequest | None) -> Thresholds:
    if req is None:
        return base
    return Thresholds(
        high=req.high if req.high is not None else base.high,
        low=req.low if req.low is not None else base.low,
        capacity_pps=req.capacity_pps if req.capacity_pps is not None else base.capacity_pps,
        min_window=base.min_window,
        weight_step=base.weight_step,
        weights=base.weights,
    )


#: The deployed files last read by :func:`measure`, and what it took from them
#: (the automatic mode measures five times a second; the files change only on a commit).
_last: tuple[Any, dict[str, tuple[str, str, int, int]], dict[str, tuple[int, int]]] | None = None


def _deployed_stages(files: dict[str, str] | None) -> tuple[dict[str, tuple[str, str, int, int]], dict]:
    global _last
    if _last is not None and _last[0] is files:
        return _last[1], _last[2]
    pdoc, doc = placement_doc(files), plan_doc(files)
    if pdoc is None or doc is None:
        return {}, {}
    placed = {i: (v.module, v.host, v.cores, v.weight) for i, v in pdoc.instances.items()}
    ranges = {m: (r.range[0], r.range[1]) for m, r in doc.replicas.items() if r.range}
    _last = (files, placed, ranges)
    return placed, ranges


def measure(ctl: Controller) -> list[Stage]:
    """The deployed stages with their measured load."""
    placed, ranges = _deployed_stages(ctl._deployed_files())
    if not placed:
        return []

    def load(host: str, iid: str) -> tuple[float, float, float] | None:
        got = ctl.load.load(host, iid)
        return (got.packets_per_second, got.cpu, got.window) if got is not None else None

    return stages_of(placed, ranges, load)


@dataclass(frozen=True)
class Target:
    decision: Decision
    stages: list[Stage]
    files: dict[str, str] | None  # None: no change (or nothing deployed)
    answer: RebalanceAnswer


def _load_info(stages: list[Stage], th: Thresholds) -> dict[str, list[StageLoadInfo]]:
    from backends.platform.controller.rebalance import utilization

    return {
        s.module: [
            StageLoadInfo(
                instance=i.id,
                host=i.host,
                packets_per_second=round(i.pps, 2),
                cpu=round(i.cpu, 4),
                utilization=round(utilization(i, th), 4),
                weight=i.weight,
            )
            for i in s.instances
        ]
        for s in stages
    }


def _forced(stages: list[Stage], targets: dict[str, list[int]]) -> Decision:
    """The decision a plan showed (``targets``), checked against the stages."""
    known = {s.module: s for s in stages}
    out = Decision()
    for module, v in sorted(targets.items()):
        s = known.get(module)
        if s is None:
            raise RebalanceFailed(f"`{module}` is not a replicated stage of the deployed site")
        if not v or not s.lo <= v[0] <= s.hi:
            raise RebalanceFailed(f"`{module}`: {v[0] if v else '?'} replicas is outside its range {s.lo}..{s.hi}")
        weights = tuple(v[1:]) or None
        if weights is not None and (len(weights) != v[0] or min(weights) < 1):
            raise RebalanceFailed(f"`{module}`: give one weight (at least 1) per replica")
        out.targets[module] = Scale(v[0], weights)
        out.reasons.append(
            f"`{module}`: {v[0]} replicas" + (f", weights {', '.join(map(str, weights))}" if weights else "")
        )
    return out


def target(ctl: Controller, th: Thresholds, targets: dict[str, list[int]] | None = None) -> Target:
    """Decide (or take ``targets``) and compile the target (no switch or agent is touched)."""
    d = ctl._deployed_doc()
    if d is None:
        answer = RebalanceAnswer(changed=False, reasons=["nothing is deployed"])
        return Target(Decision(), [], None, answer)
    stages = measure(ctl)
    decision = decide(stages, th) if targets is None else _forced(stages, targets)
    doc = plan_doc(d.files)
    answer = RebalanceAnswer(
        changed=False,
        reasons=decision.reasons or ["no replicated stage"],
        load=_load_info(stages, th),
        before=dict(doc.replicas) if doc is not None else {},
        generation=d.generation,
    )
    if not decision.changed:
        return Target(decision, stages, None, answer)
    if ctl.recompile is None:
        raise RebalanceFailed("this controller cannot compile (no compile function)")
    pdoc = placement_doc(d.files)
    assert pdoc is not None
    scale: dict[str, Scale] = deployed_scale(
        {i: v.module for i, v in pdoc.instances.items()}, {i: v.weight for i, v in pdoc.instances.items()}
    )
    scale.update(decision.targets)
    out = ctl.recompile(d.source, d.files.get("placement.json"), 1 - d.generation, ctl.hosts.unavailable(), scale=scale)
    if out.files is None:
        raise RebalanceFailed("the target does not compile: " + "; ".join(out.errors))
    plan = plan_update(d.files, out.files, ctl._deployed_tables()).answer()
    answer.changed = not plan.nothing_to_change
    answer.plan = plan
    answer.targets = {m: [s.replicas, *(s.weights or ())] for m, s in sorted(decision.targets.items())}
    return Target(decision, stages, out.files if answer.changed else None, answer)


def plan(ctl: Controller, th: Thresholds, targets: dict[str, list[int]] | None = None) -> RebalanceAnswer:
    """``POST /v1/rebalance/plan``: what a rebalance would do now."""
    try:
        return target(ctl, th, targets).answer
    except RebalanceFailed as err:
        return RebalanceAnswer(changed=False, error=str(err))


def carry_out(
    ctl: Controller, th: Thresholds, targets: dict[str, list[int]] | None = None, ready_timeout: float = 60.0
) -> Iterator[BaseModel]:
    """``POST /v1/rebalance``: the apply's events, the result last."""
    try:
        t = target(ctl, th, targets)
    except RebalanceFailed as err:
        yield ResultFailed(result="failed", error=str(err))
        return
    d = ctl._deployed_doc()
    if t.files is None or d is None:
        yield ResultOk(
            result="ok", changed=False, message="balanced: nothing to change", generation=t.answer.generation
        )
        return
    req = ApplyRequest(site=d.site, files=t.files, source=d.source, digest=d.digest, ready_timeout=ready_timeout)
    last, t0 = None, time.monotonic()
    for last in ctl.apply(req):
        yield last
    ctl.metrics.relocated("rebalance", result_of(last), time.monotonic() - t0)
    if isinstance(last, ResultOk) and last.changed:
        changed = [r for r in t.decision.reasons if any(r.startswith(f"`{m}`") for m in t.decision.targets)]
        ctl.note("rebalance: " + "; ".join(changed))


class AutoRebalance:
    """The automatic mode: a decision sustained for ``sustain`` seconds is
    carried out, at most one change every ``every`` seconds."""

    def __init__(self, ctl: Controller, th: Thresholds, sustain: float = 10.0, every: float = 60.0) -> None:
        self.ctl = ctl
        self.th = th
        self.sustain = sustain
        self.every = every
        self.pending: tuple[tuple[str, Scale], ...] | None = None
        self.since = 0.0
        self.last_change: float | None = None
        self.changes = 0
        self.last_error = ""

    def _busy(self) -> bool:
        ctl = self.ctl
        return ctl._applying or ctl.drain is not None or ctl.needs_relocation() is not None or ctl.recompile is None

    def tick(self, now: float) -> bool:
        """One round; True when a change was carried out."""
        if self._busy():
            return False
        decision = decide(measure(self.ctl), self.th)
        key = tuple(sorted(decision.targets.items()))
        if not key:
            self.pending = None
            return False
        if key != self.pending:
            self.pending, self.since = key, now
            return False
        if now - self.since < self.sustain:
            return False
        if self.last_change is not None and now - self.last_change < self.every:
            return False
        self.last_change = now
        self.pending = None
        t0 = time.monotonic()
        result: BaseModel | None = None
        for ev in carry_out(self.ctl, self.th):
            result = ev
        ok = isinstance(result, ResultOk) and result.changed
        self.last_error = "" if ok else getattr(result, "error", "") or getattr(result, "message", "")
        if ok:
            self.changes += 1
        else:
            self.ctl.note(f"automatic rebalance did not change anything: {self.last_error}")
        LOG.info("automatic rebalance in %.1fs: %s", time.monotonic() - t0, "done" if ok else self.last_error)
        return ok


def answer_text(answer: RebalanceAnswer, site: str) -> str:
    """`fsc rebalance` (text): each stage's load and decision, then the update as `fsc plan` shows it."""
    from backends.platform.controller.render import plan_text, replica_lines

    if answer.error:
        return f"rebalance: {answer.error}\n"
    lines = []
    for module, insts in sorted(answer.load.items()):
        parts = [f"{i.instance}@{i.host} {100 * i.utilization:.0f}% ({i.packets_per_second:.0f} pkt/s)" for i in insts]
        lines.append(f"load {module}: " + ", ".join(parts))
    lines += [f"decision {r}" for r in answer.reasons]
    if not answer.changed or answer.plan is None:
        lines.append(f"{site}: balanced, nothing to change")
        return "\n".join(lines) + "\n"
    lines += [line.replace("replicas ", "before: replicas ", 1) for line in replica_lines(answer.before)]
    text = "\n".join(lines) + "\n" + plan_text(answer.plan, site)
    return text.replace("\nreplicas ", "\nafter:  replicas ")
