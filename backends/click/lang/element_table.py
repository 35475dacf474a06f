"""The Click element table (``backends/click/elements.toml``): port counts, push/pull and flow codes per class.

Read by the checker and by the runtime, which builds its router with the same rules.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ELEMENT_TABLE_PATH = Path(__file__).resolve().parent.parent / "elements.toml"

_INF = sys.maxsize

_PROC_RE = re.compile(r"[ahl]+/[ahl]+")
_RANGE_RE = re.compile(r"(\d+)(-(\d*))?")
_SPECIAL_OUTPUTS = {"per-argument", "per-argument+1", "="}
_CONFIG_OUTPUTS = {None, "ipfilter-slots", "count-arg", "index-arg"}


def _parse_range(s: str) -> tuple[int, int]:
    s = s.strip()
    if s in ("any", "-", ""):
        return 0, _INF
    m = _RANGE_RE.fullmatch(s)
    if not m:
        raise ValueError(f"bad port count {s!r}")
    lo = int(m.group(1))
    if m.group(2) is None:
        return lo, lo
    hi = int(m.group(3)) if m.group(3) else _INF
    if hi < lo:
        raise ValueError(f"bad port count {s!r}")
    return lo, hi


@dataclass(frozen=True)
class ElementSpec:
    """One row of ``elements.toml`` (see the comments at its top)."""

    name: str
    inputs: str
    outputs: str
    processing: str
    flow: str = "x/x"
    config_outputs: str | None = None
    package: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        _parse_range(self.inputs)
        if not (self.outputs in _SPECIAL_OUTPUTS or re.fullmatch(r"=\++", self.outputs)):
            _parse_range(self.outputs)
        if not _PROC_RE.fullmatch(self.processing):
            raise ValueError(f"{self.name}: bad processing {self.processing!r}")
        if self.config_outputs not in _CONFIG_OUTPUTS:
            raise ValueError(f"{self.name}: bad config_outputs {self.config_outputs!r}")
        if "/" not in self.flow:
            raise ValueError(f"{self.name}: bad flow code {self.flow!r}")

    def input_range(self) -> tuple[int, int]:
        return _parse_range(self.inputs)

    def output_range(self, args: tuple[str, ...], ninputs: int) -> tuple[int, int]:
        """Allowed output counts, given the configuration arguments."""
        o = self.outputs
        if o == "per-argument":
            lo = hi = len(args)
        elif o == "per-argument+1":
            lo = hi = len(args) + 1
        elif o.startswith("="):
            lo = hi = ninputs + len(o) - 1
        else:
            lo, hi = _parse_range(o)
        co = self.config_outputs
        if co == "ipfilter-slots":
            lo = max(lo, _ipfilter_min_outputs(args))
        elif co == "count-arg" and args:
            m = re.fullmatch(r"(?:N\s+)?(\d+)", args[0])
            if m:
                lo = hi = int(m.group(1))
        elif co == "index-arg" and args:
            m = re.fullmatch(r"(?:OUTPUT\s+)?(\d+)", args[0])
            if m:
                lo = max(lo, int(m.group(1)) + 1)
        return lo, max(lo, hi)

    def personality(self, isoutput: bool, port: int) -> str:
        side = self.processing.split("/")[1 if isoutput else 0]
        return side[min(port, len(side) - 1)]

    def flows(self, in_port: int, out_port: int) -> bool:
        """Whether packets may flow from input ``in_port`` to ``out_port``
        (Click flow codes: one code per port, the last repeats; ``#`` stands
        for the port's own number; ``[..]``/``[^..]`` are sets)."""
        ins, outs = self.flow.split("/")
        a = _flow_code_at(ins, in_port)
        b = _flow_code_at(outs, out_port)
        return _flow_match(a, in_port, b, out_port)


def _ipfilter_min_outputs(args: tuple[str, ...]) -> int:
    need = 0
    for arg in args:
        words = arg.split()
        if not words:
            continue
        w = words[0]
        if w == "allow":
            need = max(need, 1)
        elif w.isdigit():
            need = max(need, int(w) + 1)
    return need


def _flow_codes(side: str) -> list[tuple[bool, str]]:
    codes: list[tuple[bool, str]] = []
    i = 0
    while i < len(side):
        if side[i] == "[":
            j = side.index("]", i)
            body = side[i + 1 : j]
            neg = body.startswith("^")
            codes.append((neg, body[1:] if neg else body))
            i = j + 1
        else:
            codes.append((False, side[i]))
            i += 1
    return codes


def _flow_code_at(side: str, port: int) -> tuple[bool, str]:
    codes = _flow_codes(side)
    return codes[min(port, len(codes) - 1)]


def _flow_match(a: tuple[bool, str], pa: int, b: tuple[bool, str], pb: int) -> bool:
    def symbols(chars: str, port: int) -> set[str]:
        return {f"#{port}" if c == "#" else c for c in chars}

    (na, ca), (nb, cb) = a, b
    sa, sb = symbols(ca, pa), symbols(cb, pb)
    if not na and not nb:
        return bool(sa & sb)
    if na and nb:
        return True
    pos, neg = (sa, sb) if not na else (sb, sa)
    return bool(pos - neg)


@lru_cache(maxsize=4)
def load_element_table(path: str | Path | None = None) -> dict[str, ElementSpec]:
    """The element table (``elements.toml`` next to this module by default)."""
    p = Path(path) if path is not None else ELEMENT_TABLE_PATH
    with open(p, "rb") as f:
        data = tomllib.load(f)
    table: dict[str, ElementSpec] = {}
    for name, row in data.get("elements", {}).items():
        row = dict(row)
        table[name] = ElementSpec(
            name=name,
            inputs=str(row.pop("inputs")),
            outputs=str(row.pop("outputs")),
            processing=str(row.pop("processing")),
            flow=str(row.pop("flow", "x/x")),
            config_outputs=row.pop("config_outputs", None),
            package=str(row.pop("package", "")),
            doc=str(row.pop("doc", "")),
        )
        if row:
            raise ValueError(f"{p}: element {name}: unknown keys {sorted(row)}")
    return table


# ---------------------------------------------------------------------------
