"""Name resolution: one namespace for every definition of a site.

Lookups record uses (for the unused-definition warnings) and report unknown
names with a "did you mean" drawn from the names of the expected kind.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from fslang import ast as A
from fslang.diagnostics import DiagnosticSink

KIND_OF_STMT: dict[type, str] = {
    A.SwitchStmt: "switch",
    A.HostStmt: "host",
    A.EdgeStmt: "edge",
    A.BoxStmt: "box",
    A.SetStmt: "set",
    A.ClassStmt: "class",
    A.ModuleStmt: "module",
    A.PolicyStmt: "policy",
}
UNKNOWN_CODE = {
    "set": "E0201",
    "class": "E0201",
    "switch": "E0202",
    "module": "E0203",
    "box": "E0203",
    "edge": "E0204",
    "host": "E0205",
}


def did_you_mean(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


@dataclass
class Symbols:
    sink: DiagnosticSink
    defs: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (kind, stmt)
    used: set[str] = field(default_factory=set)

    def define(self, stmt: Any) -> None:
        kind = KIND_OF_STMT[type(stmt)]
        name: A.Name = stmt.name
        if name.text in self.defs:
            prev_kind, prev = self.defs[name.text]
            self.sink.error(
                "E0102",
                f"`{name.text}` is defined twice",
                name.span,
                hint=f"the first definition ({prev_kind}) is at offset {prev.name.span.start}; rename one of them",
                label="defined again here",
            )
            return
        self.defs[name.text] = (kind, stmt)

    def names_of(self, *kinds: str) -> list[str]:
        return [n for n, (k, _) in self.defs.items() if k in kinds]

    def lookup(self, name: A.Name, *kinds: str, what: str | None = None) -> Any | None:
        """The statement defining ``name`` if it is one of ``kinds``; else a diagnostic."""
        entry = self.defs.get(name.text)
        what = what or " or ".join(kinds)
        if entry is None:
            self.sink.error(
                UNKNOWN_CODE.get(kinds[0], "E0201"),
                f"unknown {what} `{name.text}`",
                name.span,
                hint=did_you_mean(name.text, self.names_of(*kinds)) or _known(self.names_of(*kinds), what),
            )
            return None
        kind, stmt = entry
        if kind not in kinds:
            self.sink.error(
                "E0206",
                f"`{name.text}` is a {kind}, not a {what}",
                name.span,
                hint=did_you_mean(name.text, self.names_of(*kinds)) or _known(self.names_of(*kinds), what),
            )
            return None
        self.used.add(name.text)
        return stmt

    def kind(self, name: str) -> str | None:
        entry = self.defs.get(name)
        return entry[0] if entry else None


def _known(names: list[str], what: str) -> str:
    if not names:
        return f"no {what} is defined in this site"
    shown = ", ".join(f"`{n}`" for n in sorted(names)[:10])
    return f"defined: {shown}" + (" ..." if len(names) > 10 else "")
