"""`vm` instances: a libvirt domain where a hypervisor is present, else (``--lab``)
a network namespace of its own running the module type's reference behaviour.

With a hypervisor: the agent creates the tap device ``tap_name(instance)``
(``ip tuntap``), defines the domain from ``vm/INSTANCE.xml`` (whose NIC is
``<interface type='ethernet'>`` with ``<target dev='TAP' managed='no'/>``,
backends/vm) and starts it; ready = the domain is running; packets = the
tap's received packets (``interfaceStats``); stop = destroy + undefine.

In the lab: namespace ``PREFIX + HOST + '-' + instance`` (``#`` as ``.``), a
veth pair ``tap_name(instance)`` here <-> ``eth0`` there, and
``python -m backends.platform.agent.reference --iface eth0`` inside it.  The status
message says that the instance is the reference behaviour, not a VM.
"""

from __future__ import annotations

import json
import os
from typing import Any

from backends.emit.vm.generate import tap_name
from backends.platform.agent import netdev
from backends.platform.agent.runners.base import AgentSpec, Handle, Poll, Runner, StartError, launch, wait_ready
from backends.platform.agent.runners.reference_run import ready_file, reference_argv, reference_env
from backends.platform.wait import WaitTimeout, wait_until


def hypervisor(uri: str) -> tuple[Any | None, str]:
    """(an open libvirt connection, "") or (None, why there is none)."""
    try:
        import libvirt  # type: ignore[import-not-found]
    except ImportError:
        return None, "libvirt-python is not installed"
    if not os.path.exists("/dev/kvm"):
        return None, "/dev/kvm is missing (no hardware virtualisation)"
    try:
        return libvirt.open(uri), ""
    except libvirt.libvirtError as err:
        return None, f"cannot connect to {uri}: {err}"


def domain_xml(spec: AgentSpec) -> str:
    name = f"vm/{spec.id}.xml"
    text = spec.files.get(name) or next((t for n, t in spec.files.items() if n.startswith("vm/")), None)
    if text is None:
        raise StartError(f"instance {spec.id}: the spec has no {name}; recompile the site with this fsc")
    return text


class VmRunner(Runner):
    kind = "vm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn: Any | None = None
        self._why = ""
        self._probed = False

    def conn(self) -> Any | None:
        if not self._probed:
            self._conn, self._why = hypervisor(self.ctx.libvirt_uri)
            self._probed = True
        return self._conn

    def netns(self, spec: AgentSpec) -> str:
        return f"{self.ctx.netns_prefix}{self.ctx.host}-{spec.id.replace('#', '.')}"

    def _mode(self, spec: AgentSpec) -> str:
        if self.conn() is not None:
            return "libvirt"
        if self.ctx.lab:
            return "lab"
        raise StartError(
            f"vm {spec.id}: no hypervisor on host {self.ctx.host} ({self._why}); install libvirt "
            "and libvirt-python on a host with KVM, or run the agent with --lab"
        )

    def plumb(self, spec: AgentSpec) -> None:
        if self._mode(spec) == "libvirt":
            netdev.ensure_tap(tap_name(spec.id))
        else:
            netdev.ensure_netns_veth(tap_name(spec.id), self.netns(spec))

    def unplumb(self, spec: AgentSpec) -> None:
        netdev.delete_link(tap_name(spec.id))
        if self.conn() is None:
            netdev.delete_netns(self.netns(spec))

    def start(self, spec: AgentSpec, previous: Handle | None = None, state: dict[str, Any] | None = None) -> Handle:
        d = self.ctx.instance_dir(spec.id)
        if self._mode(spec) == "libvirt":
            return self._start_domain(spec, previous)
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

    # ---- libvirt (a host with a hypervisor) ----
    def _start_domain(self, spec: AgentSpec, previous: Handle | None) -> Handle:
        conn = self.conn()
        assert conn is not None
        handle = Handle(spec, log=self.ctx.instance_dir(spec.id) / "log")
        if previous is not None:
            handle.base_packets = int(previous.extra.get("last_packets", 0))
        try:
            dom = conn.defineXML(domain_xml(spec))
            if not dom.isActive():
                dom.create()
        except Exception as err:  # libvirt.libvirtError; the module may be absent at import time
            raise StartError(f"vm {spec.id}: libvirt refused the domain: {err}") from err
        handle.extra["domain"] = dom
        try:
            wait_until(dom.isActive, self.ctx.ready_timeout, f"vm {spec.id}'s domain", max_interval=0.2)
        except WaitTimeout:
            raise StartError(f"vm {spec.id}: the domain did not start in {self.ctx.ready_timeout:.0f} s") from None
        return handle

    def poll(self, handle: Handle) -> Poll:
        dom = handle.extra.get("domain")
        if dom is None:
            return super().poll(handle)
        try:
            active = bool(dom.isActive())
            rx = int(dom.interfaceStats(tap_name(handle.spec.id))[1]) if active else 0
        except Exception as err:  # the domain went away
            return Poll(False, 1, handle.base_packets, f"domain lost: {err}")
        total = handle.base_packets + rx
        handle.extra["last_packets"] = total
        return Poll(active, None if active else 1, total, handle.message)

    def stop(self, handle: Handle) -> None:
        dom = handle.extra.get("domain")
        if dom is None:
            super().stop(handle)
            return
        for step in (dom.destroy, dom.undefine):
            try:
                step()
            except Exception:  # already stopped / undefined: the goal is reached
                pass
