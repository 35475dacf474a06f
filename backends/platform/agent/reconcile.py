"""Desired instances + what runs -> actions (pure; the agent's loop does the I/O).

The controller sends the full desired set on every heartbeat; the agent
compares it with what its runners report and decides, deterministically:

* ``Stop`` what is not wanted (or runs with another digest: a replacement),
* ``Start`` what is wanted and not running,
* ``Restart`` what exited when its restart policy says so, once its backoff
  (``backoff_seconds`` doubling per restart, at most :data:`MAX_BACKOFF`) has
  passed, and ``GiveUp`` after ``max_restarts`` restarts.

An instance the agent gave up on stays failed until the controller sends a
spec with another digest (or stops wanting it and wants it again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from backends.platform.controller.protocol import InstanceReport, InstanceSpec

MAX_BACKOFF = 30.0
Phase = Literal["starting", "running", "ready", "exited"]


@dataclass(frozen=True)
class RestartPolicy:
    """``always`` | ``on-failure`` (non-zero exit or signal) | ``never``."""

    policy: str = "on-failure"
    max_restarts: int = 5
    backoff_seconds: float = 1.0

    def delay(self, restarts: int) -> float:
        return min(MAX_BACKOFF, self.backoff_seconds * 2 ** min(restarts, 16))

    def wants_restart(self, exit_code: int | None) -> bool:
        if self.policy == "always":
            return True
        if self.policy == "on-failure":
            return exit_code != 0
        return False


@dataclass(frozen=True)
class Observed:
    """One instance the agent runs, as last seen.

    ``exit_code``: the last run's (negative: killed by that signal; None while
    it runs or when it never started); ``exited_at``: monotonic seconds.
    """

    id: str
    digest: str
    phase: Phase
    restarts: int = 0
    exit_code: int | None = None
    exited_at: float | None = None
    gave_up: bool = False
    packets: int = 0
    message: str = ""
    modules: dict[str, int] = field(default_factory=dict)  # a Click configuration's instances -> packets
    bytes: int = 0
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class Start:
    spec: InstanceSpec


@dataclass(frozen=True)
class Stop:
    id: str
    reason: str


@dataclass(frozen=True)
class Restart:
    id: str


@dataclass(frozen=True)
class GiveUp:
    id: str
    message: str


Action = Start | Stop | Restart | GiveUp


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not start"
    return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"


def reconcile(
    desired: Sequence[InstanceSpec], observed: Mapping[str, Observed], policies: Mapping[str, RestartPolicy], now: float
) -> list[Action]:
    """The actions that bring ``observed`` to ``desired``: stops first, then the
    rest, each group in id order."""
    wanted = {s.id: s for s in desired}
    stops: list[Action] = []
    others: list[Action] = []
    for iid in sorted(observed):
        obs = observed[iid]
        spec = wanted.get(iid)
        if spec is None:
            stops.append(Stop(iid, "no longer wanted"))
        elif spec.digest != obs.digest:
            stops.append(Stop(iid, "replaced by a new version"))
    for iid in sorted(wanted):
        spec, obs = wanted[iid], observed.get(iid)
        if obs is None or obs.digest != spec.digest:
            others.append(Start(spec))
            continue
        if obs.phase != "exited" or obs.gave_up:
            continue
        policy = policies.get(iid, RestartPolicy())
        if not policy.wants_restart(obs.exit_code):
            continue
        if obs.restarts >= policy.max_restarts:
            others.append(GiveUp(iid, f"gave up after {obs.restarts} restarts: {describe_exit(obs.exit_code)}"))
        elif obs.exited_at is None or now >= obs.exited_at + policy.delay(obs.restarts):
            others.append(Restart(iid))
    return stops + others


def report(obs: Observed, policy: RestartPolicy, now: float) -> InstanceReport:
    """How the heartbeat shows an instance: a run that exited is ``failed``
    (with when it restarts) unless the policy leaves it ``stopped`` (a clean
    exit under ``on-failure``)."""
    if obs.phase == "ready":
        state, message = "ready", obs.message
    elif obs.phase in ("starting", "running"):
        state, message = "starting", obs.message
    elif obs.gave_up or not policy.wants_restart(obs.exit_code):
        state = "failed" if obs.gave_up or obs.exit_code != 0 else "stopped"
        message = obs.message or describe_exit(obs.exit_code)
    else:
        due = (now if obs.exited_at is None else obs.exited_at) + policy.delay(obs.restarts) - now
        state = "failed"
        message = (
            f"{describe_exit(obs.exit_code)}; restart {obs.restarts + 1}/{policy.max_restarts} "
            f"in {max(0.0, due):.1f} s" + (f" ({obs.message})" if obs.message else "")
        )
    return InstanceReport(
        id=obs.id,
        digest=obs.digest,
        state=state,
        packets=obs.packets,
        bytes=obs.bytes,
        cpu_seconds=obs.cpu_seconds,
        restarts=obs.restarts,
        message=message,
        modules=dict(obs.modules),
    )
