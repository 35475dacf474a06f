"""Tests for backends/click/lang/: Click parser, printer, element table, checker."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.click.lang.args import split_args
from backends.click.lang.ast import (
    AnonElement,
    Chain,
    ClickConfig,
    ClickProblem,
    ClickSyntaxError,
    Declaration,
    Define,
    ElementClassDef,
    ElementRef,
    Endpoint,
    InlineDecl,
    Require,
)
from backends.click.lang.checker import check_config
from backends.click.lang.element_table import load_element_table
from backends.click.lang.parser import parse_config
from backends.click.lang.printer import format_config


def cfg(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def messages(text: str) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in check_config(cfg(text))]


def assert_problem(text: str, line: int, *fragments: str) -> None:
    probs = messages(text)
    hits = [p for p in probs if p[0] == line and all(f in p[1] for f in fragments)]
    assert hits, f"no problem on line {line} containing {fragments}; got {probs}"


# ---------------------------------------------------------------------------
# good configurations
# ---------------------------------------------------------------------------

REALISTIC = cfg(
    """
    // fsc module host: web filter on eth0 -> eth1, classifier on eth2
    require(package "fsc");
    define($IN eth0, $OUT eth1);

    elementclass CountedMark { $dscp |
      input -> cnt :: Counter -> SetIPDSCP($dscp) -> output;
    }

    src :: FromDevice($IN, SNIFFER false, PROMISC true);
    out :: Queue(1024) -> ToDevice($OUT);

    src -> Strip(14)
        -> CheckIPHeader
        -> IPFilter(allow tcp dst port 80, deny all)
        -> web :: Counter
        -> Unstrip(14)
        -> out;

    FromDevice(eth2)
        -> Strip(14) -> CheckIPHeader(CHECKSUM true)
        -> cl :: IPClassifier(tcp dst port 80 or tcp dst port 443,
                              udp dst port 53,
                              -);
    cl [0] -> CountedMark(46) -> Unstrip(14) -> q3 :: Queue(200) -> ToDevice(eth3);
    cl [1] -> Paint(2) -> Discard;
    cl [2] -> /* everything else */ Discard;
    """
)


def test_realistic_config_parses_and_checks_clean():
    assert check_config(REALISTIC) == []
    c = parse_config(REALISTIC, "fw.click")
    assert c.filename == "fw.click"
    kinds = [type(s).__name__ for s in c.statements]
    assert kinds == [
        "Require",
        "Define",
        "ElementClassDef",
        "Declaration",
        "Chain",
        "Chain",
        "Chain",
        "Chain",
        "Chain",
        "Chain",
    ]
    req, define, ec, src = c.statements[:4]
    assert req == Require('package "fsc"') and req.line == 2
    assert define.bindings == (("IN", "eth0"), ("OUT", "eth1"))
    assert ec.name == "CountedMark" and ec.formals == ("dscp",) and ec.line == 5
    assert src == Declaration(("src",), "FromDevice", "$IN, SNIFFER false, PROMISC true")
    main = c.statements[5]
    assert isinstance(main, Chain) and main.line == 12
    assert [ep.line for ep in main.endpoints] == [12, 12, 13, 14, 15, 16, 17]
    assert main.endpoints[3].element == AnonElement("IPFilter", "allow tcp dst port 80, deny all")
    assert main.endpoints[4].element == InlineDecl("web", "Counter", None)
    cl_chain = c.statements[6]
    cl = cl_chain.endpoints[-1].element
    assert isinstance(cl, InlineDecl) and cl.class_name == "IPClassifier"
    assert len(split_args(cl.config)) == 3
    third = c.statements[7]
    assert third.endpoints[0] == Endpoint(ElementRef("cl"), None, 0)


def test_port_syntax_and_chains():
    c = parse_config("a :: Tee; b::Discard;\na[1]->[0]b; a [0] -> Counter -> [0] b")
    ch = c.statements[2]
    assert ch == Chain((Endpoint(ElementRef("a"), None, 1), Endpoint(ElementRef("b"), 0, None)))
    ch2 = c.statements[3]
    assert [ep.element for ep in ch2.endpoints] == [ElementRef("a"), ElementRef("Counter"), ElementRef("b")]
    assert ch2.endpoints[2].in_port == 0 and ch2.line == 2


def test_semicolons_optional_and_comments():
    text = cfg(
        """
        /* block
           comment */ a :: Counter   // declare
        FromDevice(eth0) -> a -> Discard
        ;;
        """
    )
    c = parse_config(text)
    assert len(c.statements) == 2
    assert c.statements[0].line == 2 and c.statements[1].line == 3
    assert check_config(text) == []


def test_config_strings_kept_raw():
    c = parse_config("x :: Foo(a (b, c), \"q)(,\", [1, 2], 's,t' // note\n , z);")
    raw = c.statements[0].config
    assert raw.startswith("a (b, c)") and "// note" in raw
    assert split_args(raw) == ("a (b, c)", '"q)(,"', "[1, 2]", "'s,t'", "z")


@pytest.mark.parametrize(
    "raw, args",
    [
        ("", ()),
        ("   ", ()),
        ("14", ("14",)),
        ("a, b,", ("a", "b")),
        ("12/0800, -", ("12/0800", "-")),
        ("a /* x, y */, b", ("a", "b")),
        ('"a,b", {c, d}', ('"a,b"', "{c, d}")),
    ],
)
def test_split_args(raw, args):
    assert split_args(raw) == args


def test_multi_declaration_and_synonym_class():
    text = "elementclass MyQueue Queue;\nq1, q2 :: MyQueue(10);\nFromDevice(eth0) -> Tee(2) => q1;\n"
    with pytest.raises(ClickSyntaxError):
        parse_config(text)  # "=>" is not supported
    text = cfg(
        """
        elementclass MyQueue Queue;
        q1, q2 :: MyQueue(10);
        t :: Tee(2);
        FromDevice(eth0) -> t;
        t [0] -> q1 -> ToDevice(eth1);
        t [1] -> q2 -> ToDevice(eth2);
        """
    )
    c = parse_config(text)
    assert c.statements[0] == ElementClassDef("MyQueue", synonym="Queue")
    assert c.statements[1] == Declaration(("q1", "q2"), "MyQueue", "10")
    assert check_config(text) == []


def test_agnostic_elements_resolve_through_queues():
    # push on both sides of the agnostic Counter, pull after the queue
    assert messages("FromDevice(eth0) -> Counter -> Queue -> Counter -> Paint(1) -> ToDevice(eth0);") == []
    # a pull scheduler merging two queues, unqueued back to push
    text = cfg(
        """
        q0, q1 :: Queue;
        c :: Classifier(12/0800, -);
        FromDevice(eth0) -> c;
        c [0] -> q0;
        c [1] -> q1;
        q0 -> [0] s :: PrioSched;
        q1 -> [1] s;
        s -> Unqueue -> Counter -> Discard;
        """
    )
    assert messages(text) == []


def test_pull_output_may_feed_several_pull_inputs():
    # Queue output 0 is pull: reusing it is legal in Click (only push
    # outputs and pull inputs are "active")
    assert messages("q :: Queue; FromDevice(eth0) -> q; q -> ToDevice(eth0); q -> ToDevice(eth1);") == []


def test_compound_element_flattening():
    text = cfg(
        """
        elementclass Split {
          input -> c :: Classifier(12/0806, -);
          c [0] -> [0] output;
          c [1] -> [1] output;
        }
        elementclass Pass { input -> output }
        FromDevice(eth0) -> s :: Split;
        s [0] -> Pass -> Discard;
        s [1] -> Queue -> Pass -> ToDevice(eth1);
        """
    )
    assert messages(text) == []


# ---------------------------------------------------------------------------
# problems, each with its line
# ---------------------------------------------------------------------------


def test_unknown_class():
    assert_problem(
        """
        a :: Counter;
        FromDevice(eth0) -> a
          -> Frobnicate(3) -> Discard;
        """,
        3,
        "unknown element class 'Frobnicate'",
    )
    assert_problem("x :: Nope;\n", 1, "unknown element class 'Nope'")


def test_unknown_class_reported_alone():
    # placeholders keep the neighbours from being reported as unconnected
    probs = messages("FromDevice(eth0) -> Frobnicate(3) -> Discard;\n")
    assert probs == [(1, "unknown element class 'Frobnicate'")]


def test_undeclared_element():
    assert_problem(
        """
        src :: FromDevice(eth0);
        src -> Strip(14)
            -> sink;
        """,
        3,
        "undeclared element 'sink'",
    )


def test_use_before_declaration_is_undeclared():
    assert_problem(
        """
        FromDevice(eth0) -> c;
        c :: Counter -> Discard;
        """,
        1,
        "undeclared element 'c'",
    )


def test_redeclaration_and_class_as_name():
    assert_problem(
        """
        a :: Counter;
        a :: Counter;
        FromDevice(eth0) -> a -> Discard;
        """,
        2,
        "redeclaration of element 'a'",
        "line 1",
    )
    assert_problem("Counter :: Counter;\nFromDevice(eth0) -> Discard;", 1, "class 'Counter' used as element name")


def test_port_out_of_range():
    assert_problem(
        """
        s :: Strip(14);
        FromDevice(eth0) -> s -> Discard;
        s [1] -> Discard;
        """,
        3,
        "'s' :: Strip has no output 1",
    )
    assert_problem(
        """
        d :: Discard;
        FromDevice(eth0) -> d;
        FromDevice(eth1) -> [1] d;
        """,
        3,
        "'d' :: Discard has no input 1",
    )


def test_classifier_outputs_follow_arguments():
    text = """
        c :: IPClassifier(tcp, udp, -);
        FromDevice(eth0) -> c;
        c [0] -> Discard;
        c [1] -> Discard;
        c [2] -> Discard;
        c [3] -> Discard;
        """
    assert_problem(text, 6, "has no output 3", "one output per configuration argument: 3")
    assert_problem(
        """
        c :: Classifier(12/0800, 12/0806, -);
        FromDevice(eth0) -> c;
        c [0] -> Discard;
        c [2] -> Discard;
        """,
        1,
        "'c' :: Classifier output 1 is not connected",
    )


def test_dangling_output():
    assert_problem(
        """
        FromDevice(eth0) -> Strip(14) -> ch :: CheckIPHeader -> Discard;
        cl :: IPClassifier(tcp, -);
        ch [1] -> cl;
        cl [0] -> Discard;
        """,
        2,
        "'cl' :: IPClassifier output 1 is not connected (dangling output)",
    )
    assert_problem("f :: FromDevice(eth0);\nq :: Queue -> ToDevice(eth0);\n", 1, "'f' :: FromDevice output 0")
    assert_problem("f :: FromDevice(eth0);\nq :: Queue -> ToDevice(eth0);\n", 2, "'q' :: Queue input 0")


def test_ipfilter_needs_outputs_for_its_slots():
    assert_problem(
        """
        FromDevice(eth0) -> f :: IPFilter(0 tcp, 1 udp, deny all) -> Discard;
        """,
        1,
        "'f' :: IPFilter output 1 is not connected",
    )


def test_double_connected_push_output():
    assert_problem(
        """
        src :: FromDevice(eth0);
        src -> Counter -> Discard;
        src -> Print(dup) -> Discard;
        """,
        3,
        "illegal reuse of 'src' :: FromDevice push output 0",
        "line 2",
    )


def test_double_connected_pull_input():
    assert_problem(
        """
        q1, q2 :: Queue;
        FromDevice(eth0) -> q1;
        FromDevice(eth1) -> q2;
        t :: ToDevice(eth2);
        q1 -> t;
        q2 -> t;
        """,
        6,
        "illegal reuse of 't' :: ToDevice pull input 0",
    )


def test_push_to_pull_without_queue():
    assert_problem(
        """
        src :: FromDevice(eth0);
        src -> Strip(14)
            -> Unstrip(14);
        src2 :: FromDevice(eth1);
        src2 -> ToDevice(eth1);
        """,
        5,
        "push output 0 connected to",
        "pull input 0",
        "Queue",
    )


def test_push_to_pull_through_agnostic_elements():
    assert_problem(
        """
        FromDevice(eth0)
          -> c :: Counter
          -> ToDevice(eth1);
        """,
        2,
        "agnostic 'c' :: Counter in mixed context",
        "Queue",
    )


def test_push_to_pull_through_compound():
    assert_problem(
        """
        elementclass Count { input -> c :: Counter -> output }
        FromDevice(eth0) -> Count -> ToDevice(eth0);
        """,
        1,
        "agnostic 'Count@2/c' :: Counter in mixed context",
    )


def test_pull_to_push_without_unqueue():
    assert_problem(
        "FromDevice(eth0) -> q :: Queue;\nq -> Tee(1) -> Discard;\n",
        2,
        "pull output 0 connected to",
        "push input 0",
        "Unqueue",
    )


def test_compound_port_problems():
    assert_problem(
        """
        elementclass Two { input -> Counter -> output; input [1] -> Discard }
        FromDevice(eth0) -> t :: Two -> Discard;
        """,
        2,
        "'t' :: Two input 1 is not connected",
    )
    assert_problem(
        """
        elementclass One { input -> Counter -> output }
        FromDevice(eth0) -> o :: One -> Discard;
        o [1] -> Discard;
        """,
        3,
        "'o' :: One has no output 1",
    )
    assert_problem(
        """
        elementclass Gap { input -> Counter -> [1] output }
        FromDevice(eth0) -> g :: Gap;
        g [1] -> Discard;
        """,
        1,
        "'Gap' output 0 missing",
    )
    assert_problem(
        """
        elementclass P { $a, $b | input -> Paint($a) -> output }
        FromDevice(eth0) -> P(1) -> Discard;
        """,
        2,
        "takes 2 arguments, got 1",
    )


def test_recursive_compound():
    assert_problem("elementclass A { input -> A -> output }\nFromDevice(eth0) -> A -> Discard;", 1, "recursive")


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("FromDevice(eth0) -> Discard;\nFromDevice(eth1) -> -> Discard;\n", 2, "unexpected '->'"),
        ("a :: Counter;\nFromDevice(eth0 -> a -> Discard;\n", 3, "missing ')'"),
        ('a :: Counter;\nx :: Print("oops) -> Discard;\n', 2, "unterminated quoted string"),
        ("a :: ;\n", 1, "unexpected ';'"),
        ("FromDevice(eth0) -> [x] Discard;\n", 1, "unexpected 'x'"),
        ("\n\nFromDevice(eth0) -> Discard [0];\n", 3, "output port [0] at the end of a chain"),
        ("elementclass A { input -> output\n", 2, "missing '}'"),
        ("FromDevice(eth0) -> Discard ) ;\n", 1, "unexpected ')'"),
    ],
)
def test_syntax_errors(text, line, fragment):
    probs = check_config(text, "bad.click")
    assert len(probs) == 1
    p = probs[0]
    assert p.line == line and "syntax error" in p.message and fragment in p.message, p
    assert str(p).startswith(f"bad.click:{line}: ")
    with pytest.raises(ClickSyntaxError) as ei:
        parse_config(text)
    assert ei.value.line == line


def test_problem_type():
    p = ClickProblem(3, "x", "f.click")
    assert (p.line, p.message, str(p)) == (3, "x", "f.click:3: x")


# ---------------------------------------------------------------------------
# element table
# ---------------------------------------------------------------------------

REQUIRED = """
FromDevice ToDevice Queue Unqueue Discard Counter Tee Classifier IPClassifier IPFilter
CheckIPHeader Strip Unstrip EtherEncap EtherRewrite StoreEtherAddress VLANEncap VLANDecap
Paint PaintSwitch IPRewriter RoundRobinIPMapper IPsecESPEncap IPsecESPUnencap
IPsecAuthHMACSHA1 IPsecAES IPsecEncap IPEncap BandwidthMeter BandwidthRatedSplitter
RatedUnqueue BandwidthShaper Meter SetIPDSCP MarkIPHeader Print Null Idle Switch
StaticSwitch HashSwitch RoundRobinSwitch Script Socket RawSocket FromHost ToHost SetVLANAnno
""".split()


def test_element_table_covers_fsc_elements():
    table = load_element_table()
    missing = [n for n in REQUIRED if n not in table]
    assert not missing
    assert "GREEncap" not in table and "GREDecap" not in table  # not Click elements


@pytest.mark.parametrize(
    "name, inputs, outputs, processing",
    [
        ("FromDevice", "0", "1-2", "h/h"),
        ("ToDevice", "1", "0-2", "l/h"),
        ("Queue", "1", "1-2", "h/lh"),
        ("Unqueue", "1", "1", "l/h"),
        ("RatedUnqueue", "1", "1", "l/h"),
        ("BandwidthShaper", "1", "1-2", "l/l"),
        ("Discard", "1", "0", "a/a"),
        ("Counter", "1", "1", "a/a"),
        ("Tee", "1", "1-", "h/h"),
        ("Classifier", "1", "per-argument", "h/h"),
        ("IPClassifier", "1", "per-argument", "h/h"),
        ("IPFilter", "1", "any", "h/h"),
        ("CheckIPHeader", "1", "1-2", "a/ah"),
        ("BandwidthMeter", "1", "per-argument+1", "h/h"),
        ("IPRewriter", "1-", "1-", "h/h"),
        ("RoundRobinIPMapper", "0", "0", "a/a"),
        ("Idle", "any", "any", "a/a"),
        ("Socket", "0-1", "0-1", "a/h"),
        ("PrioSched", "any", "1", "l/l"),
    ],
)
def test_element_table_entries(name, inputs, outputs, processing):
    spec = load_element_table()[name]
    assert (spec.inputs, spec.outputs, spec.processing) == (inputs, outputs, processing)


def test_element_table_is_consistent():
    for name, spec in load_element_table().items():
        assert spec.name == name and spec.doc
        lo, hi = spec.input_range()
        assert 0 <= lo <= hi


# ---------------------------------------------------------------------------
# Hypothesis: printed random ASTs parse back to the same AST
# ---------------------------------------------------------------------------

KEYWORDS = {"elementclass", "require", "define"}
LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
names = st.builds(
    lambda a, b, c: a + b + (f"/{c}" if c else ""),
    st.sampled_from(LOWER),
    st.text(LOWER + DIGITS + "_", max_size=5),
    st.text(LOWER + DIGITS, max_size=3),
).filter(lambda s: s not in KEYWORDS)
class_names = st.builds(
    str.__add__, st.sampled_from(LOWER.upper()), st.text(LOWER + LOWER.upper() + DIGITS, max_size=7)
)
variables = st.builds(str.__add__, st.sampled_from(LOWER), st.text(LOWER + DIGITS + "_", max_size=4))
ports = st.integers(0, 12)
pieces = st.sampled_from(
    [
        "14",
        "eth0",
        " ",
        ", ",
        ",",
        "12/0800",
        "tcp dst port 80",
        "-",
        "$X",
        "10.0.0.1/24",
        "SNIFFER false",
        "[1, 2]",
        "{a, b}",
        "a; b -> c",
        "/* c, ) */",
        "0x0800",
        "::",
        "'s(,'",
    ]
)
quoted = st.text("ab ,()[]", max_size=8).map(lambda s: f'"{s}"')
configs = st.recursive(
    st.lists(pieces | quoted, max_size=4).map("".join),
    lambda inner: st.lists(inner.map(lambda s: f"({s})") | pieces | quoted, max_size=4).map("".join),
    max_leaves=8,
)
opt_configs = st.none() | configs

elements = st.one_of(
    st.builds(ElementRef, names),
    st.builds(AnonElement, class_names, configs),
    st.builds(InlineDecl, names, class_names, opt_configs),
)


@st.composite
def chains(draw):
    n = draw(st.integers(2, 5))
    eps = []
    for i in range(n):
        eps.append(
            Endpoint(
                draw(elements),
                None if i == 0 else draw(st.none() | ports),
                None if i == n - 1 else draw(st.none() | ports),
            )
        )
    return Chain(tuple(eps))


declarations = st.builds(
    Declaration, st.lists(names, min_size=1, max_size=3, unique=True).map(tuple), class_names, opt_configs
)
simple_statements = st.one_of(
    chains(),
    declarations,
    st.builds(Require, configs),
    st.builds(Define, configs),
    st.builds(ElementClassDef, class_names, synonym=class_names),
)
statements = st.recursive(
    simple_statements,
    lambda inner: st.builds(
        ElementClassDef,
        class_names,
        st.lists(variables, max_size=3, unique=True).map(tuple),
        st.lists(inner, max_size=4).map(tuple),
    ),
    max_leaves=6,
)
click_configs = st.lists(statements, max_size=6).map(lambda ss: ClickConfig(tuple(ss)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(click_configs)
def test_printed_ast_parses_back_to_same_ast(config):
    text = format_config(config)
    parsed = parse_config(text)
    assert parsed == config
    # top-level statement lines match where the printer put them
    line = 1
    for s in parsed.statements:
        assert s.line == line
        line += format_config([s]).count("\n")


AGNOSTIC_1_1 = [
    "Counter",
    "Null",
    "Paint(3)",
    "Strip(14)",
    "Unstrip(14)",
    "SetIPDSCP(46)",
    "MarkIPHeader(14)",
    "Print(pkt)",
    "SetTimestamp",
    "EtherEncap(0x0800, 0:1:2:3:4:5, 0:1:2:3:4:6)",
    "VLANEncap(VLAN_ID 10)",
    "VLANDecap",
    "IPEncap(4, 10.0.0.1, 10.0.0.2)",
    "SetVLANAnno(VLAN_ID 5)",
]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(AGNOSTIC_1_1), max_size=5),
    st.lists(st.sampled_from(AGNOSTIC_1_1), max_size=5),
)
def test_random_pipelines_need_exactly_one_queue(before, after):
    good = " -> ".join(["FromDevice(eth0)", *before, "Queue", *after, "ToDevice(eth1)"]) + ";"
    assert check_config(good) == []
    bad = " -> ".join(["FromDevice(eth0)", *before, *after, "ToDevice(eth1)"]) + ";"
    probs = check_config(bad)
    assert len(probs) == 1 and "Queue" in probs[0].message and "pull" in probs[0].message
