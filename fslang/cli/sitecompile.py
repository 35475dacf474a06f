"""Compiling a site against what the controller has deployed: for `fsc plan` and
`fsc apply` (the deployed placement kept, the generation that changes
nothing when nothing changed), for the controller's own failover and drain
(`recompile`), and the digest that tells an unchanged site without compiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import typer


class _Compiled(NamedTuple):
    """What `plan`/`apply` compiled: the site's name and text, its files, fsc's
    own files of the compile (the incremental cache, kept by :mod:`applycache`),
    and whether it is what is deployed (nothing to change)."""

    name: str
    source: str
    files: dict[str, str]
    own: dict[str, str]
    same: bool


def _compile(site: Path, client: Any, optimal: bool, known: Any = None) -> _Compiled:
    """Compile SITE against what is deployed.

    The deployed placement is the previous one (modules move only when they
    must); the same generation as deployed first (equal files: nothing to
    do), else the other generation. ``known``: the controller's digest answer;
    when the client's cache (:mod:`applycache`) holds the deployed files it
    names, they are not fetched again, and the compile starts from them as
    `fsc compile --previous` would: a one-policy match edit is spliced into
    them (fslang.incremental) when the cache shows the result is the full
    compile's (same fsc, generation, hosts left out and scale)."""
    import fslang.cli as cli
    from compiler.placement.place import Placement
    from fslang import api
    from fslang.cli import applycache, report

    cli._BATCH = True  # the process ends with the command: no heap teardown (see fslang.cli.run)
    name, data, diags = api.read_source(site)
    if data is None:
        report(api.SourceFile(name, ""), diags)
        raise typer.Exit(1)
    kept = applycache.load(client.url, site, known.files_digest) if known is not None else None
    if kept is not None:
        deployed = {"generation": known.generation, "files": kept.files}
        out = frozenset(known.unavailable)
    else:
        answer = client.deployed()
        deployed = answer.model_dump()
        out = frozenset(answer.unavailable)  # down or drained: placement leaves them out, as the failover does
    gen = deployed.get("generation")
    prev = None
    if gen is not None and "placement.json" in deployed.get("files", {}):
        try:
            prev = Placement.from_json(deployed["files"]["placement.json"])
        except (ValueError, KeyError):
            prev = None
    shown = False
    scale = _scale_of(prev, keep_weights=False)
    folder = kept.folder if kept is not None and prev is not None else None

    def build(g: int) -> _Compiled:
        nonlocal shown
        b = api.build(
            name, data, prev, optimal, generation=g, unavailable=out, scale=scale, previous_dir=folder, cache=True
        )
        if not shown:
            report(b.source, b.diagnostics)
            shown = True
        if not b.ok:
            raise typer.Exit(1)
        site_name = b.site.name if b.site is not None else deployed_name
        return _Compiled(site_name, b.source.text, b.files, b.cache, False)

    deployed_name = known.site if known is not None and known.site else site.stem
    if gen is not None:
        c = build(int(gen))
        if c.files == deployed.get("files"):
            if kept is None or not (kept.folder / CACHE_FILE).exists():
                applycache.save(client.url, site, c.files, c.own)
            return c._replace(same=True)
        if _ingress_only(deployed.get("files") or {}, c.files):
            return c
    return build(0 if gen is None else 1 - int(gen))


#: fslang.incremental.CACHE (not imported here: it imports the compiler)
CACHE_FILE = ".fsc-cache/incremental.json"


def _ingress_only(old: dict[str, str], new: dict[str, str]) -> bool:
    """True when ``new`` (compiled with the deployed generation) differs from
    ``old`` only by ingress-table rules added or deleted (none replaced in
    place), with the same instances: then one atomic bundle per switch (the
    flip) is the whole update, and a generation change, which rewrites every
    rule, is not needed. Compares the `.ofctl` text (deterministic), so it
    costs no OpenFlow parsing (nor importing the controller's OpenFlow code).
    The instances depend on plan.json only through its generation and site
    name (backends/platform/controller/instances.py)."""
    from backends.emit.documents import PlanDocument
    from compiler.lowering import tables as T

    changed = {p for p in set(old) | set(new) if old.get(p) != new.get(p)}
    if any(not (p == "plan.json" or p.startswith("openflow/")) for p in changed):
        return False
    try:
        docs = [PlanDocument.from_text(f["plan.json"]) if "plan.json" in f else None for f in (old, new)]
    except ValueError:
        return False
    facts = [(d.generation, d.site) if d is not None else None for d in docs]
    if facts[0] != facts[1]:
        return False
    ingress = frozenset().union(*(d.update.ingress_tables if d is not None else T.INGRESS_TABLES for d in docs))

    def key(line: str) -> tuple[str, str, str]:
        head, _, _actions = line.partition(",actions=")
        fields = head.split(",")
        table, prio = fields[0], fields[1]
        match = ",".join(f for f in fields[2:] if not f.startswith("cookie="))
        return table, prio, match

    for p in changed:
        if not p.endswith(".ofctl"):
            continue
        a = {l for l in old.get(p, "").splitlines() if l.strip()}
        b = {l for l in new.get(p, "").splitlines() if l.strip()}
        added, removed = b - a, a - b
        for line in added | removed:
            if int(line.split(",", 1)[0].removeprefix("table=")) not in ingress:
                return False
        if {key(l) for l in added} & {key(l) for l in removed}:
            return False
    return True


def _scale_of(prev: Any, keep_weights: bool) -> Any:
    """The replica counts (and weights) a deployed placement carries: what the
    platform scaled stays scaled (``compiler.scale``)."""
    from compiler.scale import deployed_scale

    if prev is None:
        return None
    return deployed_scale({i: m for i, m, *_ in prev.instances}, dict(prev.weights), keep_weights)


def recompile(
    source: str, placement: str | None, generation: int, unavailable: frozenset[str], scale: Any = None
) -> Any:
    """The controller's compile function (failover, drain, rebalance): the
    deployed site again, built by ``fslang.api.build`` with the deployed
    placement as the previous one (its replica counts and weights kept, unless
    ``scale`` says others), ``generation``, and ``unavailable`` hosts left out.
    Returns a ``relocate.Recompiled``; the platform layer only calls it."""
    from backends.platform.controller.relocate import Recompiled
    from compiler.placement.place import Placement
    from fslang import api

    prev = None
    if placement:
        try:
            prev = Placement.from_json(placement)
        except ValueError:
            prev = None
    if scale is None:
        scale = _scale_of(prev, keep_weights=True)
    b = api.build("the deployed site", source, prev, generation=generation, unavailable=unavailable, scale=scale)
    errors = [f"{d.code}: {d.message}" for d in b.diagnostics if d.severity == "error"]
    stuck = [d.message for d in b.diagnostics if d.code == "W0702"]
    return Recompiled(b.files if b.ok else None, errors, stuck)


def site_digest(site: Path, optimal: bool) -> str:
    """What `fsc apply` compiles, as one digest: the site file's bytes, the fsc
    version and the options that change the result. The controller keeps the
    digest of the committed site; the same digest again means nothing to change,
    known without compiling. "" when the file cannot be read (the compile words it)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        data = site.read_bytes()
    except OSError:
        return ""
    try:
        fsc_version = version("fsc")
    except PackageNotFoundError:
        fsc_version = "unknown"
    head = f"fsc {fsc_version} optimal={int(optimal)}\n".encode()
    return "sha256:" + hashlib.sha256(head + data).hexdigest()
