"""`process` instances: ``process/INSTANCE.json`` run supervised.

The program runs without a shell, in its own session, with stdout and stderr
in ``instances/ID/log``.  Its device is one end of a veth pair whose other end
(the manifest's ``device``, ``tap_name(instance)``) the host's Click
configuration uses; the environment names it: ``FSC_IFACE`` (the end to read
and write), ``FSC_DEVICE`` (Click's end), ``FSC_INSTANCE``, and
``FSC_STATS_FILE`` (where the program may write ``{"packets": N}``).

In the lab (``--lab``), when ``argv[0]`` is not installed, the instance runs
its module type's reference behaviour instead, and its status says so.
The manifest's ``restart`` section is the restart policy.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from backends.emit.vm.generate import tap_name
from backends.platform.agent import netdev
from backends.platform.agent.reconcile import RestartPolicy
from backends.platform.agent.runners.base import AgentSpec, Handle, Runner, StartError, alive_for, launch, wait_ready
from backends.platform.agent.runners.reference_run import ready_file, reference_argv, reference_env

READY_AFTER = 0.5  # a program that writes no stats counts as ready once it has run this long


def manifest(spec: AgentSpec) -> dict[str, Any]:
    name = f"process/{spec.id}.json"
    text = spec.files.get(name) or next((t for n, t in spec.files.items() if n.startswith("process/")), None)
    if text is None:
        raise StartError(f"instance {spec.id}: the spec has no {name}; recompile the site with this fsc")
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise StartError(f"instance {spec.id}: {name} is not JSON ({err}); recompile the site") from err
    if not isinstance(doc.get("argv"), list) or not doc["argv"]:
        raise StartError(f"instance {spec.id}: {name} has no argv; give the module a command")
    return doc


def installed(program: str) -> bool:
    if "/" in program:
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program) is not None


class ProcessRunner(Runner):
    kind = "process"

    def policy(self, spec: AgentSpec) -> RestartPolicy:
        try:
            r = manifest(spec).get("restart", {})
        except StartError:
            return RestartPolicy()
        return RestartPolicy(
            policy=str(r.get("policy", "on-failure")),
            max_restarts=int(r.get("max_restarts", 5)),
            backoff_seconds=float(r.get("backoff_seconds", 1.0)),
        )

    def device(self, spec: AgentSpec) -> str:
        try:
            return str(manifest(spec).get("device") or tap_name(spec.id))
        except StartError:
            return tap_name(spec.id)

    def plumb(self, spec: AgentSpec) -> None:
        dev = self.device(spec)
        netdev.ensure_veth(dev, netdev.peer_name(dev))

    def unplumb(self, spec: AgentSpec) -> None:
        netdev.delete_link(self.device(spec))

    def start(self, spec: AgentSpec, previous: Handle | None = None, state: dict[str, Any] | None = None) -> Handle:
        doc = manifest(spec)
        argv = [str(a) for a in doc["argv"]]
        d = self.ctx.instance_dir(spec.id)
        dev = self.device(spec)
        iface = netdev.peer_name(dev)
        stats = d / "stats.json"
        if state and isinstance(state.get("stats"), dict):
            stats.write_text(json.dumps(state["stats"]), encoding="utf-8")
        handle = Handle(spec, stats=stats, log=d / "log")
        if previous is not None:
            handle.base_packets = int(previous.extra.get("last_packets", 0))
        elif state and isinstance(state.get("stats"), dict):
            handle.base_packets = int(state["stats"].get("packets", 0) or 0)
        if installed(argv[0]):
            if stats.exists():
                stats.unlink()  # the program counts from zero; earlier runs are in base_packets
            env = {"FSC_IFACE": iface, "FSC_DEVICE": dev, "FSC_INSTANCE": spec.id, "FSC_STATS_FILE": str(stats)}
            handle.proc = launch(argv, handle.log, env)
            settled = alive_for(handle, READY_AFTER)
            return wait_ready(
                handle, lambda: stats.exists() or settled(), self.ctx.ready_timeout, f"process {spec.id} ({argv[0]})"
            )
        if not self.ctx.lab:
            raise StartError(
                f"process {spec.id}: `{argv[0]}` is not installed on host {self.ctx.host} "
                "(not on PATH); install it, or run the agent with --lab to use the module "
                "type's reference behaviour"
            )
        if previous is None and not state and stats.exists():
            stats.unlink()  # a fresh instance starts from zero; a restart continues (--seed)
        handle.base_packets = 0  # the reference behaviour carries its counters itself
        handle.message = (
            f"lab: `{argv[0]}` is not installed; running the reference behaviour of module "
            f"`{doc.get('module', spec.id)}` on {iface}"
        )
        handle.proc = launch(reference_argv(spec, iface, d, str(doc.get("module", ""))), handle.log, reference_env())
        return wait_ready(handle, ready_file(d).exists, self.ctx.ready_timeout, f"reference behaviour of {spec.id}")
