"""The router: a Click configuration loaded into connected elements.

Loading (``Router(text)``):

1. ``backends.click.lang`` parses the text and its checker builds the element graph
   the way Click does (element classes of ``elements.toml``, compound
   elements expanded, anonymous elements named ``Class@N``, ``define``
   variables substituted) and reports every configuration problem; any
   problem stops the load.
2. Connections are flattened through compound elements; the runtime
   remembers which compound ports each one crosses, so that every compound
   element (each module instance of an fsc host configuration) has packet
   counts on its inputs and outputs.
3. Every primitive element must be one the runtime implements
   (``elements.REGISTRY``); the first that is not stops the load with its
   name, class and line.
4. Push and pull are resolved as in Click: agnostic ports take the
   personality of what they are connected to, through the element when its
   flow code joins them; a group with neither is push.
5. Elements are created with their port counts, configured, initialized,
   and wired: push outputs call the downstream ``push``, pull inputs call
   the upstream ``pull``.  With ``fuse`` (the default) a push path through
   simple elements (Click's ``simple_action`` ones: VLANDecap, Strip,
   Counter, ...) runs their actions in one loop instead of one ``push``
   call per element; the result is the same, packet for packet.

Running: a device's frames enter through its FromDevice elements and run
to completion along push paths; Queue ends a push path, and the pull paths
run when the scheduler runs the tasks (ToDevice, or a Discard that pulls).
The Python API (``push``) runs the tasks until nothing moves and returns what
each device sent; ``backends.click.runtime.netio`` runs the same router on
AF_PACKET sockets.
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from backends.click.lang.ast import ClickSyntaxError
from backends.click.lang.checker import _Checker
from backends.click.lang.element_table import load_element_table
from backends.click.lang.parser import parse_config
from backends.click.runtime.args import ConfigError
from backends.click.runtime.elements import REGISTRY, Element, SimpleElement
from backends.click.runtime.packet import Packet


class ClickLoadError(ValueError):
    """The configuration cannot run: each entry of ``problems`` is one
    ``FILE:LINE: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class MemoryTransport:
    """Frames sent to a device are kept in ``sent[device]`` (the Python API)."""

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = defaultdict(list)

    def send(self, device: str, frame: bytes | bytearray) -> bool | None:
        self.sent[device].append(bytes(frame))
        return True


class _CompoundStats:
    __slots__ = ("cls", "inputs", "outputs")

    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.inputs: dict[int, list[int]] = {}
        self.outputs: dict[int, list[int]] = {}

    def cell(self, side: str, port: int) -> list[int]:
        d = self.inputs if side == "in" else self.outputs
        return d.setdefault(port, [0])

    def to_json(self) -> dict[str, Any]:
        ins = {str(k): v[0] for k, v in sorted(self.inputs.items())}
        outs = {str(k): v[0] for k, v in sorted(self.outputs.items())}
        return {
            "class": self.cls,
            "packets_in": sum(ins.values()),
            "packets_out": sum(outs.values()),
            "inputs": ins,
            "outputs": outs,
        }


def _counting_push(f: Callable[[Packet], Any], cells: tuple[list[int], ...]) -> Callable[[Packet], Any]:
    if len(cells) == 1:
        c = cells[0]

        def push1(p: Packet) -> None:
            c[0] += 1
            f(p)

        return push1

    def push(p: Packet) -> None:
        for c in cells:
            c[0] += 1
        f(p)

    return push


def _counter_action(cell: list[int]) -> Callable[[Packet], Packet]:
    def count(p: Packet) -> Packet:
        cell[0] += 1
        return p

    return count


def _runner(
    acts: tuple[Callable[[Packet], Packet | None], ...], final: Callable[[Packet], Any]
) -> Callable[[Packet], Any]:
    """Run simple actions in a row, then hand the packet on (a fused push path)."""
    if not acts:
        return final
    if len(acts) == 1:
        a0 = acts[0]

        def run1(p: Packet) -> None:
            p = a0(p)
            if p is not None:
                final(p)

        return run1

    def run(p: Packet) -> None:
        for a in acts:
            p = a(p)
            if p is None:
                return
        final(p)

    return run


