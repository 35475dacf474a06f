"""`process/INSTANCE.json`: golden files of every example, determinism, and
hostile commands: the JSON always parses back to the exact command, and the
argument vector is the command's POSIX word split (no shell, no expansion),
and quoting that does not balance is rejected at check time (E0309)."""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.emit.process import render_process
from backends.emit.vm.generate import tap_name
from compiler.check.frontend import run
from compiler.pipeline import Compiled, compile_site
from fslang.api import load
from fslang.values import escape_string
from tests.conftest import EXAMPLES, ROOT
from tests.golden_files import check_golden

GOLDEN = ROOT / "tests" / "golden" / "process"
EXAMPLE_IDS = [p.stem for p in EXAMPLES]
SHELL = ["/bin/sh", "-c"]


@functools.cache
def compiled(stem: str) -> Compiled:
    result = load(ROOT / "examples" / f"{stem}.fs")
    assert result.site is not None
    c = compile_site(result.site)
    assert c.placement is not None, [d.message for d in c.diagnostics]  # manifests need only the placement
    return c


def balanced(command: str) -> bool:
    try:
        shlex.split(command)
        return True
    except ValueError:
        return False


def expected_argv(command: str) -> list[str]:
    return shlex.split(command)


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_process_manifests(stem: str) -> None:
    c = compiled(stem)
    files = render_process(c)
    host_of = c.host_of()
    procs = {i: m for m in c.site.modules if m.kind == "process" for i in m.instance_names()}
    assert set(files) == {f"process/{i}.json" for i in procs}
    for inst, m in procs.items():
        doc = json.loads(files[f"process/{inst}.json"])
        command = dict(m.params)["command"]
        assert doc["instance"] == inst and doc["module"] == m.name and doc["host"] == host_of[inst]
        assert doc["command"] == command and doc["argv"] == shlex.split(command)
        assert doc["resources"] == {"cores": m.cores, "memory_bytes": m.memory}
        assert doc["device"] == tap_name(inst)  # where the host's Click configuration reaches it
        assert doc["interfaces"] == [{"switch": sw, "port": p} for sw, p in c.site.host(host_of[inst]).ports]


def test_quoted_arguments_of_hetero() -> None:
    doc = json.loads(render_process(compiled("hetero"))["process/spam#1.json"])
    assert doc["argv"] == ["spamfilter", "--socket", "/run/spamd/spamd.sock", "--reject", "^X-Spam: \\d+"]


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_process_golden(stem: str) -> None:
    check_golden(render_process(compiled(stem)), GOLDEN / stem, ".json", stem)


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_render_is_deterministic(stem: str) -> None:
    once = render_process(compiled(stem))
    assert render_process(compiled(stem)) == once
    assert render_process(compile_site(load(ROOT / "examples" / f"{stem}.fs").site)) == once


# ---- hostile commands --------------------------------------------------------------------------
HOSTILE = [
    '"',
    "'",
    "\\",
    '\\"',
    ";",
    "&&",
    "|",
    "$(",
    ")",
    "`",
    "${HOME}",
    "$HOME",
    "{{",
    "}}",
    "</",
    "]]>",
    "&",
    "#",
    "*",
    "?",
    "~",
    ">",
    "<",
    " ",
    "\t",
    "\r",
    "é",
    "\U0001f600",
    "\x01",
    "%s",
    "\u2028",
]
fsl_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\x00")
hostile = (
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(fsl_chars, max_size=4)), min_size=1, max_size=10)
    .map("".join)
    .filter(lambda s: s.strip() != "")  # a blank command names no program: E0309, tested on its own
)

SITE = """site h
switch sw dpid 1
host a at sw:1 cores 8 memory 16GiB runs click, process
edge e at sw:2 default
module p = process(command: {command})  replicas 2
policy x via p
"""


def checked(command: str):
    return run("h.fs", SITE.format(command=escape_string(command)))


def site_with(command: str) -> Compiled:
    result = checked(command)
    assert result.site is not None, [d.message for d in result.diagnostics]
    c = compile_site(result.site)
    assert c.ok
    return c


@functools.cache
def _baseline() -> Compiled:
    return site_with("true")


def with_command(command: str) -> Compiled:
    c = _baseline()
    mods = tuple(dataclasses.replace(m, params=(("command", command),)) for m in c.site.modules)
    return dataclasses.replace(c, site=dataclasses.replace(c.site, modules=mods))


def _check(c: Compiled, command: str) -> None:
    files = render_process(c)
    assert set(files) == {"process/p#1.json", "process/p#2.json"}
    for text in files.values():
        doc = json.loads(text)
        assert doc["command"] == command
        assert doc["argv"] == expected_argv(command)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_hostile_command_from_fsl(command: str) -> None:
    if not balanced(command) or any(ord(ch) < 0x20 and ch != "\t" or ord(ch) == 0x7F for ch in command):
        assert {d.code for d in checked(command).diagnostics} & {"E0309", "E0016"}
        return
    c = site_with(command)
    assert dict(c.site.module("p").params)["command"] == command
    _check(c, command)


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile, st.text(st.characters(blacklist_categories=("Cs",)), min_size=1)))
def test_any_command_round_trips(command: str) -> None:
    if not balanced(command):
        with pytest.raises(ValueError):
            render_process(with_command(command))  # the checker (E0309) keeps these out
        return
    _check(with_command(command), command)


def test_shell_syntax_stays_literal() -> None:
    command = "run \"$(rm -rf /)\" ; echo `id` && {{ x }} > /tmp/f '$HOME' # not a comment"
    doc = json.loads(render_process(site_with(command))["process/p#1.json"])
    assert doc["argv"] == [
        "run",
        "$(rm -rf /)",
        ";",
        "echo",
        "`id`",
        "&&",
        "{{",
        "x",
        "}}",
        ">",
        "/tmp/f",
        "$HOME",
        "#",
        "not",
        "a",
        "comment",
    ]
