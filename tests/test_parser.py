"""Parser and diagnostics rendering: spans, carets, JSON, all errors at once."""

from __future__ import annotations

import json
import subprocess
import sys

from compiler.check.frontend import run
from fslang import ast as A
from fslang.diagnostics import render_json, render_text
from fslang.parser import parse
from fslang.parser.statements import split_statements
from fslang.source import SourceFile

SITE = """site s
switch core dpid 0x1 ports 48
host mh1 at core:1 cores 8 memory 16GiB
edge internet at core:47 default
edge dmz at core:46 net 10.0.1.0/24
module fw = firewall(allow: tcp and dst port {80, 443})
module ids = ids(rules: "et.rules") kind vm image "s.qcow2"
policy web_in from internet match tcp and dst host 10.0.1.5 via fw >> idz * 4
"""


def test_cli_contract_rendering() -> None:
    result = run("site.fs", SITE)
    text = render_text(result.diagnostics, result.source)
    col = SITE.splitlines()[7].index("idz") + 1
    assert f"site.fs:8:{col}: error[E0203]: unknown module `idz`" in text
    lines = text.splitlines()
    at = lines.index(next(l for l in lines if l.startswith("8 | policy web_in")))
    assert lines[at + 1].index("^^^") == len("8 | ") + col - 1
    assert "did you mean `ids`?" in text


def test_json_format_fields() -> None:
    result = run("site.fs", SITE)
    items = json.loads(render_json(result.diagnostics, result.source))
    err = next(i for i in items if i["code"] == "E0203")
    assert set(err) == {"file", "line", "col", "end_line", "end_col", "severity", "code", "message", "hint"}
    col = SITE.splitlines()[7].index("idz") + 1
    assert (err["line"], err["col"], err["end_line"], err["end_col"]) == (8, col, 8, col + 3)
    assert err["severity"] == "error"


def test_all_problems_reported_in_one_run() -> None:
    src = SITE + "policy a via >>\npolicy b from nowhere drop\nmodule m = monitor(x: 1)\npolicy c via m\n"
    codes = [d.code for d in run("site.fs", src).diagnostics]
    assert {"E0203", "E0002", "E0204", "E0301"} <= set(codes)


def test_statement_splitting_respects_host_and_default() -> None:
    text = "edge e at sw:1 default\ndefault drop\nclass c = host 10.0.0.1\nhost h at sw:2 cores 1 memory 1GiB\n"
    starts = [text[a:b].split()[0] for a, b in split_statements(text)]
    assert starts == ["edge", "default", "class", "host"]


def test_keywords_inside_strings_and_comments_do_not_split() -> None:
    text = 'module m = process(command: "run policy x") # policy in a comment\n'
    assert len(split_statements(text)) == 1


def test_values_are_converted() -> None:
    src = SourceFile("t.fs", "set a = {16GiB, 100Mbps, 5%, 10.0.0.1, 2001:db8::/32, 00:11:22:33:44:55, 0x10, 1..5}")
    stmt = parse(src).program.statements[0]
    items = stmt.value.items
    assert items[0].bytes == 16 * 2**30
    assert items[1].per_second == 100e6 and items[1].unit == "bps"
    assert items[2].value == 5.0
    assert str(items[3].addr) == "10.0.0.1"
    assert str(items[4].net) == "2001:db8::/32"
    assert items[5].value == 0x001122334455
    assert items[6].value == 16
    assert (items[7].lo, items[7].hi) == (1, 5)


def test_precedence_not_and_or() -> None:
    src = SourceFile("t.fs", "class c = not tcp and udp or icmp")
    m = parse(src).program.statements[0].match
    assert isinstance(m, A.MOr)
    assert isinstance(m.items[0], A.MAnd) and isinstance(m.items[0].items[0], A.MNot)


def test_pipeline_binding() -> None:
    src = SourceFile("t.fs", "policy p via copy 5% to t >> a * 4 by src >> c { x: drop, else: pass }")
    p = parse(src).program.statements[0].pipeline
    assert isinstance(p, A.PSerial) and len(p.stages) == 3
    assert isinstance(p.stages[0], A.PCopy) and p.stages[1].by == "src" and p.stages[1].replicas.value == 4
    assert p.stages[2].branches[1].label is None


def test_ipv6_address_before_colon_in_case_arm() -> None:
    src = SourceFile("t.fs", "policy p via case { dst host 2001:db8::53: pass, else: drop }")
    result = parse(src)
    assert result.diagnostics == []