def _counting_pull(f: Callable[[], Packet | None], cells: tuple[list[int], ...]) -> Callable[[], Packet | None]:
    def pull() -> Packet | None:
        p = f()
        if p is not None:
            for c in cells:
                c[0] += 1
        return p

    return pull


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        p = self.parent.setdefault(x, x)
        if p != x:
            p = self.parent[x] = self.find(p)
        return p

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


class Router:
    """A loaded configuration.  ``clock`` (seconds, default ``time.monotonic``)
    drives rates and timeouts; ``seed`` makes random choices (IPsec IVs,
    NAT ports) repeatable."""

    def __init__(
        self,
        text: str,
        filename: str = "<click>",
        *,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
        transport: Any = None,
        fuse: bool = True,
    ) -> None:
        self.filename = filename
        self.now: Callable[[], float] = clock or time.monotonic
        self.rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
        self.transport = transport if transport is not None else MemoryTransport()
        self.elements: dict[str, Element] = {}
        self.compounds: dict[str, _CompoundStats] = {}
        self.sources: dict[str, list[Element]] = defaultdict(list)
        self.sinks: list[Element] = []
        self.tasks: list[Element] = []
        self.started = self.now()
        self.fuse = fuse
        self._build(text)

    # ------------------------------------------------------------------ loading

    def _fail(self, line: int, msg: str) -> ClickLoadError:
        return ClickLoadError([f"{self.filename}:{line}: {msg}"])

    def _build(self, text: str) -> None:
        try:
            config = parse_config(text, self.filename)
        except ClickSyntaxError as e:
            raise ClickLoadError([str(e)]) from None
        table = load_element_table()
        checker = _Checker(table, self.filename)
        problems = checker.run(config)
        if problems:
            raise ClickLoadError([str(p) for p in problems])
        nodes, edges = checker.nodes, checker.edges

        prims = [n for n in nodes.values() if n.kind == "prim"]
        for n in sorted(prims, key=lambda n: n.line):
            if n.class_name not in REGISTRY:
                raise self._fail(
                    n.line,
                    f"element '{n.id}' :: {n.class_name} is not supported by the fsc Click "
                    f"runtime (it runs the elements fsc emits: {', '.join(sorted(REGISTRY))})",
                )
        for n in nodes.values():
            if n.kind == "compound":
                self.compounds[n.id] = _CompoundStats(n.class_name)

        # flatten connections through compound elements, noting the compound ports crossed
        out_edges: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for e in edges:
            out_edges[(e.src, e.sport)].append(e)

        def dests(nid: str, port: int, crossed: tuple, depth: int = 0) -> Iterable[tuple[str, int, tuple]]:
            n = nodes[nid]
            if n.kind == "prim":
                yield nid, port, crossed
            elif n.kind == "compound" and depth < 64:
                for e in out_edges.get((nid + "/input", port), []):
                    yield from dests(e.dst, e.dport, crossed + ((nid, "in", port),), depth + 1)
            elif n.kind == "pout" and depth < 64:
                for e in out_edges.get((n.owner, port), []):
                    yield from dests(e.dst, e.dport, crossed + ((n.owner, "out", port),), depth + 1)

        conns: dict[tuple[str, int, str, int], tuple] = {}
        for e in edges:
            if nodes[e.src].kind == "prim":
                for d, dp, crossed in dests(e.dst, e.dport, ()):
                    conns.setdefault((e.src, e.sport, d, dp), crossed)

        # port counts
        max_in: dict[str, int] = defaultdict(lambda: -1)
        max_out: dict[str, int] = defaultdict(lambda: -1)
        for s, sp, d, dp in conns:
            max_out[s] = max(max_out[s], sp)
            max_in[d] = max(max_in[d], dp)
        nports: dict[str, tuple[int, int]] = {}
        for n in prims:
            ilo, ihi = n.spec.input_range()
            nin = min(max(max_in[n.id] + 1, ilo), ihi)
            olo, ohi = n.spec.output_range(n.args, nin)
            nout = min(max(max_out[n.id] + 1, olo), ohi)
            nports[n.id] = (nin, nout)

        # push and pull
        uf = _UnionFind()
        for s, sp, d, dp in conns:
            uf.union(("o", s, sp), ("i", d, dp))
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                if n.spec.personality(False, i) != "a":
                    continue
                for j in range(nout):
                    if n.spec.personality(True, j) == "a" and n.spec.flows(i, j):
                        uf.union(("i", n.id, i), ("o", n.id, j))
        fixed: dict[Any, set[str]] = defaultdict(set)
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                fixed[uf.find(("i", n.id, i))].add(n.spec.personality(False, i))
            for j in range(nout):
                fixed[uf.find(("o", n.id, j))].add(n.spec.personality(True, j))

        def personality(key: tuple) -> str:
            kinds = fixed[uf.find(key)] - {"a"}
            if len(kinds) > 1:  # pragma: no cover - the checker reports it first
                raise self._fail(nodes[key[1]].line, f"push/pull conflict at '{key[1]}'")
            return kinds.pop() if kinds else "h"

        # elements
        for n in sorted(prims, key=lambda n: (n.line, n.id)):
            nin, nout = nports[n.id]
            el = REGISTRY[n.class_name](self, n.id, n.line, nin, nout)
            el.input_personality = [personality(("i", n.id, i)) for i in range(nin)]
            el.output_personality = [personality(("o", n.id, j)) for j in range(nout)]
            try:
                el.configure(tuple(n.args))
            except ConfigError as e:
                raise self._fail(n.line, f"'{n.id}' :: {n.class_name}: {e}") from None
            self.elements[n.id] = el
        for el in self.elements.values():
            try:
                el.initialize()
            except ConfigError as e:
                raise self._fail(el.line, f"'{el.name}' :: {el.class_name}: {e}") from None

        # wiring
        push_conns: dict[tuple[str, int], tuple[Element, int, tuple]] = {}
        for (s, sp, d, dp), crossed in conns.items():
            src, dst = self.elements[s], self.elements[d]
            cells = tuple(self.compounds[c].cell(side, port) for c, side, port in crossed)
            if src.output_personality[sp] == "h":
                push_conns[(s, sp)] = (dst, dp, cells)
                f: Any = partial(dst.push, dp)
                src.out[sp] = _counting_push(f, cells) if cells else f
            else:
                g: Any = partial(src.pull, sp)
                dst.inp[dp] = _counting_pull(g, cells) if cells else g
        if self.fuse:
            for (s, sp), (dst, dp, cells) in push_conns.items():
                self.elements[s].out[sp] = self._fused(dst, dp, cells, push_conns)
        for el in self.elements.values():
            el.connected()
            if el.ninputs and el.input_personality[0] == "l" and hasattr(el, "run_task"):
                self.tasks.append(el)

    def _fused(self, el: Element, port: int, cells: tuple, push_conns: dict) -> Callable[[Packet], Any]:
        """The push path into ``el``: the actions of the simple elements that
        follow one another from there run in one loop (and the compound port
        counters they cross), up to the first element that is not simple."""
        acts: list[Callable[[Packet], Any]] = [_counter_action(c) for c in cells]
        seen: set[str] = set()
        while (
            isinstance(el, SimpleElement)
            and port == 0
            and el.name not in seen
            and el.noutputs
            and el.output_personality[0] == "h"
            and (el.name, 0) in push_conns
        ):
            seen.add(el.name)
            if el.class_name != "Null":
                acts.append(el.action)
            el, port, more = push_conns[(el.name, 0)]
            acts += [_counter_action(c) for c in more]
        return _runner(tuple(acts), partial(el.push, port))

    # ------------------------------------------------------------------ registration (from elements)

    def register_source(self, el: Element) -> None:
        self.sources[el.devname].append(el)

    def register_sink(self, el: Element) -> None:
        self.sinks.append(el)

    def wake(self) -> None:
        """A queue got a packet (the scheduler runs the tasks anyway)."""

    def random_bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def find_element(self, name: str, context: str = "") -> Element | None:
        """Element ``name`` as seen from element ``context`` (Click looks in
        the context's compound first, then outwards)."""
        parts = context.split("/")[:-1]
        for k in range(len(parts), -1, -1):
            cand = "/".join(parts[:k] + [name])
            if cand in self.elements:
                return self.elements[cand]
        return None

    def element(self, name: str) -> Element:
        return self.elements[name]

    @property
    def devices(self) -> list[str]:
        """Every device the configuration reads or writes."""
        names = set(self.sources)
        names.update(t.devname for t in self.sinks)
        return sorted(names)

    # ------------------------------------------------------------------ running

    def run_tasks(self, budget: int = 1 << 30) -> int:
        """Run the pull tasks until none makes progress (or ``budget``
        packets moved); returns the number of packets moved."""
        total = 0
        while total < budget:
            moved = 0
            for t in self.tasks:
                moved += t.run_task(budget - total - moved)
            if not moved:
                break
            total += moved
        return total

    def inject(self, device: str, frame: bytes | bytearray) -> None:
        """A frame received on ``device``: through its FromDevice elements (push paths only)."""
        srcs = self.sources.get(device)
        if not srcs:
            raise KeyError(f"no FromDevice({device}) in {self.filename}")
        for el in srcs:
            el.receive(frame)

    def push(self, device: str, frame: bytes | bytearray) -> dict[str, list[bytes]]:
        """Receive ``frame`` on ``device``, run until idle; returns the frames
        each device sent meanwhile (Python API; needs the memory transport)."""
        tr = self.transport
        before = {d: len(v) for d, v in tr.sent.items()}
        self.inject(device, frame)
        self.run_tasks()
        out: dict[str, list[bytes]] = {}
        for d, v in tr.sent.items():
            new = v[before.get(d, 0) :]
            if new:
                out[d] = list(new)
        return out

    # ------------------------------------------------------------------ statistics

    def stats(self) -> dict[str, Any]:
        """Counters as JSON-ready data: per device (packets in and out), per
        compound element (packets into and out of each of its ports: the
        module instances of an fsc host configuration), per element with
        counts (Counter, Discard, Queue, the devices, drops)."""
        devices: dict[str, dict[str, int]] = {}
        for d in self.devices:
            rx = [e for e in self.sources.get(d, [])]
            tx = [e for e in self.sinks if e.devname == d]
            devices[d] = {
                "rx_packets": sum(e.count for e in rx),
                "rx_bytes": sum(e.byte_count for e in rx),
                "tx_packets": sum(e.count for e in tx),
                "tx_bytes": sum(e.byte_count for e in tx),
                "tx_errors": sum(e.errors for e in tx),
            }
        elements = {}
        for name, el in sorted(self.elements.items()):
            s = el.stats()
            if len(s) > 1:
                elements[name] = s
        return {
            "config": self.filename,
            "uptime": round(self.now() - self.started, 3),
            "devices": devices,
            "compounds": {k: v.to_json() for k, v in sorted(self.compounds.items())},
            "elements": elements,
        }


def load(text: str, filename: str = "<click>", **kw: Any) -> Router:
    """Load configuration text (see :class:`Router`)."""
    return Router(text, filename, **kw)


def load_file(path: str | os.PathLike, **kw: Any) -> Router:
    with open(path, encoding="utf-8") as f:
        return Router(f.read(), str(path), **kw)
