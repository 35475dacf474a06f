"""Rebalancing by measured load: a pure decision from the deployed plan and
each instance's measured load to a target scale (replica counts within the
declared ranges, weights). The controller compiles the target and applies it
with the consistent update (:mod:`scaling`); nothing here does I/O.

Per replicated module (a *stage*), with ``u`` an instance's utilisation
(CPU seconds per second over its cores, or packets per second over
``capacity_pps`` per core when that is given):

* the busiest instance above ``high`` and the stage below the top of its
  range: one replica more (new flows spread over one more instance);
* every instance below ``low``, the stage above the bottom of its range, and
  the stage's load still below ``low`` on one replica fewer: one replica less;
* otherwise, when every instance has measured CPU: weights toward measured
  capacity (packets per second at full use, ``pps / u``), when the shares they
  give differ from the current ones by more than ``weight_step``.

A decision needs ``min_window`` seconds of history on every instance of the
stage (no decision on a replica just started).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from math import gcd

from compiler.scale import Scale, counts

#: Largest weight the platform gives (shares are steps of 1/256 of the flow hash).
MAX_WEIGHT = 8


@dataclass(frozen=True)
class Thresholds:
    high: float = 0.75
    low: float = 0.25
    capacity_pps: float | None = None  # packets per second one core takes; None: measure CPU
    min_window: float = 3.0
    weight_step: float = 0.25
    weights: bool = True  # adjust weights too (not only counts)


@dataclass(frozen=True)
class InstLoad:
    id: str
    host: str
    cores: int
    weight: int
    pps: float  # packets per second over the window
    cpu: float  # cores busy over the window
    window: float  # seconds of history behind the rates (0: none)


@dataclass(frozen=True)
class Stage:
    module: str
    lo: int  # the range (lo == hi: a fixed count)
    hi: int
    instances: tuple[InstLoad, ...]


@dataclass(frozen=True)
class Decision:
    targets: dict[str, Scale] = field(default_factory=dict)  # stages that change
    reasons: list[str] = field(default_factory=list)  # one line per stage: what and why

    @property
    def changed(self) -> bool:
        return bool(self.targets)


def utilization(i: InstLoad, th: Thresholds) -> float:
    if th.capacity_pps:
        return i.pps / (th.capacity_pps * max(i.cores, 1))
    return i.cpu / max(i.cores, 1)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _capacity_weights(stage: Stage, th: Thresholds) -> tuple[int, ...] | None:
    """Weights proportional to packets per second at full use, or None (no signal)."""
    caps = []
    for i in stage.instances:
        u = utilization(i, th)
        if th.capacity_pps or u < 0.05 or i.pps <= 0:
            return None
        caps.append(i.pps / u)
    top = max(caps)
    w = [max(1, round(MAX_WEIGHT * c / top)) for c in caps]
    g = reduce(gcd, w)
    return tuple(x // g for x in w)


def _shares(weights: tuple[int, ...]) -> list[float]:
    total = sum(weights) or 1
    return [w / total for w in weights]


def decide_stage(stage: Stage, th: Thresholds) -> tuple[Scale | None, str]:
    """The stage's target (None: no change) and why."""
    n = len(stage.instances)
    name = f"`{stage.module}` ({n} of {stage.lo}..{stage.hi})" if stage.hi > stage.lo else f"`{stage.module}` ({n})"
    short = [i.id for i in stage.instances if i.window < th.min_window]
    if not stage.instances or short:
        return None, f"{name}: not enough history yet ({', '.join(short) or 'no instances'})"
    use = [utilization(i, th) for i in stage.instances]
    busiest = max(use)
    total = sum(use)
    if busiest > th.high:
        if n < stage.hi:
            return Scale(n + 1), f"{name}: busiest at {_pct(busiest)} > {_pct(th.high)}: one replica more"
        return None, f"{name}: busiest at {_pct(busiest)} > {_pct(th.high)}, but at the top of its range"
    if busiest < th.low and n > stage.lo and n > 1 and total / (n - 1) < th.low:
        return Scale(n - 1), f"{name}: all below {_pct(th.low)} (busiest {_pct(busiest)}): one replica fewer"
    if th.weights and n > 1:
        target = _capacity_weights(stage, th)
        current = tuple(i.weight for i in stage.instances)
        if target is not None:
            drift = max(abs(a - b) / max(b, 1e-9) for a, b in zip(_shares(target), _shares(current)))
            if drift > th.weight_step:
                return (
                    Scale(n, target),
                    f"{name}: weights {', '.join(map(str, current))} -> {', '.join(map(str, target))} "
                    "(measured capacity)",
                )
    return None, f"{name}: busiest at {_pct(busiest)}, within {_pct(th.low)}..{_pct(th.high)}"


def decide(stages: list[Stage], th: Thresholds) -> Decision:
    """Every stage's target; the reasons list every stage (changed or not)."""
    out = Decision()
    for s in sorted(stages, key=lambda s: s.module):
        target, why = decide_stage(s, th)
        out.reasons.append(why)
        if target is not None:
            out.targets[s.module] = target
    return out


#: (host, instance) -> (packets per second, cores busy, seconds of history), None when never measured.
LoadOf = Callable[[str, str], tuple[float, float, float] | None]


def stages_of(
    placed: Mapping[str, tuple[str, str, int, int]], ranges: Mapping[str, tuple[int, int]], load: LoadOf
) -> list[Stage]:
    """The deployed stages: ``placed`` instance -> (module, host, cores, weight)
    (placement.json), ``ranges`` module -> (A, B) for modules with a range
    (plan.json), ``load`` the measured rates."""
    out = []
    for module, names in counts({i: v[0] for i, v in placed.items()}).items():
        insts = []
        for i in names:
            _, host, cores, weight = placed[i]
            got = load(host, i)
            pps, cpu, window = got if got is not None else (0.0, 0.0, 0.0)
            insts.append(InstLoad(i, host, cores, weight, pps, cpu, window))
        lo, hi = ranges.get(module, (len(names), len(names)))
        out.append(Stage(module, lo, hi, tuple(insts)))
    return out
