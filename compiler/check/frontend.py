"""Parse and check a site's text: the front half of every command.

Pure: bytes in, the checked site or diagnostics out (reading the file is
:mod:`fslang.api`'s).  Bad bytes, NULs and deep nesting become diagnostics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from compiler.check.checker import check
from compiler.ir import Site
from fslang.ast import Program
from fslang.diagnostics import Diagnostic, DiagnosticSink, sort_key
from fslang.parser import parse
from fslang.source import SourceFile, Span

_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


@dataclass
class FrontendResult:
    source: SourceFile
    site: Site | None
    diagnostics: list[Diagnostic]
    program: Program | None = None  # the syntax tree (fslang.incremental reads its spans)

    @property
    def ok(self) -> bool:
        return self.site is not None


def decode(name: str, data: bytes) -> tuple[SourceFile, list[Diagnostic]]:
    """Text of a site file; undecodable bytes and NULs are diagnostics."""
    diags: list[Diagnostic] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        text = data.decode("utf-8", errors="replace")
        at = len(data[: err.start].decode("utf-8", errors="replace"))  # spans count characters, not bytes
        diags.append(
            Diagnostic(
                "E0001",
                f"the file is not UTF-8 text (byte {err.start} cannot be decoded)",
                Span(at, at + 1),
                hint="save the file as UTF-8",
            )
        )
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # keep offsets; a BOM is harmless
    if "\x00" in text:
        pos = text.index("\x00")
        diags.append(
            Diagnostic(
                "E0001",
                "the file contains NUL bytes: it is not a text file",
                Span(pos, pos + 1),
                hint="check that this is the right file",
            )
        )
        text = text.replace("\x00", " ")
    return SourceFile(name, text), diags


def run(name: str, data: bytes | str) -> FrontendResult:
    """Text is checked as its UTF-8 bytes would be: NULs and lone surrogates
    are diagnostics, and a BOM is a blank, whichever way the site comes in."""
    if isinstance(data, str) and (_NOT_TEXT.search(data) or data.startswith("\ufeff")):
        data = data.encode("utf-8", "surrogatepass")
    if isinstance(data, str):
        src, diags = SourceFile(name, data), list[Diagnostic]()
    else:
        src, diags = decode(name, data)
    parsed = parse(src)
    sink = DiagnosticSink()
    sink.extend(diags)
    sink.extend(parsed.diagnostics)
    result = check(parsed.program, sink)
    site = result.site if not sink.has_errors else None
    return FrontendResult(src, site, sorted(sink.items, key=sort_key), parsed.program)
