"""Hostile and careless inputs: each gives a coded diagnostic at the line
that caused it, never a traceback; `fsc check` and `fsc compile` agree on
the exit code and a failed compile writes nothing.

The cases are what a new user met (issue 10) and what the site fuzzer
(`benchmarks/fuzz_sites.py`) found; each names the code it must yield.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fslang import api
from fslang.codes import BASE, CODES, LIMITS

HOSTS8 = BASE.replace("cores 4 memory 8GiB", "cores 8 memory 16GiB")
MON = "module m = monitor()\n"


def _site(extra: str, base: str = BASE) -> str:
    return base + extra


def _serial(n: int, name: str = "m") -> str:
    return " >> ".join([name] * n)


# (id, site text or bytes, code, text the diagnostic must point at (None: anywhere))
CASES: list[tuple[str, str | bytes, str, str | None]] = [
    # value ranges, where the value enters
    ("dscp-64", _site("policy p match dscp 64 drop\n"), "E0014", "dscp 64"),
    ("proto-256", _site("policy p match proto 256 drop\n"), "E0014", "proto 256"),
    ("firewall-deny-proto-300", _site("module f = firewall(deny: proto 300)\npolicy p via f\n"), "E0014", "proto 300"),
    ("vlan-4096", _site("policy p match vlan 4096 drop\n"), "E0014", "vlan 4096"),
    ("port-70000", _site("policy p match tcp and dst port 70000 drop\n"), "E0014", "port 70000"),
    ("port-5000-digits", _site("policy p match tcp and port " + "9" * 5000 + " drop\n"), "E0014", "port 9999"),
    ("vlan-hex-100-digits", _site("policy p match vlan 0x" + "f" * 100 + " drop\n"), "E0014", "vlan 0x"),
    ("dpid-65-bits", BASE.replace("dpid 0x1", "dpid 0x1" + "0" * 16) + MON + "policy p via m\n", "E0014", "dpid 0x1"),
    ("ports-0", BASE.replace("ports 8", "ports 0") + MON + "policy p via m\n", "E0014", "ports 0"),
    ("tcam-0", BASE.replace("ports 8", "ports 8 tcam 0") + MON + "policy p via m\n", "E0014", "tcam 0"),
    ("memory-0GiB", BASE.replace("memory 8GiB", "memory 0GiB") + MON + "policy p via m\n", "E0014", "memory 0GiB"),
    ("cores-0", BASE.replace("cores 4", "cores 0") + MON + "policy p via m\n", "E0014", "cores 0"),
    ("module-cores-0", _site("module m = monitor() cores 0\npolicy p via m\n"), "E0014", "cores 0"),
    ("module-memory-huge", _site("module m = monitor() memory 9999TiB\npolicy p via m\n"), "E0014", "memory 9999TiB"),
    (
        "size-400-digits",
        _site("module r = ratelimit(rate: 1Mbps, burst: " + "9" * 400 + "KiB)\npolicy p via r\n"),
        "E0014",
        "burst: 9999",
    ),  # fmt: skip
    ("rate-0", _site("module r = ratelimit(rate: 0bps, burst: 64KiB)\npolicy p via r\n"), "E0014", "rate: 0bps"),
    (
        "rate-huge",
        _site("module r = ratelimit(rate: " + "9" * 50 + "Tbps, burst: 64KiB)\npolicy p via r\n"),
        "E0014",
        "rate: 9999",
    ),  # fmt: skip
    ("burst-0", _site("module r = ratelimit(rate: 1Mbps, burst: 0B)\npolicy p via r\n"), "E0303", "burst: 0B"),
    ("percent-0", _site("module t = monitor(sink: true)\npolicy p via copy 0% to t\n"), "E0014", "copy 0%"),
    # replicas: the flow hash has 256 buckets; capacity is counted before placement
    ("replicas-10000", _site(MON + "policy p via m * 10000\n", HOSTS8), "E0406", "m * 10000"),
    ("replicas-1000000", _site(MON + "policy p via m * 1000000\n", HOSTS8), "E0406", "m * 1000000"),
    ("replicas-option-257", _site("module m = monitor() replicas 257\npolicy p via m\n"), "E0406", "replicas 257"),
    ("replicas-0", _site(MON + "policy p via m * 0\n"), "E0406", "m * 0"),
    ("replicas-256-on-8-cores", _site(MON + "policy p via m * 256\n", HOSTS8), "E0701", "module m"),
    (
        "modules-together-too-big",
        _site("module a = monitor() cores 3\nmodule b = monitor() cores 3\npolicy p via a * 2 >> b * 2\n", HOSTS8),
        "E0701",
        None,
    ),
    # names that become file, domain and interface names
    (
        "host-name-300",
        BASE.replace("host h ", "host " + "h" * 300 + " ") + MON + "policy p via m\n",
        "E0017",
        "host hhh",
    ),
    (
        "switch-name-300",
        BASE.replace("switch sw ", "switch " + "s" * 300 + " ").replace("at sw:", "at " + "s" * 300 + ":")
        + MON
        + "policy p via m\n",
        "E0017",
        "switch sss",
    ),
    (
        "module-name-65",
        _site("module " + "m" * 65 + " = monitor()\npolicy p via " + "m" * 65 + "\n"),
        "E0017",
        "module mmm",
    ),
    ("site-name-65", "site " + "s" * 65 + BASE[len("site s") :], "E0017", "site sss"),
    # characters the output files cannot carry
    ("image-uffff", _site('module v = dpi() image "a\uffffb"\npolicy p via v\n'), "E0016", "image"),
    ("image-ufffe", _site('module v = dpi() image "a\ufffeb"\npolicy p via v\n'), "E0016", "image"),
    ("command-escape", _site('module x = process(command: "run \x1b[31m")\npolicy p via x\n'), "E0016", "command"),
    ("key-del", _site('module e = encrypt(spi: 300, key: "k\x7f")\npolicy p via e\n'), "E0016", "key:"),
    (
        "surrogate-bytes",
        _site('module v = dpi() image "a').encode() + b"\xed\xa0\x80" + b'"\npolicy p via v\n',
        "E0001",
        None,
    ),  # fmt: skip
    ("nul-byte", _site("policy p match tcp drop\n").encode().replace(b"tcp", b"t\x00cp"), "E0001", None),
    ("image-empty", _site('module v = dpi() image ""\npolicy p via v\n'), "E0305", "module v"),
    ("command-blank", _site('module x = process(command: "   ")\npolicy p via x\n'), "E0309", "command"),
    # pipelines the platform cannot carry
    ("serial-256", _site(MON + "policy p via " + _serial(256) + "\n", HOSTS8), "E0411", "policy p"),
    ("serial-65", _site(MON + "policy p via " + _serial(65) + "\n", HOSTS8), "E0411", "policy p"),
    (
        "branches-deeper-than-64",
        _site("module c = classify(a: tcp)\npolicy p via " + "c { a: " * 40 + "c >> " * 30 + "c" + " }" * 40 + "\n"),
        "E0411",
        "policy p",
    ),
    # found by the fuzzer
    (
        "replicated-module-with-errors",
        _site("module m = monitor(snk: true)\npolicy p via m * 2\n"),
        "E0301",
        "snk:",
    ),
    (  # header conditions multiplied past memory (23 GB, then killed)
        "port-range-cases-under-address-hashed-replicas",
        _site(
            "module m = monitor()\nmodule n = monitor()\npolicy p via case { tcp and dst port 1..65534: pass, "
            "else: pass } >> case { tcp and src port 1..65534: pass, else: pass } >> m * 7 by src >> n * 7 by dst\n",
            BASE.replace("cores 4", "cores 16"),
        ),
        "E0803",
        "policy p",
    ),
    (  # a standard switch spells masked ports one by one: four billion entries
        "two-wide-port-ranges-on-a-standard-switch",
        _site(MON + "policy p match tcp and src port 1024..65535 and dst port 1024..65535 via m\n"),
        "E0804",
        "policy p",
    ),
    (  # a classifier label's `not` over independent fields: 1.3 million host patterns (24 s)
        "classify-label-not-of-a-union",
        _site(
            "set s9 = fe:50:33:d9:7c:41\nclass c10 = net 107.136.75.0/24 or ether s9\n"
            "module c = classify(l0: not c10, l1: proto 208)\npolicy p via c { l0: pass, l1: pass }\n"
        ),
        "E0804",
        "module c",
    ),
    (  # nested port-range case after multi-output modules: two million SELECT entries (minutes);
        # the steering's budget of header-condition work stops it first
        "select-list-explosion",
        (Path(__file__).parent / "regressions" / "select_list_explosion.fs").read_text(),
        "E0803",
        "policy p11",
    ),
]


def _bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode("utf-8")


def _line_of(data: str | bytes, needle: str) -> int:
    text = _bytes(data).decode("utf-8", "replace")
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(("data", "code", "at"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_gives_its_code(data: str | bytes, code: str, at: str | None) -> None:
    t0 = time.perf_counter()
    b = api.build("hostile.fs", _bytes(data))  # must not raise
    assert time.perf_counter() - t0 < 20, "a hostile input must be refused in seconds"
    assert not b.ok and not b.files
    assert code in {c.code for c in CODES}
    hits = [d for d in b.diagnostics if d.code == code]
    assert hits, [(d.code, d.message) for d in b.diagnostics]
    d = hits[0]
    line, col = b.source.position(d.span.start)
    assert line >= 1 and col >= 1 and d.message
    if at is not None:  # on the line that says it
        assert line == _line_of(data, at), (line, d.message)


def _driver(argvs: list[list[str]]) -> list[tuple[int, str]]:
    """Run each argv through `fsc`'s own entry point (its top-level guard
    included) in one interpreter: (exit code, standard error) each."""
    code = """
