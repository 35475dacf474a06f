"""The flattened element graph the checker builds: element nodes, connections and compound classes.

Its own module because the runtime reads the same graph (``_Checker.nodes`` / ``.edges``) to build its router.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.click.lang.ast import ElementClassDef
from backends.click.lang.element_table import ElementSpec


@dataclass
class _Node:
    id: str
    kind: str  # "prim", "unknown", "compound", "pin" (compound's input), "pout"
    class_name: str = ""
    line: int = 0
    spec: ElementSpec | None = None
    args: tuple[str, ...] = ()
    owner: str = ""  # for pin/pout: the compound instance id
    compound: _CompoundClass | None = None

    def display(self) -> str:
        if self.kind in ("pin", "pout"):
            return f"'{self.id}'"
        return f"'{self.id}' :: {self.class_name}"


@dataclass
class _Edge:
    src: str
    sport: int
    dst: str
    dport: int
    line: int


@dataclass
class _CompoundClass:
    name: str
    definition: ElementClassDef
    scope: dict[str, _ClassEntry]  # classes visible where it was defined
    env: dict[str, str]
    counts: tuple[int, int] | None = None  # (ninputs, noutputs), set on first use


_ClassEntry = ElementSpec | _CompoundClass
