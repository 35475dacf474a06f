"""The instances each host should run, derived from compiled files (pure).

One Click instance per host and generation (``click.gN``, the host's
``click/HOST.click``); one instance per ``process`` and ``vm`` module
instance, named like the instance (see docs/platform.md, agent protocol).
A host that placement gives no instance (a spare, a drained host) runs
nothing, not even an empty Click configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from backends.platform.controller.flows import FilesError
from backends.platform.controller.plan import generation_of, placement_doc, placement_of, plan_doc
from backends.platform.controller.protocol import InstanceKind, InstanceSpec, spec_digest


def _spec(id_: str, kind: InstanceKind, generation: int, files: dict[str, str], site: str) -> InstanceSpec:
    return InstanceSpec(
        id=id_,
        kind=kind,
        generation=generation,
        files=files,
        site=site,
        digest=spec_digest(files),
    )


def host_specs(files: Mapping[str, str] | None) -> dict[str, list[InstanceSpec]]:
    """Host -> its instances for one compiled site, sorted by id."""
    if not files:
        return {}
    gen = generation_of(files)
    doc = plan_doc(files)
    site = doc.site if doc is not None else ""
    out: dict[str, list[InstanceSpec]] = {}
    pdoc = placement_doc(files)
    for path, text in sorted(files.items()):
        if path.startswith("click/") and path.endswith(".click"):
            on = path[len("click/") : -len(".click")]
            if pdoc is not None and on in pdoc.hosts and not pdoc.hosts[on].instances:
                continue  # nothing placed there
            out.setdefault(on, []).append(_spec(f"click.g{gen}", "click", gen, {path: text}, site))
    placement = placement_of(files)
    for path, text in sorted(files.items()):
        kinds: tuple[tuple[str, str, InstanceKind], ...] = (("process/", ".json", "process"), ("vm/", ".xml", "vm"))
        for prefix, suffix, kind in kinds:
            if path.startswith(prefix) and path.endswith(suffix):
                name = path[len(prefix) : -len(suffix)]
                host: str | None = placement.get(name)
                if host is None and kind == "process":
                    host = _manifest_host(path, text)
                if host is None:
                    continue
                out.setdefault(host, []).append(_spec(name, kind, gen, {path: text}, site))
    return {h: sorted(v, key=lambda s: s.id) for h, v in sorted(out.items())}


def desired(file_sets: list[Mapping[str, str] | None]) -> dict[str, list[InstanceSpec]]:
    """Union of several sites' instances (old first, then new: the later one
    wins when an id is in both, e.g. a process instance whose files changed)."""
    merged: dict[str, dict[str, InstanceSpec]] = {}
    for files in file_sets:
        for host, specs in host_specs(files).items():
            for s in specs:
                merged.setdefault(host, {})[s.id] = s
    return {h: [v[k] for k in sorted(v)] for h, v in sorted(merged.items())}


def hosts_of(files: Mapping[str, str] | None) -> list[str]:
    """Every host of the site (placement.json), spare ones included."""
    doc = placement_doc(files)
    return sorted(doc.hosts) if doc is not None else []


def _manifest_host(path: str, text: str) -> str | None:
    """The ``host`` of a process manifest that placement.json does not name."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise FilesError(f"{path}: not JSON ({err})") from None
    host = doc.get("host") if isinstance(doc, dict) else None
    return host if isinstance(host, str) else None
