"""The statement-shape cache (fslang.parse_cache) must be invisible: for any
file, parsing with replayed trees gives exactly the program and diagnostics
that parsing every statement with Lark gives."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fslang.parser as P
from fslang import parse_cache
from fslang.source import SourceFile
from tests.conftest import EXAMPLES, ROOT

LINES = [
    line
    for p in [*EXAMPLES, *sorted((ROOT / "tests" / "lab_sites").glob("*.fs"))]
    for line in p.read_text().splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
ATOMS = [
    "1.3",
    "1..5",
    "5..1",
    "0x1F",
    "10.0.0.1",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "fe80::1",
    "2001:db8::/32",
    "::",
    "aa:bb:cc:dd:ee:ff",
    "ab:cd",
    "sw:1",
    "s0:1..4",
    "64GiB",
    "1Gbps",
    "5%",
    "150%",
    '"str"',
    '"un',
    "ip6",
    "host",
    "default",
    "drop",
    "pass",
    "else",
    "not",
    "(",
    ")",
    "{",
    "}",
    ",",
    ">>",
    "->",
    "*",
    "by src",
    "symmetric",
    "#c\n",
    "\n",
    "tcp",
    "dst port",
    "port 80",
    "x-y",
    "_a",
    "65536",
    "999.1.1.1",
    "1.2.3",
    "dead:beef::",
    "10.0.0.1:5",
    "a:b:c",
    "vlan 5000",
    "case {",
    "copy 5% to",
]


def _lark_only(parser, chunk, _diags):
    return parser.parse(chunk, start="statement")


def _both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    src = SourceFile("f.fs", text)
    with monkeypatch.context() as m:
        m.setattr(P, "parse_statement", _lark_only)
        plain = P.parse(src)
    cached = P.parse(src)
    return (plain.program, plain.diagnostics), (cached.program, cached.diagnostics)


@st.composite
def mutated_files(draw) -> str:
    stmts = []
    for _ in range(draw(st.integers(1, 8))):
        toks = draw(st.sampled_from(LINES)).split(" ")
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(toks)))
            op = draw(st.sampled_from(["insert", "replace", "delete"]))
            if op == "insert":
                toks.insert(i, draw(st.sampled_from(ATOMS)))
            elif toks and op == "replace":
                toks[min(i, len(toks) - 1)] = draw(st.sampled_from(ATOMS))
            elif toks:
                del toks[min(i, len(toks) - 1)]
        stmts.append(" ".join(toks))
    return "site x\n" + "\n".join(stmts * draw(st.integers(1, 3))) + "\n"


def test_the_cache_is_used() -> None:
    assert P.parse_statement is parse_cache.parse_statement


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_parse_alike(example, monkeypatch: pytest.MonkeyPatch) -> None:
    plain, cached = _both(example.read_text(), monkeypatch)
    assert plain == cached


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_files())
def test_mutated_files_parse_alike(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plain, cached = _both(text, monkeypatch)
    assert plain == cached


def test_policy_halves_are_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy whose part before `via` and whose `via` part were each seen in
    other statements is replayed, not parsed by Lark, and gets Lark's tree."""
    for name in ("_shapes", "_heads", "_vias"):
        monkeypatch.setattr(parse_cache, name, {})
    calls: list[str] = []
    parser = P.lark_parser()

    def counting(chunk: str, start: str) -> object:
        calls.append(chunk.split()[1])
        return type(parser).parse(parser, chunk, start=start)

    monkeypatch.setattr(parser, "parse", counting)
    text = (
        "site x\n"
        "policy a from x match tcp and dst port 80 via m1 >> m2\n"
        "policy b match dst port {1, 2} via (m3 * 2 >> m4 { bad: drop, else: pass }) symmetric\n"
        "policy c from y match tcp and dst port 53 via (m5 * 4 >> m6 { ok: drop, else: pass }) symmetric\n"
        "policy d match dst port {7, 9} via m7 >> m8\n"
        "policy e from x, y match tcp via m1\n"
    )
    cached = P.parse(SourceFile("f.fs", text))
    assert [c for c in calls if c != "x"] == ["a", "b", "e"]  # c and d: halves of a and b, joined
    monkeypatch.undo()
    with monkeypatch.context() as m:
        m.setattr(P, "parse_statement", _lark_only)
        plain = P.parse(SourceFile("f.fs", text))
    assert (plain.program, plain.diagnostics) == (cached.program, cached.diagnostics)
    assert not cached.diagnostics


def test_weight_lists_before_arms_parse_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comma inside a weight list is its own terminal for Lark's lexer but
    plain `,` for the scan: statements replayed from a shape with weight lists
    get Lark's tree (each policy twice, so the second is replayed)."""
    from tests.test_parser import WEIGHTED

    body = WEIGHTED.split("\n", 1)[1]
    plain, cached = _both("site w\n" + body + body.replace("policy ", "policy x"), monkeypatch)
    assert plain == cached and plain[1] == []
