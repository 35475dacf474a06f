"""Checking a Click configuration the way Click checks it when it builds a router.

Unknown classes, undeclared and redeclared elements, ports outside an element's counts (including the
configuration-dependent outputs of the classifiers), unconnected ports, push/pull conflicts; compound elements
are flattened first. The runtime reuses :class:`_Checker` to build its element graph. ``python -m
backends.click.lang.checker FILE...`` prints the problems of Click files.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from backends.click.lang.args import split_args, substitute
from backends.click.lang.ast import (
    AnonElement,
    Chain,
    ClickConfig,
    ClickProblem,
    ClickSyntaxError,
    Declaration,
    Define,
    Element,
    ElementClassDef,
    InlineDecl,
    Require,
    Statement,
)
from backends.click.lang.element_table import _INF, ElementSpec, load_element_table
from backends.click.lang.graph import _ClassEntry, _CompoundClass, _Edge, _Node
from backends.click.lang.parser import parse_config


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _fmt_range(lo: int, hi: int) -> str:
    if hi == _INF:
        return f"at least {lo}"
    if lo == hi:
        return str(lo)
    return f"{lo} to {hi}"


class _Checker:
    MAX_DEPTH = 32

    def __init__(self, table: dict[str, ElementSpec], filename: str):
        self.table = table
        self.filename = filename
        self.problems: list[ClickProblem] = []
        self.nodes: dict[str, _Node] = {}
        self.edges: list[_Edge] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(ClickProblem(line, message, self.filename))

    # ---- building the graph -------------------------------------------------

    def run(self, config: ClickConfig) -> list[ClickProblem]:
        classes: dict[str, _ClassEntry] = dict(self.table)
        self.instantiate(config.statements, "", {}, classes, owner=None, stack=())
        self.check_graph()
        seen = set()
        out = []
        for p in sorted(self.problems, key=lambda p: p.line):
            if (p.line, p.message) not in seen:
                seen.add((p.line, p.message))
                out.append(p)
        return out

    def instantiate(
        self,
        stmts: tuple[Statement, ...],
        prefix: str,
        env: dict[str, str],
        classes: dict[str, _ClassEntry],
        owner: str | None,
        stack: tuple[int, ...],
    ) -> None:
        env = dict(env)
        for s in stmts:
            if isinstance(s, Define):
                for k, v in s.bindings:
                    env[k] = v
        local: dict[str, str] = {}  # local element name -> node id
        decl_line: dict[str, int] = {}
        if owner is not None:
            local["input"] = owner + "/input"
            local["output"] = owner + "/output"
        later_classes = {s.name: s.line for s in stmts if isinstance(s, ElementClassDef)}

        def lookup_class(name: str, line: int) -> _ClassEntry | None:
            entry = classes.get(name)
            if entry is None:
                hint = ""
                if name in later_classes and later_classes[name] > line:
                    hint = f" (elementclass {name} is defined later, on line {later_classes[name]})"
                self.problem(line, f"unknown element class '{name}'{hint}")
            return entry

        def new_element(name: str, cls: str, cfg: str | None, line: int, entry: _ClassEntry | None) -> str:
            nid = prefix + name
            args = split_args(substitute(cfg, env)) if cfg is not None else ()
            if entry is None:
                self.nodes[nid] = _Node(nid, "unknown", cls, line)
            elif isinstance(entry, ElementSpec):
                self.nodes[nid] = _Node(nid, "prim", cls, line, entry, args)
            else:
                self.nodes[nid] = _Node(nid, "compound", cls, line, args=args, compound=entry)
                self.expand_compound(nid, entry, args, line, stack)
            return nid

        def declare(name: str, cls: str, cfg: str | None, line: int) -> str | None:
            if name in ("input", "output") and owner is not None:
                self.problem(line, f"redeclaration of pseudoelement '{name}'")
                return None
            if name in local:
                self.problem(
                    line,
                    f"redeclaration of element '{name}' (previously declared on line {decl_line[name]})",
                )
                return None
            if name in classes:
                self.problem(line, f"class '{name}' used as element name")
            entry = lookup_class(cls, line)
            nid = new_element(name, cls, cfg, line, entry)
            local[name] = nid
            decl_line[name] = line
            return nid

        def anonymous(cls: str, cfg: str | None, line: int, entry: _ClassEntry | None) -> str:
            # Click names anonymous elements Class@N, N = 1 + elements so far
            # in the scope (a compound's input and output count)
            n = len(local) + 1
            name = f"{cls}@{n}"
            while name in local or prefix + name in self.nodes:
                n += 1
                name = f"{cls}@{n}"
            nid = new_element(name, cls, cfg, line, entry)
            local[name] = nid
            decl_line[name] = line
            return nid

        def resolve(e: Element) -> str | None:
            if isinstance(e, InlineDecl):
                return declare(e.name, e.class_name, e.config, e.line)
            if isinstance(e, AnonElement):
                return anonymous(e.class_name, e.config, e.line, lookup_class(e.class_name, e.line))
            name = e.name
            if name in classes:
                return anonymous(name, None, e.line, classes[name])
            if name in local:
                return local[name]
            if name in later_classes and later_classes[name] > e.line:
                self.problem(
                    e.line,
                    f"unknown element class '{name}' (elementclass {name} is defined later, "
                    f"on line {later_classes[name]})",
                )
            else:
                self.problem(
                    e.line, f"undeclared element '{name}' (neither a declared element nor a known element class)"
                )
            # as Click does, go on with a placeholder so that its neighbours
            # are not reported as unconnected, and report it only once
            nid = prefix + name
            self.nodes[nid] = _Node(nid, "unknown", name, e.line)
            local[name] = nid
            decl_line[name] = e.line
            return nid

        for s in stmts:
            if isinstance(s, Declaration):
                for name in s.names:
                    declare(name, s.class_name, s.config, s.line)
            elif isinstance(s, Chain):
                ids = [resolve(ep.element) for ep in s.endpoints]
                for k in range(1, len(s.endpoints)):
                    a, b = s.endpoints[k - 1], s.endpoints[k]
                    src, dst = ids[k - 1], ids[k]
                    if src is None or dst is None:
                        continue
                    self.edges.append(_Edge(src, a.out_port or 0, dst, b.in_port or 0, b.arrow_line or b.line))
            elif isinstance(s, ElementClassDef):
                if s.synonym is not None:
                    entry = lookup_class(s.synonym, s.line)
                    if entry is not None:
                        classes[s.name] = entry
                else:
                    classes[s.name] = _CompoundClass(s.name, s, dict(classes), env)
                    # the class can refer to itself only through instances
                    # made later; its own scope sees the table as it was.
            elif isinstance(s, (Require, Define)):
                pass

    def expand_compound(
        self, nid: str, cc: _CompoundClass, args: tuple[str, ...], line: int, stack: tuple[int, ...]
    ) -> None:
        d = cc.definition
        if id(cc) in stack or len(stack) >= self.MAX_DEPTH:
            self.problem(line, f"recursive use of element class '{cc.name}'")
            self.nodes[nid].kind = "unknown"
            return
        if len(args) != len(d.formals):
            self.problem(
                line,
                f"'{nid}' :: {cc.name}: element class {cc.name} takes "
                f"{_plural(len(d.formals), 'argument')}, got {len(args)}",
            )
        env = dict(cc.env)
        for formal, value in zip(d.formals, args):
            env[formal] = value
        self.nodes[nid + "/input"] = _Node(nid + "/input", "pin", "input", d.line, owner=nid)
        self.nodes[nid + "/output"] = _Node(nid + "/output", "pout", "output", d.line, owner=nid)
        scope = dict(cc.scope)
        scope.setdefault(cc.name, cc)  # a self-reference is reported as recursion
        start = len(self.edges)
        self.instantiate(d.body, nid + "/", env, scope, owner=nid, stack=stack + (id(cc),))
        body_edges = self.edges[start:]
        # pseudoelement usage: input only as a source, output only as a destination
        used_in: set[int] = set()
        used_out: set[int] = set()
        for e in body_edges:
            if e.dst == nid + "/input":
                self.problem(e.line, f"'{cc.name}' pseudoelement 'input' may only be used as output")
            if e.src == nid + "/output":
                self.problem(e.line, f"'{cc.name}' pseudoelement 'output' may only be used as input")
            if e.src == nid + "/input":
                used_in.add(e.sport)
            if e.dst == nid + "/output":
                used_out.add(e.dport)
        nin = max(used_in) + 1 if used_in else 0
        nout = max(used_out) + 1 if used_out else 0
        for i in range(nin):
            if i not in used_in:
                self.problem(d.line, f"'{cc.name}' input {i} missing")
        for i in range(nout):
            if i not in used_out:
                self.problem(d.line, f"'{cc.name}' output {i} missing")
        cc.counts = (nin, nout)

    # ---- checking the graph -------------------------------------------------

    def check_graph(self) -> None:
        nodes = self.nodes
        leaf = ("prim", "unknown")
        out_edges: dict[tuple[str, int], list[_Edge]] = defaultdict(list)
        in_edges: dict[tuple[str, int], list[_Edge]] = defaultdict(list)
        # ports of primitive elements that some connection tried to use; they
        # are not reported as unconnected (no cascades from other problems)
        touched_out: set[tuple[str, int]] = set()
        touched_in: set[tuple[str, int]] = set()

        # compound element ports: fixed by the class body
        for e in self.edges:
            good = True
            for nid, port, isout in ((e.src, e.sport, True), (e.dst, e.dport, False)):
                n = nodes[nid]
                if n.kind == "compound" and n.compound is not None and n.compound.counts is not None:
                    nin, nout = n.compound.counts
                    limit = nout if isout else nin
                    if port >= limit:
                        side = "output" if isout else "input"
                        self.problem(
                            e.line,
                            f"{n.display()} has no {side} {port} "
                            f"(element class {n.class_name} has {_plural(limit, side)})",
                        )
                        good = False
            if nodes[e.src].kind in leaf and nodes[e.dst].kind not in leaf:
                touched_out.add((e.src, e.sport))
            if nodes[e.dst].kind in leaf and nodes[e.src].kind not in leaf:
                touched_in.add((e.dst, e.dport))
            if good:
                out_edges[(e.src, e.sport)].append(e)
                in_edges[(e.dst, e.dport)].append(e)
        for n in nodes.values():
            if n.kind == "compound" and n.compound is not None and n.compound.counts is not None:
                nin, nout = n.compound.counts
                for i in range(nin):
                    if not in_edges.get((n.id, i)):
                        self.problem(n.line, f"{n.display()} input {i} is not connected")
                for i in range(nout):
                    if not out_edges.get((n.id, i)):
                        self.problem(n.line, f"{n.display()} output {i} is not connected (dangling output)")

        # flatten through compound elements (Click's connection tunnels)
        def dests(nid: str, port: int, seen: frozenset) -> list[tuple[str, int]]:
            key = (nid, port)
            if key in seen:
                return []
            seen = seen | {key}
            n = nodes[nid]
            if n.kind in leaf:
                return [key]
            if n.kind == "compound":
                nxt = out_edges.get((nid + "/input", port), [])
            elif n.kind == "pout":
                nxt = out_edges.get((n.owner, port), [])
            else:  # "input" used as a destination: already reported
                return []
            return [d for e in nxt for d in dests(e.dst, e.dport, seen)]

        flat: dict[tuple[str, int, str, int], int] = {}
        for _key, edges in out_edges.items():
            for e in edges:
                if nodes[e.src].kind in leaf:
                    for d, dp in dests(e.dst, e.dport, frozenset()):
                        flat.setdefault((e.src, e.sport, d, dp), e.line)
        conns = [(s, sp, d, dp, line) for (s, sp, d, dp), line in flat.items()]
        for s, sp, d, dp, _ in conns:
            touched_out.add((s, sp))
            touched_in.add((d, dp))
        prims = [n for n in nodes.values() if n.kind == "prim"]

        # port counts and ranges (Router::check_hookup_range)
        max_in: dict[str, int] = defaultdict(lambda: -1)
        max_out: dict[str, int] = defaultdict(lambda: -1)
        for s, sp, d, dp, _ in conns:
            max_out[s] = max(max_out[s], sp)
            max_in[d] = max(max_in[d], dp)
        nports: dict[str, tuple[int, int]] = {}
        for n in prims:
            spec = n.spec
            assert spec is not None
            ilo, ihi = spec.input_range()
            nin = min(max(max_in[n.id] + 1, ilo), ihi)
            olo, ohi = spec.output_range(n.args, nin)
            nout = min(max(max_out[n.id] + 1, olo), ohi)
            nports[n.id] = (nin, nout)
        ok: list[tuple[str, int, str, int, int]] = []
        for c in conns:
            s, sp, d, dp, line = c
            good = True
            if s in nports and sp >= nports[s][1]:
                good = False
                self.problem(line, self._no_port_message(nodes[s], True, sp))
            if d in nports and dp >= nports[d][0]:
                good = False
                self.problem(line, self._no_port_message(nodes[d], False, dp))
            if good:
                ok.append(c)

        # push and pull (Router::check_push_and_pull)
        in_pers: dict[tuple[str, int], str] = {}
        out_pers: dict[tuple[str, int], str] = {}
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                in_pers[(n.id, i)] = n.spec.personality(False, i)  # type: ignore[union-attr]
            for j in range(nout):
                out_pers[(n.id, j)] = n.spec.personality(True, j)  # type: ignore[union-attr]
        # (src, sport, dst, dport, line, fake); fake connections join the
        # agnostic inputs and outputs of one element that packets flow between
        pconns = [(s, sp, d, dp, line, False) for s, sp, d, dp, line in ok if s in nports and d in nports]
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                if in_pers[(n.id, i)] != "a":
                    continue
                for j in range(nout):
                    if out_pers[(n.id, j)] == "a" and n.spec.flows(i, j):  # type: ignore[union-attr]
                        pconns.append((n.id, j, n.id, i, n.line, True))
        dead: set[int] = set()
        changed = True
        while changed:
            changed = False
            for k, (s, sp, d, dp, line, fake) in enumerate(pconns):
                if k in dead:
                    continue
                pf, pt = out_pers[(s, sp)], in_pers[(d, dp)]
                if pt == "a":
                    if pf != "a":
                        in_pers[(d, dp)] = pf
                        changed = True
                elif pf == "a":
                    out_pers[(s, sp)] = pt
                    changed = True
                elif pf != pt:
                    dead.add(k)
                    t1, t2 = ("push", "pull") if pf == "h" else ("pull", "push")
                    if fake:
                        hint = (
                            "its push input side and pull output side need a Queue in between"
                            if pt == "h"
                            else "its pull input side and push output side need an Unqueue in between"
                        )
                        self.problem(
                            nodes[s].line,
                            f"agnostic {nodes[s].display()} in mixed context: "
                            f"{t2} input {dp}, {t1} output {sp} ({hint})",
                        )
                    else:
                        hint = (
                            "a push output needs a Queue before a pull input"
                            if pf == "h"
                            else "a pull output needs an Unqueue before a push input"
                        )
                        self.problem(
                            line,
                            f"{nodes[s].display()} {t1} output {sp} connected to "
                            f"{nodes[d].display()} {t2} input {dp} ({hint})",
                        )

        # reuse of active ports, unused ports (Router::check_hookup_completeness)
        by_out: dict[tuple[str, int], list[int]] = defaultdict(list)
        by_in: dict[tuple[str, int], list[int]] = defaultdict(list)
        for s, sp, d, dp, line in ok:
            by_out[(s, sp)].append(line)
            by_in[(d, dp)].append(line)
        # a push output feeds one connection, a pull input draws from one
        reuse = (
            (by_out, out_pers, ("h", "a"), "push output", "use a Tee to copy packets"),
            (by_in, in_pers, ("l",), "pull input", "use a scheduler to merge pulls"),
        )
        for ends, pers, kinds, what, fix in reuse:
            for (n, port), lines in ends.items():
                if len(lines) > 1 and pers.get((n, port)) in kinds:
                    lines = sorted(lines)
                    for line in lines[1:]:
                        self.problem(
                            line,
                            f"illegal reuse of {nodes[n].display()} {what} {port} "
                            f"(already connected on line {lines[0]}; {fix})",
                        )
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                if (n.id, i) not in touched_in:
                    self.problem(n.line, f"{n.display()} input {i} is not connected")
            for j in range(nout):
                if (n.id, j) not in touched_out:
                    self.problem(n.line, f"{n.display()} output {j} is not connected (dangling output)")

    def _no_port_message(self, n: _Node, isoutput: bool, port: int) -> str:
        spec = n.spec
        assert spec is not None
        side = "output" if isoutput else "input"
        if not isoutput:
            lo, hi = spec.input_range()
            why = f"{n.class_name} has {_fmt_range(lo, hi)} inputs"
        elif spec.outputs == "per-argument":
            why = f"{n.class_name} has one output per configuration argument: {len(n.args)}"
        elif spec.outputs == "per-argument+1":
            why = f"{n.class_name} has one output more than configuration arguments: {len(n.args) + 1}"
        else:
            lo, hi = spec.output_range(n.args, 0)
            why = f"{n.class_name} has {_fmt_range(lo, hi)} outputs"
        return f"{n.display()} has no {side} {port} ({why})"


def check_config(text: str, filename: str = "<click>") -> list[ClickProblem]:
    """Parse and check a Click configuration; an empty list means it is clean.

    Problems found: syntax errors; unknown element classes; undeclared and
    redeclared elements; port numbers outside an element's port counts
    (including one output per pattern for Classifier/IPClassifier); outputs
    and inputs left unconnected; push outputs (and pull inputs) connected more
    than once; push outputs connected to pull inputs (and the reverse),
    resolving agnostic elements as Click does.
    """
    try:
        config = parse_config(text, filename)
    except ClickSyntaxError as e:
        return [ClickProblem(e.line, e.message, filename)]
    return _Checker(load_element_table(), filename).run(config)


def _main(argv: list[str]) -> int:
    status = 0
    for path in argv:
        for p in check_config(Path(path).read_text(encoding="utf-8"), path):
            print(p)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
