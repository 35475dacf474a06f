"""Render a compiled site as a Graphviz DOT graph (and, through `dot`, as SVG
or PNG).

``render_dot`` is pure and deterministic: it builds a small view model from
the compiled site (in the site's own declaration order) and fills
``site.dot.j2``.  Every name and every piece of user text goes through the
template filters ``q`` (a quoted DOT ID) and ``lbl`` (a quoted plain
label), so no string from the site file can change
the structure of the graph.  Labels are plain strings, never HTML-like
labels; ``&`` is written as ``&amp;`` so Graphviz's entity handling shows it
as typed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from compiler import ir
from compiler.pipeline import Compiled
from compiler.steering.steer import BoxVisit, Dispatch, Dropped, Exit, Fork, Visit

# Fixed palette (colour-blind-friendly first); policy i gets PALETTE[i % len].
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#ad494a",
    "#637939",
)
WIRE = "#8c8c8c"
MAX_TEXT = 56  # user text (commands, images) is cut to this many characters
MAX_NETS = 4  # nets shown per edge


# ---- escaping ---------------------------------------------------------------
def _clean(text: str, limit: int | None = None) -> str:
    """One line of user text: control characters become spaces, long text is cut."""
    s = "".join(" " if (ord(ch) < 32 or ord(ch) == 127) else ch for ch in str(text))
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    return s


def _quote(text: str) -> str:
    """Inside a quoted DOT string only `\\` and `"` need escaping."""
    return _clean(text).replace("\\", "\\\\").replace('"', '\\"')


def _esc(text: str) -> str:
    """Label text: quoted, and `&` as an entity (Graphviz reads entities in labels)."""
    return _quote(text).replace("&", "&amp;")


def q(name: object) -> str:
    """A quoted DOT ID."""
    return '"' + _quote(str(name)) + '"'


def _lines(text: str | Sequence[str]) -> list[str]:
    return [text] if isinstance(text, str) else list(text)


def lbl(text: str | Sequence[str]) -> str:
    """A quoted plain label; a list is one line per item (centred)."""
    return '"' + "\\n".join(_esc(line) for line in _lines(text)) + '"'


# ---- the view model -----------------------------------------------------------
@dataclass
class PathEdge:
    a: str
    b: str
    color: str
    style: str = "solid"
    label: str = ""


@dataclass
class PolicyView:
    name: str
    color: str
    legend: str
    edges: list[PathEdge] = field(default_factory=list)


def _size(n: int) -> str:
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= f and n % (f // 4) == 0:
            return f"{n / f:g}{unit}"
    return f"{n}B"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _port_id(sw: str, port: int) -> str:
    return f"port:{sw}:{port}"


class _Builder:
    def __init__(self, c: Compiled) -> None:
        if c.placement is None or c.steering is None:
            raise ValueError("render_dot needs a compiled site (placement and steering)")
        self.c = c
        self.site: ir.Site = c.site
        self.host_of = c.host_of()
        self.modules = {m.name: m for m in self.site.modules}
        self.entries = {e.id: e for e in c.steering.entries}
        self.used_ports: dict[str, set[int]] = {s.name: set() for s in self.site.switches}
        self.inst_node: dict[str, str] = {}
        self.needs_exit = False
        self.needs_drop = False

    # physical side
    def _port(self, pid: ir.PortId) -> str:
        sw, n = pid
        self.used_ports.setdefault(sw, set()).add(n)
        return _port_id(sw, n)

    def hosts(self) -> list[dict]:
        usage = self.c.placement.usage()  # type: ignore[union-attr]
        by_host: dict[str, list[str]] = {h.name: [] for h in self.site.hosts}
        for m in self.site.modules:
            for inst in m.instance_names():
                h = self.host_of.get(inst)
                if h is not None:
                    by_host.setdefault(h, []).append(inst)
        out = []
        for k, h in enumerate(self.site.hosts):
            u = usage.get(h.name)
            cores = f"{u.cores_used}/{h.cores}" if u else f"-/{h.cores}"
            mem = f"{_size(u.memory_used)}/{_size(h.memory)}" if u else _size(h.memory)
            label = [f"host {h.name}" + ("  (spare)" if h.spare else ""), f"cores {cores}  memory {mem}"]
            if h.runs:
                label.append("runs " + ", ".join(sorted(h.runs)))
            instances = []
            for inst in by_host[h.name]:
                node = f"inst:{inst}"
                self.inst_node[inst] = node
                instances.append({"id": node, "lines": self._instance_lines(inst)})
            out.append(
                {
                    "cluster": f"cluster_host_{k}",
                    "label": label,
                    "spare": h.spare,
                    "instances": instances,
                    "placeholder": f"host:{h.name}",
                    "anchor": instances[0]["id"] if instances else f"host:{h.name}",
                    "ports": [self._port(p) for p in h.ports],
                }
            )
        return out

    def _instance_lines(self, inst: str) -> list[str]:
        m = self.modules[inst.split("#", 1)[0]]
        lines = [inst, m.type if m.type == m.kind else f"{m.type}, {m.kind}"]
        params = dict(m.params)
        if m.kind == "process" and params.get("command"):
            lines.append(_clean("$ " + str(params["command"]), MAX_TEXT))
        if m.image:
            lines.append(_clean("image " + m.image, MAX_TEXT))
        return lines

    def edges(self) -> list[dict]:
        out = []
        for e in self.site.edges:
            lines = [f"edge {e.name}"]
            nets = [str(n) for n in e.nets]
            lines += nets[:MAX_NETS]
            if len(nets) > MAX_NETS:
                lines.append(f"(+{len(nets) - MAX_NETS} more)")
            if e.default:
                lines.append("(default)")
            out.append({"id": f"edge:{e.name}", "lines": lines, "ports": [self._port(p) for p in e.ports]})
        return out

    def boxes(self) -> list[dict]:
        out = []
        for b in self.site.boxes:
            lines = [f"box {b.name}", f"in {b.in_port[0]}:{b.in_port[1]}  out {b.out_port[0]}:{b.out_port[1]}"]
            out.append(
                {
                    "id": f"box:{b.name}",
                    "lines": lines,
                    "in_port": self._port(b.in_port),
                    "out_port": self._port(b.out_port),
                }
            )
        return out

    def links(self) -> list[dict]:
        return [{"a": self._port(l.a), "b": self._port(l.b)} for l in self.site.links]

    def switches(self) -> list[dict]:
        out = []
        for k, s in enumerate(self.site.switches):
            rules = len(self.c.tables[s.name].entries) if s.name in self.c.tables else None
            info = [f"dpid {s.dpid:#x}", f"OpenFlow {s.openflow}"]
            if rules is not None:
                info.append(f"rules {rules}" + (f"/{s.tcam}" if s.tcam is not None else ""))
            out.append(
                {
                    "cluster": f"cluster_switch_{k}",
                    "label": [f"switch {s.name}", "  ".join(info)],
                    "ports": [
                        {"id": _port_id(s.name, n), "label": str(n)} for n in sorted(self.used_ports.get(s.name, ()))
                    ],
                }
            )
        return out

    # logical side: every policy's path
    def policies(self) -> list[PolicyView]:
        views = []
        forward = [(p, e) for p, d, e in self.c.steering.ingress if d == "forward"]  # type: ignore[union-attr]
        all_edges = [e.name for e in self.site.edges]
        for pol, entry in forward:
            color = PALETTE[pol.index % len(PALETTE)]
            sources = list(pol.sources) or all_edges
            legend = f"{pol.name}: from {', '.join(pol.sources) if pol.sources else 'any edge'}"
            if pol.symmetric:
                legend += " (symmetric)"
            view = PolicyView(pol.name, color, legend)
            seen: dict[tuple, PathEdge] = {}
            label = pol.name + (" \u21c4" if pol.symmetric else "")
            for src in sources:
                start = f"edge:{src}"
                for _, d in entry.combos:
                    self._walk(view, seen, start, d, label, "solid", frozenset())
            views.append(view)
        return views

    def _add(self, view: PolicyView, seen: dict, a: str, b: str, style: str, label: str) -> None:
        key = (a, b, style, label)
        if key not in seen:
            seen[key] = PathEdge(a, b, view.color, style, label)
            view.edges.append(seen[key])

    def _walk(
        self, view: PolicyView, seen: dict, prev: str, d: Dispatch, label: str, style: str, boxes_seen: frozenset[int]
    ) -> None:
        key = ("walk", prev, d, label, style, boxes_seen)  # combos share their tails: walk each once
        if key in seen:
            return
        seen[key] = None
        if isinstance(d, Exit):
            self.needs_exit = True
            self._add(view, seen, prev, "exit", style, label)
        elif isinstance(d, Dropped):
            self.needs_drop = True
            self._add(view, seen, prev, "drop", style, label)
        elif isinstance(d, Visit):
            here = self.inst_node[d.instance]
            replicated = self.modules[d.module].replicas > 1
            self._add(view, seen, prev, here, "dashed" if replicated and style == "solid" else style, label)
            for out, nxt in d.next:
                self._walk(view, seen, here, nxt, "" if out == "out" else out, "solid", boxes_seen)
        elif isinstance(d, BoxVisit):
            here = f"box:{d.box}"
            self._add(view, seen, prev, here, style, label)
            if d.occurrence in boxes_seen:  # defensive: entries never loop
                return
            entry = self.entries.get(d.occurrence)
            if entry is not None:
                for _, nxt in entry.combos:
                    self._walk(view, seen, here, nxt, "", "solid", boxes_seen | {d.occurrence})
        elif isinstance(d, Fork):
            self._walk(view, seen, prev, d.copy, (label + " copy").strip(), "dotted", boxes_seen)
            self._walk(view, seen, prev, d.main, label, style, boxes_seen)


def model(c: Compiled) -> dict:
    """The view model the template draws (plain data, deterministic order)."""
    b = _Builder(c)
    hosts = b.hosts()
    edges = b.edges()
    boxes = b.boxes()
    links = b.links()
    policies = b.policies()
    site = c.site
    return {
        "site": site.name,
        "title": [
            f"site {site.name}",
            f"{_count(len(site.policies), 'policy', 'policies')}, "
            f"{_count(sum(m.replicas for m in site.modules), 'module instance', 'module instances')}, "
            f"default {site.default_action}",
        ],
        "switches": b.switches(),
        "hosts": hosts,
        "edges": edges,
        "boxes": boxes,
        "links": links,
        "policies": policies,
        "ends": [n for n, used in (("exit", b.needs_exit), ("drop", b.needs_drop)) if used],
        "needs_exit": b.needs_exit,
        "needs_drop": b.needs_drop,
        "wire": WIRE,
    }


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters.update(q=q, lbl=lbl)


def render_dot(compiled: Compiled) -> str:
    """The DOT text of the compiled site's picture."""
    return _ENV.get_template("site.dot.j2").render(**model(compiled))


# ---- running Graphviz -----------------------------------------------------------
class DotMissing(RuntimeError):
    """The Graphviz `dot` program is not installed (not on PATH)."""


class DotFailed(RuntimeError):
    """`dot` ran but failed."""


FORMATS = {".dot": None, ".svg": "svg", ".png": "png"}


def run_dot(dot_text: str, fmt: str, dot: str = "dot", timeout: float = 300) -> bytes:
    """Lay out ``dot_text`` with Graphviz and return the ``fmt`` (svg, png) bytes."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"unsupported format {fmt!r}")
    try:
        proc = subprocess.run(
            [dot, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise DotMissing(f"Graphviz `{dot}` is not installed (not found on PATH)") from err
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DotFailed(f"cannot run `{dot}`: {err}") from err
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip()
        raise DotFailed(f"`{dot} -T{fmt}` failed (exit {proc.returncode})" + (f": {msg}" if msg else ""))
    return proc.stdout