def test_no_traceback_on_binary_junk(tmp_path) -> None:
    junk = tmp_path / "junk.fs"
    junk.write_bytes(bytes(range(256)) * 40)
    out = subprocess.run([sys.executable, "-m", "fslang.cli", "check", str(junk)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "E0001" in out.stderr


# ---- values where they enter: ranges, long numbers, names, strings


def _codes(text: str) -> list[tuple[str, int]]:
    """(code, line) of every parser diagnostic."""
    src = SourceFile("v.fs", text)
    return [(d.code, src.position(d.span.start)[0]) for d in parse(src).diagnostics]


def test_numbers_of_thousands_of_digits_are_out_of_range_not_a_crash() -> None:
    from fslang import values as V

    assert V.parse_int("9" * 5000) == V.HUGE and V.parse_int("0x" + "f" * 5000) == V.HUGE
    assert V.parse_int("0" * 60 + "7") == 7  # leading zeros are not digits that count
    assert V.parse_size("9" * 400 + "GiB") >= V.HUGE
    assert V.parse_size("1.5KiB") == 1536 and V.parse_rate("0.5Mbps") == (500_000.0, "bps")
    text = (
        "site s\nswitch sw dpid 0x"
        + "f" * 5000
        + " ports "
        + "9" * 5000
        + "\npolicy p match vlan "
        + "9" * 5000
        + " drop\n"
    )
    assert _codes(text) == [("E0014", 2), ("E0014", 2), ("E0014", 3)]


def test_an_out_of_range_match_value_is_reported_and_read_as_in_range() -> None:
    src = SourceFile("v.fs", "site s\npolicy p match dscp 64 or proto 256 or vlan 4096 drop\n")
    result = parse(src)
    assert [d.code for d in result.diagnostics] == ["E0014"] * 3
    match = result.program.statements[1].match
    assert [type(m).__name__ for m in match.items] == ["MDscp", "MProtoNum", "MVlan"]
    assert all(getattr(m, f) == 0 for m, f in zip(match.items, ("value", "number", "vid")))


def test_option_limits_name_the_limit_and_its_reason() -> None:
    from fslang.codes import LIMITS

    src = SourceFile("v.fs", "site s\nhost h at sw:1 cores 0 memory 512KiB\nmodule m = monitor() replicas 300\n")
    diags = parse(src).diagnostics
    assert [d.code for d in diags] == ["E0014", "E0014", "E0406"]
    assert "1..1,024" in diags[0].message and diags[0].hint == LIMITS["cores"].reason
    assert "1MiB..1024TiB" in diags[1].message and "512KiB" in diags[1].message
    assert "1..256" in diags[2].message and "256 buckets" in (diags[2].hint or "")


def test_names_have_at_most_64_characters() -> None:
    assert _codes("site " + "s" * 64 + "\n") == []
    assert _codes("site s\nset " + "a" * 65 + " = 10.0.0.1\n") == [("E0017", 2)]


def test_strings_must_be_carried_by_every_output_file() -> None:
    ok = 'site s\nmodule m = ids(rules: "t\u00e9\tab \U0001f600 \u0085 \ufffd")\n'
    assert _codes(ok) == []
    for bad in ("\x01", "\x1b", "\x7f", "\ufffe", "\uffff"):
        assert _codes(f'site s\nmodule m = ids(rules: "a{bad}b")\n') == [("E0016", 2)], repr(bad)


WEIGHTED = """site w
policy p match udp via case { udp: m * 2 weights 3, 1, else: pass }
policy q match tcp via m * 3 weights 1, # a comment
  2, 0x3 { a: pass, else: drop }
policy r via case { tcp: m * 2 weights 5, 7, }
"""


def _weights(p: object) -> list[list[int]]:
    """Every weight list in a pipeline, outermost first."""
    out: list[list[int]] = []
    if isinstance(p, A.PUse):
        out.append([w.value for w in p.weights])
        for b in p.branches or ():
            out += _weights(b.pipeline)
    elif isinstance(p, A.PCase):
        for arm in p.arms:
            out += _weights(arm.pipeline)
    elif isinstance(p, A.PSerial):
        for s in p.stages:
            out += _weights(s)
    return out


def test_a_weight_list_ends_at_the_comma_before_the_next_arm() -> None:
    """`weights 3, 1, else: ...` inside a case arm or before branches: the comma
    after the list separates arms (found by the random print-then-parse
    property: the grammar used to take it for one more weight)."""
    result = parse(SourceFile("w.fs", WEIGHTED))
    assert result.diagnostics == []
    policies = [s for s in result.program.statements if isinstance(s, A.PolicyStmt)]
    p, q, r = (s.pipeline for s in policies)
    assert isinstance(p, A.PCase) and [a.guard is None for a in p.arms] == [False, True]
    assert _weights(p) == [[3, 1]]
    assert isinstance(q, A.PUse) and [b.label is None for b in q.branches or ()] == [False, True]
    assert _weights(q)[0] == [1, 2, 3]
    assert isinstance(r, A.PCase) and len(r.arms) == 1 and _weights(r) == [[5, 7]]
