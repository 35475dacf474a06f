"""Every documented diagnostic code is produced by its documented example,
and the docs page is generated from the same table."""

from __future__ import annotations

import pytest

from compiler.check.frontend import run
from compiler.pipeline import compile_site
from fslang.api import load
from fslang.codes import CODES, markdown
from tests.conftest import ROOT


@pytest.mark.parametrize("code", [c for c in CODES if c.example is not None], ids=lambda c: c.code)
def test_example_yields_its_code(code) -> None:
    data = code.example.encode("utf-8", "surrogateescape")
    result = run("example.fs", data)
    codes = {d.code for d in result.diagnostics}
    if result.site is not None:  # placement and lowering codes come from `fsc compile`
        compiled = compile_site(result.site)
        codes |= {d.code for d in compiled.diagnostics}
        if not compiled.ok:
            result.site = None
    assert code.code in codes, [f"{d.code} {d.message}" for d in result.diagnostics]
    if code.code.startswith("E"):
        assert result.site is None


def test_unreadable_file_yields_e0005(tmp_path) -> None:
    result = load(tmp_path / "missing.fs")
    assert [d.code for d in result.diagnostics] == ["E0005"]


def test_docs_page_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "diagnostics.md").read_text() == markdown()


def test_every_code_emitted_by_the_source_is_documented() -> None:
    import re

    documented = {c.code for c in CODES}
    used: set[str] = set()
    for path in list((ROOT / "fslang").rglob("*.py")) + list((ROOT / "compiler").rglob("*.py")):
        if path.name == "codes.py":
            continue
        used |= set(re.findall(r'"([EW]0\d{3})"', path.read_text()))
    assert used <= documented, sorted(used - documented)
