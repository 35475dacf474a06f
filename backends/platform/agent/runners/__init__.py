"""One runner per instance kind (click, process, vm); see :mod:`.base` for the interface."""

from __future__ import annotations

from backends.platform.agent.runners.base import AgentSpec, Context, Handle, Poll, Runner, StartError
from backends.platform.agent.runners.click import ClickRunner
from backends.platform.agent.runners.process import ProcessRunner
from backends.platform.agent.runners.vm import VmRunner


def runners(ctx: Context) -> dict[str, Runner]:
    """The runner of every kind, sharing ``ctx``."""
    return {r.kind: r for r in (ClickRunner(ctx), ProcessRunner(ctx), VmRunner(ctx))}


__all__ = [
    "AgentSpec",
    "ClickRunner",
    "Context",
    "Handle",
    "Poll",
    "ProcessRunner",
    "Runner",
    "StartError",
    "VmRunner",
    "runners",
]
