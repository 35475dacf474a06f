"""The typed IR at the edges: what `check` hands on holds no syntax."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from compiler import ir
from fslang import api
from tests.conftest import EXAMPLES


def syntax_nodes(x: Any, path: str = "site") -> list[str]:
    """Paths to every value under ``x`` whose type is an AST node (fslang.ast)."""
    if type(x).__module__ == "fslang.ast":
        return [f"{path}: {type(x).__name__}"]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return [p for f in dataclasses.fields(x) for p in syntax_nodes(getattr(x, f.name), f"{path}.{f.name}")]
    if isinstance(x, (tuple, list, frozenset, set)):
        return [p for i, v in enumerate(x) for p in syntax_nodes(v, f"{path}[{i}]")]
    if isinstance(x, dict):
        return [p for k, v in x.items() for p in syntax_nodes(v, f"{path}[{k!r}]")]
    return []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_no_syntax_node_reaches_past_the_check(path: Path) -> None:
    site = api.load(path).site
    assert site is not None
    assert syntax_nodes(site) == []


def test_rates_and_sizes_are_ir_values() -> None:
    site = api.load(Path(__file__).resolve().parent.parent / "examples" / "isp_pop.fs").site
    assert site is not None
    params = dict(next(m for m in site.modules if m.name == "voip").params)
    assert params["rate"] == ir.Rate(100e6, "bps", "100Mbps")
    assert params["burst"] == ir.Size(64 * 1024, "64KiB")
    assert [(m.name, m.kind) for m in site.modules if m.name == "ids"] == [("ids", "vm")]
