"""Load, parse and check a site file: the front half of every command.

Reading the file is the only I/O; the rest are pure stages.  Bad bytes, huge
files and deep nesting become diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.check.checker import check
from compiler.ir import Site
from fslang.diagnostics import Diagnostic, DiagnosticSink, sort_key
from fslang.parser import parse
from fslang.source import SourceFile, Span

MAX_FILE_BYTES = 4 * 2**20  # ~40,000 policies; larger input is refused up front, in milliseconds


@dataclass
class FrontendResult:
    source: SourceFile
    site: Site | None
    diagnostics: list[Diagnostic]

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
        diags.append(
            Diagnostic(
                "E0001",
                f"the file is not UTF-8 text (byte {err.start} cannot be decoded)",
                Span(err.start, err.start + 1),
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


def load(path: Path | str, display_name: str | None = None) -> FrontendResult:
    path = Path(path)
    name = display_name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            src = SourceFile(name, "")
            return FrontendResult(
                src,
                None,
                [
                    Diagnostic(
                        "E0005",
                        f"the file is {size:,} bytes; fsc reads site files of up to {MAX_FILE_BYTES:,} bytes",
                        hint="check that this is the right file; a site of 40,000 policies fits in the limit",
                    )
                ],
            )
        data = path.read_bytes()
    except OSError as err:
        src = SourceFile(name, "")
        return FrontendResult(
            src,
            None,
            [Diagnostic("E0005", f"cannot read the file: {err.strerror}", hint="check the path and its permissions")],
        )
    return run(name, data)


def run(name: str, data: bytes | str) -> FrontendResult:
    if isinstance(data, str):
        src, diags = SourceFile(name, data), []
    else:
        src, diags = decode(name, data)
    parsed = parse(src)
    sink = DiagnosticSink()
    sink.extend(diags)
    sink.extend(parsed.diagnostics)
    result = check(parsed.program, sink)
    site = result.site if not sink.has_errors else None
    return FrontendResult(src, site, sorted(sink.items, key=sort_key))
