"""`click` instances: the host's Click configuration of one generation (``click.gN``).

Runs ``click CONFIG`` when a `click` binary is on the PATH, else the project's
userlevel runtime ``python -m backends.click.runtime CONFIG --stats-file F``
(backends/click/runtime), which reads and writes the devices the
configuration names over AF_PACKET and writes per-element counters to F.
Ready: the runtime has written its stats file (a `click` binary: it has run
for a second).  Packets: the stats file's ``packets`` or, failing that, the
``count`` of element ``from_switch`` (frames taken from the switch port).

Both generations may run at once during an update; each accepts only the tags
of its own generation, so they share the devices without meeting.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from typing import Any

from backends.platform.agent.runners.base import (
    PYTHON,
    AgentSpec,
    Handle,
    Poll,
    Runner,
    StartError,
    alive_for,
    launch,
    wait_ready,
)
from backends.platform.agent.runners.reference_run import reference_env


def config_text(spec: AgentSpec) -> str:
    confs = [t for n, t in sorted(spec.files.items()) if n.endswith(".click")]
    if len(confs) != 1:
        raise StartError(
            f"instance {spec.id}: expected one .click file in the spec, got {len(confs)}; "
            "check the controller's deployed files"
        )
    return confs[0]


def click_packets(doc: Any) -> int | None:
    """Packets from a Click stats document (``packets``, else ``from_switch``'s count)."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("packets"), int):
        return doc["packets"]
    elements = doc.get("elements", doc)
    entry = elements.get("from_switch") if isinstance(elements, dict) else None
    if isinstance(entry, dict):
        for key in ("count", "packets", "out"):
            if isinstance(entry.get(key), int):
                return entry[key]
    return None


#: ``i_fw :: I_fw;  // fw``: a module instance's compound and, in the comment, its name
_DECLARED = re.compile(r"^\s*(i_\w+)\s*::\s*I_\w+\s*;\s*//\s*(\S+)", re.MULTILINE)


def instance_compounds(config: str) -> dict[str, str]:
    """Compound element -> module instance name (``i_rep_1`` -> ``rep#1``), from
    the declarations fsc writes into a host's Click configuration."""
    return {m.group(1): m.group(2) for m in _DECLARED.finditer(config)}


def module_packets(doc: Any, names: dict[str, str]) -> dict[str, int]:
    """Packets each module instance took in, from a Click stats document's ``compounds``."""
    compounds = doc.get("compounds") if isinstance(doc, dict) else None
    out: dict[str, int] = {}
    if isinstance(compounds, dict):
        for cname, name in names.items():
            c = compounds.get(cname)
            if isinstance(c, dict) and isinstance(c.get("packets_in"), int):
                out[name] = c["packets_in"]
    return out


class ClickRunner(Runner):
    kind = "click"

    def command(self, config: str, stats: str) -> tuple[list[str], bool]:
        """(argv, writes stats) for this host."""
        if self.ctx.click_command:
            return [*self.ctx.click_command, config, "--stats-file", stats], True
        binary = shutil.which("click")
        if binary:
            return [binary, config], False
        if importlib.util.find_spec("backends.click.runtime") is None:
            raise StartError(
                "no `click` binary on PATH and the userlevel runtime backends.click.runtime is "
                "not installed; install Click or update fsc"
            )
        return [PYTHON, "-m", "backends.click.runtime", config, "--stats-file", stats, "--stats-interval", "1"], True

    def start(self, spec: AgentSpec, previous: Handle | None = None, state: dict[str, Any] | None = None) -> Handle:
        d = self.ctx.instance_dir(spec.id)
        config = d / "config.click"
        config.write_text(config_text(spec), encoding="utf-8")
        stats = d / "stats.json"
        if stats.exists():
            stats.unlink()
        argv, writes_stats = self.command(str(config), str(stats))
        handle = Handle(spec, stats=stats if writes_stats else None, log=d / "log")
        if previous is not None:
            handle.base_packets = int(previous.extra.get("last_packets", 0))
        handle.message = f"{'runtime' if writes_stats else 'click'}: {' '.join(argv[:4])}"
        handle.extra["compounds"] = instance_compounds(config_text(spec))
        handle.proc = launch(argv, handle.log, reference_env())
        ready = stats.exists if writes_stats else alive_for(handle, 1.0)
        return wait_ready(handle, ready, self.ctx.ready_timeout, f"Click configuration {spec.id}")

    def poll(self, handle: Handle) -> Poll:
        code = handle.proc.poll() if handle.proc is not None else None
        packets, modules = None, {}
        if handle.stats is not None:
            try:
                doc = json.loads(handle.stats.read_text(encoding="utf-8"))
                packets = click_packets(doc)
                names = handle.extra.get("compounds") or instance_compounds(config_text(handle.spec))
                modules = module_packets(doc, names)
            except (OSError, ValueError):
                packets = None
        total = handle.base_packets + (packets or 0)
        handle.extra["last_packets"] = total
        return Poll(code is None, code, total, handle.message, modules)