import contextlib, io, json, sys
from fslang.cli import main
out = []
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    sys.argv = ["fsc", *argv]
    rc = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out.append((rc, err.getvalue()))
print(json.dumps(out))
"""
    p = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return [tuple(x) for x in json.loads(p.stdout.splitlines()[-1])]


def test_check_and_compile_agree_on_every_hostile_input(tmp_path: Path) -> None:
    argvs, outs = [], []
    for name, data, _, _ in CASES:
        site = tmp_path / f"{name}.fs"
        site.write_bytes(_bytes(data))
        out = tmp_path / f"out-{name}"
        argvs += [["check", str(site)], ["compile", str(site), "-o", str(out)]]
        outs.append(out)
    results = _driver(argvs)
    for k, (name, _, code, _) in enumerate(CASES):
        (rc_check, err_check), (rc_compile, err_compile) = results[2 * k], results[2 * k + 1]
        for err in (err_check, err_compile):
            assert "Traceback" not in err and "internal error" not in err, (name, err[-500:])
            assert f"[{code}]" in err, (name, err[-500:])
        assert rc_check == rc_compile == 1, (name, rc_check, rc_compile)
        assert not outs[k].exists(), f"{name}: a failed compile wrote {outs[k]}"


def test_the_limits_are_documented_with_their_reasons() -> None:
    from fslang.codes import markdown

    page = markdown()
    for limit in LIMITS.values():
        assert limit.reason in page and limit.text() in page


def test_the_replica_limit_is_the_number_of_flow_hash_buckets() -> None:
    from compiler.steering.flowhash import BUCKETS

    assert LIMITS["replicas"].hi == BUCKETS


def test_a_pipeline_of_64_stages_compiles_and_65_does_not() -> None:
    ok = api.build("s.fs", _site(MON + "policy p via " + _serial(64) + " symmetric\n", HOSTS8))
    assert ok.ok, [d.message for d in ok.diagnostics]
    assert any(f.startswith("click/") for f in ok.files)
    bad = api.build("s.fs", _site(MON + "policy p via " + _serial(65) + "\n", HOSTS8))
    assert [d.code for d in bad.diagnostics if d.severity == "error"] == ["E0411"]


def test_capacity_is_counted_before_placement() -> None:
    """The count says no before placement runs, and only when placement would say no too."""
    t0 = time.perf_counter()
    b = api.build("s.fs", _site("".join(f"module m{i} = monitor()\n" for i in range(40)) + "".join(
        f"policy p{i} match tcp and dst port {i + 1} via m{i} * 256\n" for i in range(40)), HOSTS8))  # fmt: skip
    assert time.perf_counter() - t0 < 10
    assert {d.code for d in b.diagnostics if d.severity == "error"} == {"E0701"}
    over = api.build("s.fs", _site(MON + "policy p via m * 9\n", HOSTS8))  # 9 cores wanted, 8 there
    assert not over.ok and {d.code for d in over.diagnostics if d.severity == "error"} == {"E0701"}
    exact = api.build("s.fs", _site(MON + "policy p via m * 8\n", HOSTS8))  # 8 cores, 8 x 512MiB: just fits
    assert exact.ok, [d.message for d in exact.diagnostics]


# ---------------------------------------------------------------- more than 255 steps on one Click instance

MANY_STEPS = (
    BASE.replace("ports 8", "ports 16").replace(
        "host h at sw:1 cores 4 memory 8GiB",
        "host h at sw:1 cores 4 memory 8GiB runs click\n"
        "host h2 at sw:4 cores 64 memory 64GiB\nhost h3 at sw:5 cores 64 memory 64GiB",
    )
    + "module a = monitor()\nmodule b = monitor()\nmodule c = monitor()\nmodule d = monitor()\npin a to h\n"
    + "policy p via a >> b * 16 by dst >> c * 17 by src >> d\n"
)


def test_a_click_instance_of_more_than_255_steps_sends_each_step_on_its_own_way() -> None:
    """Instance `a` has 272 steps (one per combination of the `b` and `c`
    replicas after it): a second paint byte picks the group of the step.  A
    packet with each step's tag, run through host `h`'s generated Click
    configuration in the runtime, comes back with the tag the host model
    (``compiler.verification.hosts``) predicts, steps past the 255th included."""
    from backends.click.runtime import frames as F
    from backends.emit.click import generate as G
    from compiler.verification.hosts import run_host
    from compiler.verification.modulemodel import default_oracle
    from tests.test_click_runtime_model import HostRig, build_frame

    b = api.build("many.fs", MANY_STEPS)
    assert b.ok, [d.message for d in b.diagnostics]
    c = b.compiled
    hp = c.hosts["h"]
    steps = [s.tag for s in hp.steps if s.instance == "a"]
    assert len(steps) > G.MAX_PAINT
    assert "PaintSwitch(ANNO 18)" in b.files["click/h.click"]
    rig = HostRig(c, "h", b.files["click/h.click"])
    pkt = {
        "eth_type": 0x800,
        "ipv4_src": 0x0A000001,
        "ipv4_dst": 0x0A000102,
        "ip_proto": 6,
        "tcp_src": 1,
        "tcp_dst": 80,
    }
    failures = []
    for tag in steps:
        _, back = run_host(hp, c.site, tag, pkt, default_oracle)
        got = [F.pop_tag(f)[0] & 0xFFF for f in rig.run(build_frame(c, hp, tag, pkt, pcp=0), pkt)]
        if got != ([] if back is None else [back.tag]):
            failures.append((tag, back, got))
    back = [run_host(hp, c.site, tag, pkt, default_oracle)[1] for tag in steps]
    late = range(G.MAX_PAINT, len(steps))
    assert any(back[k] != back[k - G.MAX_PAINT] for k in late), "steps k and k-255 must differ to be told apart"
    assert not failures, failures[:10]


def test_entries_differing_only_in_exact_against_masked_fields_render() -> None:
    """Found by the site fuzzer: two entries of one table and priority whose
    matches differ only in one field being exact in one and masked in the
    other could not be put in file order (None compared with an int)."""
    path = Path(__file__).parent / "regressions" / "exact_and_masked_same_field.fs"
    b = api.build(path.name, path.read_bytes())
    assert b.ok, [d.message for d in b.diagnostics]
    assert any(name.endswith(".ofctl") for name in b.files)


def _check_and_compile(
    site: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # noqa: ANN001
) -> list[tuple[int, str]]:
    """Run `fsc check SITE` then `fsc compile SITE -o OUT` in this process
    (so a monkeypatched bound or stage holds) and return each one's exit code
    and standard error."""
    from fslang.cli import main

    runs = []
    for argv in (["check", str(site)], ["compile", str(site), "-o", str(out)]):
        monkeypatch.setattr(sys, "argv", ["fsc", *argv])
        with pytest.raises(SystemExit) as exc:
            main()
        runs.append((exc.value.code, capsys.readouterr().err))
    return runs


def test_check_renders_as_compile_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    """`fsc check` runs rendering too (and drops the files): a refusal found
    only while rendering (an emitter's ClickUnsupported or ValueError, kept as
    guards behind the check-time diagnostics) fails check exactly as it
    fails compile, never check "ok" and compile an internal error."""
    from backends.emit.click.generate import ClickUnsupported

    def refuse(_compiled: object) -> dict[str, str]:
        raise ClickUnsupported("an emitter's own refusal")

    monkeypatch.setattr(api, "render", refuse)
    site = Path(__file__).resolve().parent.parent / "examples" / "campus.fs"
    runs = _check_and_compile(site, tmp_path / "out", monkeypatch, capsys)
    assert [code for code, _ in runs] == [3, 3]
    assert all("an emitter's own refusal" in err for _, err in runs), runs
    assert not (tmp_path / "out").exists()


def test_a_switch_past_its_entry_bound_stops_lowering_in_check_and_compile(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # noqa: ANN001
) -> None:
    """Every match within MAX_SPELT, but together past a switch's bound
    (the fuzz run's accepted sites: 1.2 million POLICY entries on a standard
    switch with no `tcam`, 24-39 s): lowering stops that switch and check and
    compile both say E0804 at the switch; a site just under it compiles.
    The bound is lowered here so the case stays fast; at the real bound
    (1,000,000) twenty such policies take about 12 s instead of 24."""
    from compiler.lowering import ofmatch

    monkeypatch.setattr(ofmatch, "MAX_SWITCH_ENTRIES", 5_000)
    # each policy spells 1024..2047 one port at a time on a standard switch, from each of its two edges
    # (2,048 POLICY entries): two policies fit (4,119 entries with the rest), three do not
    policies = "".join(f"policy p{i} match tcp and src port {i + 1} and dst port 1024..2047 drop\n" for i in range(3))
    site = tmp_path / "full.fs"
    site.write_text(BASE + policies)
    runs = _check_and_compile(site, tmp_path / "out", monkeypatch, capsys)
    assert [code for code, _ in runs] == [1, 1]
    for _, err in runs:
        assert "[E0804]" in err and "switch `sw` needs more than 5,000 flow entries" in err, err
        assert f"{site}:{_line_of(BASE, 'switch sw')}:" in err, err
    assert not (tmp_path / "out").exists()
    b = api.build("under.fs", (BASE + "".join(policies.splitlines(keepends=True)[:2])).encode())
    assert b.ok, [d.message for d in b.diagnostics]
    assert len(b.compiled.tables["sw"].entries) == 4_119
