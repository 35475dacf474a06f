"""`vm` instances: a libvirt domain, or (``--lab``) a network namespace of its
own running the module type's reference behaviour.

With libvirt (the agent without ``--lab``; URI ``--libvirt-uri``, default
``qemu:///system``): ``plumb`` creates the tap device ``tap_name(instance)``
(``ip tuntap``), ``start`` defines the domain from ``vm/INSTANCE.xml`` (its
NIC is ``<interface type='ethernet'>`` with ``<target dev='TAP'
managed='no'/>``, backends/emit/vm) and starts it; ready = the domain is
running; packets = the packets the domain received on that NIC
(``interfaceStats``), counted from the start of the run and carried across
restarts and moves; ``stop`` = destroy + undefine.  A move boots the domain
afresh on the new host with the old one's counters (``export_state`` /
``start(state=...)``, make before break): QEMU refuses to save or migrate a
domain whose disk is a ``<transient/>`` overlay, as the emitted ones are, so
no memory moves.  An agent that restarts adopts the domains its records name
that still run (:meth:`VmRunner.adopt`).  docs/platform.md says what libvirt's
test driver proves of this, what was checked with QEMU, and what a hypervisor
host needs.

In the lab: namespace ``PREFIX + HOST + '-' + instance`` (``#`` as ``.``), a
veth pair ``tap_name(instance)`` here <-> ``eth0`` there, and
``python -m backends.platform.agent.reference --iface eth0`` inside it.  The status
message says that the instance is the reference behaviour, not a VM.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from backends.emit.vm.generate import tap_name
from backends.platform.agent import netdev
from backends.platform.agent.runners.base import AgentSpec, Handle, Poll, Runner, StartError, launch, wait_ready
from backends.platform.agent.runners.reference_run import ready_file, reference_argv, reference_env
from backends.platform.agent.runners.virt import Hypervisor, VirtError, no_domain
from backends.platform.wait import WaitTimeout, wait_until

log = logging.getLogger("fsc.agent")


def domain_xml(spec: AgentSpec) -> str:
    name = f"vm/{spec.id}.xml"
    text = spec.files.get(name) or next((t for n, t in spec.files.items() if n.startswith("vm/")), None)
    if text is None:
        raise StartError(f"instance {spec.id}: the spec has no {name}; recompile the site with this fsc")
    return text


def moved_packets(state: dict[str, Any] | None) -> int:
    """The packets an instance had counted on the host it moves from."""
    stats = (state or {}).get("stats")
    if not isinstance(stats, dict):
        return 0
    value = stats.get("packets", stats.get("packets_in", 0))
    return value if isinstance(value, int) else 0


class VmRunner(Runner):
    kind = "vm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hypervisor = Hypervisor(self.ctx.libvirt_uri)

    def netns(self, spec: AgentSpec) -> str:
        return f"{self.ctx.netns_prefix}{self.ctx.host}-{spec.id.replace('#', '.')}"

    def plumb(self, spec: AgentSpec) -> None:
        if self.ctx.lab:
            netdev.ensure_netns_veth(tap_name(spec.id), self.netns(spec))
        else:
            netdev.ensure_tap(tap_name(spec.id))

    def unplumb(self, spec: AgentSpec) -> None:
        netdev.delete_link(tap_name(spec.id))
        if self.ctx.lab:
            netdev.delete_netns(self.netns(spec))

    def start(self, spec: AgentSpec, previous: Handle | None = None, state: dict[str, Any] | None = None) -> Handle:
        if not self.ctx.lab:
            return self._start_domain(spec, previous, state)
        d = self.ctx.instance_dir(spec.id)
        ns = self.netns(spec)
        stats = d / "stats.json"
        if previous is None and stats.exists():
            stats.unlink()
        if state and isinstance(state.get("stats"), dict):
            stats.write_text(json.dumps(state["stats"]), encoding="utf-8")
        handle = Handle(spec, stats=stats, log=d / "log")
        handle.message = (
            f"lab: no hypervisor; vm {spec.id} is the reference behaviour of its module type in network namespace {ns}"
        )
        handle.extra["netns"] = ns
        argv = ["ip", "netns", "exec", ns, *reference_argv(spec, "eth0", d)]
        handle.proc = launch(argv, handle.log, reference_env())
        return wait_ready(handle, ready_file(d).exists, self.ctx.ready_timeout, f"reference behaviour of vm {spec.id}")

    # ---- libvirt ----
    def _start_domain(self, spec: AgentSpec, previous: Handle | None, state: dict[str, Any] | None) -> Handle:
        handle = Handle(spec, log=self.ctx.instance_dir(spec.id) / "log")
        handle.base_packets = int(previous.extra.get("last_packets", 0)) if previous else moved_packets(state)
        try:
            dom = self.hypervisor.define(domain_xml(spec))
            if not self.hypervisor.call("cannot read the domain's state", dom.isActive):
                self.hypervisor.call("libvirt could not start the domain", dom.create)
        except VirtError as err:
            raise StartError(f"vm {spec.id}: {err}") from None
        try:
            active = lambda: self.hypervisor.call("cannot read the domain's state", dom.isActive)  # noqa: E731
            wait_until(active, self.ctx.ready_timeout, f"vm {spec.id}'s domain", max_interval=0.2)
            self._attach(handle, dom)
            handle.extra["rx_at_start"], handle.extra["rx_bytes_at_start"] = self._nic(handle)
        except WaitTimeout:
            raise StartError(f"vm {spec.id}: the domain did not start in {self.ctx.ready_timeout:.0f} s") from None
        except VirtError as err:
            raise StartError(f"vm {spec.id}: {err}") from None
        handle.message = f"libvirt domain {dom.name()} running ({self.ctx.libvirt_uri})"
        return handle

    def _attach(self, handle: Handle, dom: Any) -> None:
        handle.extra["domain"] = dom
        handle.extra["domain_uuid"] = dom.UUIDString()
        handle.extra["libvirt_uri"] = self.ctx.libvirt_uri

    def _nic(self, handle: Handle) -> tuple[int, int]:
        """(packets, bytes) the domain received on its NIC (the tap's counters, which outlive a run)."""
        dom = handle.extra["domain"]
        stats = self.hypervisor.call("cannot read the NIC counters", dom.interfaceStats, tap_name(handle.spec.id))
        return int(stats[1]), int(stats[0])

    def poll(self, handle: Handle) -> Poll:
        if "domain_uuid" not in handle.extra:
            return super().poll(handle)
        try:
            dom = handle.extra["domain"] = self.hypervisor.lookup(handle.extra["domain_uuid"])
            active = bool(self.hypervisor.call("cannot read the domain's state", dom.isActive))
            nic = self._nic(handle) if active else None
            # virDomainGetInfo: [state, max memory, memory, vcpus, CPU time in ns]
            cpu = self.hypervisor.call("cannot read the domain's CPU time", dom.info)[4] / 1e9 if active else 0.0
        except VirtError as err:
            return Poll(False, 1, handle.base_packets, f"domain lost: {err}")
        if nic is None:
            return Poll(False, 1, handle.base_packets, "the domain is not running any more")
        total = handle.base_packets + max(0, nic[0] - int(handle.extra.get("rx_at_start", 0)))
        received = max(0, nic[1] - int(handle.extra.get("rx_bytes_at_start", 0)))
        handle.extra["last_packets"] = total
        return Poll(True, None, total, handle.message, bytes=received, cpu_seconds=float(cpu))

    def stop(self, handle: Handle) -> None:
        if "domain_uuid" not in handle.extra:
            super().stop(handle)
            return
        try:
            dom = self.hypervisor.lookup(handle.extra["domain_uuid"])
        except VirtError as err:
            if not no_domain(err):
                log.warning("%s: %s", handle.spec.id, err)
            return  # already undefined: the goal is reached
        try:
            if self.hypervisor.call("cannot read the domain's state", dom.isActive):
                self.hypervisor.call("cannot destroy the domain", dom.destroy)
            self.hypervisor.call("cannot undefine the domain", dom.undefine)
        except VirtError as err:
            if not no_domain(err):
                log.warning("%s: %s", handle.spec.id, err)

    def export_state(self, handle: Handle) -> dict[str, Any]:
        if "domain_uuid" not in handle.extra:
            return super().export_state(handle)
        packets = self.poll(handle).packets
        return {"id": handle.spec.id, "digest": handle.spec.digest, "stats": {"packets": packets}}

    def adopt(self, handle: Handle) -> bool:
        """Is the domain an earlier agent recorded still running here? (then it is this run)"""
        if "domain_uuid" not in handle.extra:
            return super().adopt(handle)
        if self.ctx.lab or handle.extra.get("libvirt_uri") != self.ctx.libvirt_uri:
            return False
        try:
            dom = self.hypervisor.lookup(handle.extra["domain_uuid"])
            if not self.hypervisor.call("cannot read the domain's state", dom.isActive):
                return False
        except VirtError:
            return False
        handle.extra["domain"] = dom
        return True
