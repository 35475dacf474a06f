"""`process/INSTANCE.json`: how a host agent runs a `process` module instance.

``argv`` is run without a shell; ``device`` is the tap device of the instance
(:func:`backends.emit.vm.generate.tap_name`, the one the host's Click configuration
sends the module's frames to, tagged with the step's VLAN id, and reads them
back from, same VLAN id, output index in the PCP bits). The agent creates a
veth pair for it and hands the process the other end in ``FSC_IFACE``.
``interfaces`` are the host's switch ports (Click's; for the record).
``restart``: ``on-failure`` restarts after a non-zero exit or a signal, after
``backoff_seconds`` doubling per restart, and gives up after ``max_restarts``.
"""

from __future__ import annotations

import json
import shlex

from backends.emit.vm.generate import tap_name
from compiler.pipeline import Compiled


def _argv(command: str) -> list[str]:
    """The command as an argument vector: no shell ever sees it (the checker
    rejects quoting that does not balance, E0309)."""
    return shlex.split(command)


def render_process(c: Compiled) -> dict[str, str]:
    files: dict[str, str] = {}
    host_of = c.host_of()
    for m in c.site.modules:
        if m.kind != "process":
            continue
        command = dict(m.params).get("command", "")
        for inst in m.instance_names():
            host = c.site.host(host_of[inst])
            doc = {
                "instance": inst,
                "module": m.name,
                "host": host.name,
                "argv": _argv(command),
                "command": command,
                "device": tap_name(inst),
                "interfaces": [{"switch": sw, "port": p} for sw, p in host.ports],
                "resources": {"cores": m.cores, "memory_bytes": m.memory},
                "restart": {"policy": "on-failure", "max_restarts": 5, "backoff_seconds": 1},
            }
            files[f"process/{inst}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return files
