"""Robustness: printed random ASTs parse back to the same AST; junk, mutated
examples, huge and deeply nested files give diagnostics, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.check.frontend import run
from fslang import printer
from fslang.parser import parse
from fslang.source import SourceFile
from tests.conftest import EXAMPLES
from tests.fsl_strategies import programs

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(programs)
def test_print_then_parse_is_identity(program) -> None:
    text = printer.program(program)
    result = parse(SourceFile("rt.fs", text))
    reserved = [d for d in result.diagnostics if d.code != "E0014"]  # range checks are semantic
    assert reserved == [], (text, result.diagnostics)
    assert result.program == program, text


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_diagnostics_only(data: bytes) -> None:
    result = run("junk.fs", data)
    assert result.site is None or result.diagnostics is not None


_corpus = [p.read_bytes() for p in EXAMPLES]


@FUZZ
@given(st.sampled_from(range(len(_corpus))) if _corpus else st.just(0), st.data())
def test_mutated_examples_give_diagnostics_only(index: int, data) -> None:
    text = bytearray(_corpus[index])
    for _ in range(data.draw(st.integers(1, 5))):
        op = data.draw(st.sampled_from(["delete", "insert", "flip"]))
        pos = data.draw(st.integers(0, max(0, len(text) - 1)))
        if op == "delete":
            del text[pos : pos + data.draw(st.integers(1, 20))]
        elif op == "insert":
            text[pos:pos] = data.draw(
                st.sampled_from(
                    [
                        b"(",
                        b")",
                        b"{",
                        b"}",
                        b">>",
                        b"not ",
                        b"\x00",
                        b"\xff",
                        b'"',
                        b"policy",
                        b":",
                        b"..",
                        b"*",
                        b"0x",
                        b"\n",
                    ]
                )
            )
        else:
            text[pos] = data.draw(st.integers(0, 255))
    run("mutated.fs", bytes(text))  # must not raise


def _fsc_check(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fslang.cli", "check", str(path)], capture_output=True, text=True, timeout=120
    )


def test_deep_parentheses_give_a_diagnostic(tmp_path) -> None:
    f = tmp_path / "deep.fs"
    f.write_text("site s\npolicy p match " + "(" * 5000 + "tcp" + ")" * 5000 + " drop\n")
    out = _fsc_check(f)
    assert out.returncode == 1 and "E0004" in out.stderr and "Traceback" not in out.stderr


def test_deep_not_chain_gives_a_diagnostic(tmp_path) -> None:
    f = tmp_path / "nots.fs"
    f.write_text("site s\npolicy p match " + "not " * 5000 + "tcp drop\n")
    out = _fsc_check(f)
    assert out.returncode == 1 and "E0004" in out.stderr and "Traceback" not in out.stderr


def test_five_megabyte_file_gives_a_diagnostic(tmp_path) -> None:
    f = tmp_path / "big.fs"
    line = b"policy p match tcp and dst port 80 via undefined_module\n"
    f.write_bytes(b"site big\n" + line * (5 * 2**20 // len(line)))
    out = _fsc_check(f)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "E0005" in out.stderr


def test_large_file_under_the_limit_gives_every_diagnostic(tmp_path) -> None:
    f = tmp_path / "large.fs"
    lines = [f"policy p{i} match tcp and dst port {i % 60000} via undefined_{i % 7}\n" for i in range(5000)]
    f.write_text("site big\n" + "".join(lines))
    out = _fsc_check(f)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("error[E0203]") == 5000


SLICE_SEED = 7
SLICE = 300
CHUNKS = 3  # separate tests, so that pytest-xdist spreads them


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_a_slice_of_the_site_fuzzer_finds_nothing(chunk: int) -> None:
    """300 inputs of `benchmarks/fuzz_sites.py` (a fixed seed: the same
    inputs every run): generated sites, grammar derivations, mutated examples
    and junk.  None may raise out of the parser or `api.build`, and every
    verdict must be a proper one (a rejected site has an error with a
    documented code and a span inside the text)."""
    from benchmarks.fuzz_gen import generate
    from benchmarks.fuzz_sites import check_one

    findings = []
    verdicts = set()
    for i in range(chunk, SLICE, CHUNKS):
        kind, data = generate(SLICE_SEED, i)
        o = check_one(i, kind, data, timeout=120)
        verdicts.add((kind, o.verdict))
        if o.verdict not in ("ok", "rejected"):
            findings.append((i, kind, o.verdict, o.detail[-1500:]))
    assert not findings, findings[:3]
    assert {k for k, _ in verdicts} == {"site", "grammar", "mutant", "junk"}
    assert ("site", "ok") in verdicts and ("mutant", "ok") in verdicts  # the slice reaches compilation
