"""The users' documentation is tested: every FSL example in docs/language.md
and docs/tutorial.md goes through the real check and compile, and every
`fsc check`, `compile`, `trace` and `graph` the tutorial shows is run again
and must print what the tutorial says it prints.

How the documents mark their examples (an HTML comment on the line right
before a ```fs fence, invisible when the Markdown is rendered):

* no mark: a block that starts with `site` is a whole site and must compile
  with no diagnostic at all; any other block is a fragment, appended to the
  base site (the block marked `base`) and must compile with no diagnostic
  other than W0001 (a fragment may define something it does not use);
* ``<!-- fsl: base -->``: the platform that fragments are appended to;
* ``<!-- fsl: add -->``: the block continues the site written so far in the
  document (the tutorial grows its site this way);
* ``<!-- fsl: expect E0203 W0501 -->``: fsc must report exactly these error
  codes (and at least these warnings); the site written so far is left as it
  was (the next block shows the fix);
* ``<!-- fsl: planned -->``: a form the language promises that fsc does not
  accept yet: it must still be refused, so that the day it is accepted this
  test says the document needs its update.

The tutorial's finished site is docs/tutorial.fs: the blocks of the tutorial,
put together, must be that file byte for byte.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from compiler.check.catalogue import CATALOGUE
from fslang import api, codes
from fslang.parser.lalr import reserved_keywords
from tests.conftest import ROOT

DOCS = ROOT / "docs"
DOCUMENTS = ("language.md", "tutorial.md")
TUTORIAL_SITE = DOCS / "tutorial.fs"
TUTORIAL_FILE = "tutorial.fs"  # the name the tutorial gives the reader's file
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*fsl:(.*?)-->\s*$")
CODE = re.compile(r"^[EW]\d{4}$")
FSC = ".venv/bin/fsc"
RERUN = {"check", "compile", "trace", "graph"}  # fsc commands the test runs again
SHELL_RERUN = {"find", "ls", "cat"}  # plain commands shown on the compiled output
LAB_ONLY = {"lab", "status", "plan", "apply"}  # shown with `sudo`, need root and a lab: not run here


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    base: bool = False
    add: bool = False
    planned: bool = False
    expect: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"docs/{self.doc}:{self.line}"

    @property
    def whole(self) -> bool:
        for line in self.text.splitlines():
            stripped = line.split("#", 1)[0].strip()
            if stripped:
                return stripped.split()[0] == "site"
        return False


def read_blocks(doc: str) -> list[Block]:
    """The fenced blocks of a document, with the mark on the line before each."""
    lines = (DOCS / doc).read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"docs/{doc}:{start + 1}: the block is never closed"
        block = Block(doc, start + 1, lang, "\n".join(body) + "\n")
        mark = MARK.match(lines[start - 1]) if start else None
        if mark:
            assert lang == "fs", f"{block.where}: an `fsl:` mark belongs to a ```fs block"
            _apply_mark(block, mark.group(1))
        out.append(block)
        i += 1
    return out


def _apply_mark(block: Block, words: str) -> None:
    tokens = words.replace(",", " ").split()
    expect: list[str] = []
    for tok in tokens:
        if tok in ("base", "add", "planned"):
            setattr(block, tok, True)
        elif CODE.match(tok):
            expect.append(tok)
        else:
            assert tok == "expect", f"{block.where}: unknown word `{tok}` in the fsl mark"
    assert ("expect" in tokens) == bool(expect), f"{block.where}: `expect` needs codes, codes need `expect`"
    block.expect = tuple(expect)


@dataclass
class Case:
    """One FSL example as the test builds it."""

    block: Block
    site: str  # the full site text the example stands for


@dataclass
class Walk:
    """A document's examples in order, with the site a reader has at each point."""

    cases: list[Case] = field(default_factory=list)
    console: list[tuple[Block, str]] = field(default_factory=list)  # (block, the site text it runs on)
    final: str = ""


def walk(doc: str) -> Walk:
    blocks = read_blocks(doc)
    bases = [b for b in blocks if b.base]
    base = bases[0].text if bases else ""
    current = ""  # the site a reader has written so far (add blocks)
    shown = ""  # the site the last example shows (an error included)
    out = Walk()
    for b in blocks:
        if b.lang == "console":
            out.console.append((b, shown))
            continue
        if b.lang != "fs":
            continue
        if b.whole:
            text = b.text
        elif b.add:
            assert current, f"{b.where}: `add` before any whole site"
            text = current + "\n" + b.text
        else:
            assert base, f"{b.where}: a fragment, but docs/{doc} has no `base` site"
            text = base + "\n" + b.text
        out.cases.append(Case(b, text))
        shown = text
        if not b.expect and not b.planned and (b.whole or b.add):
            current = text
    out.final = current
    return out


WALKS = {doc: walk(doc) for doc in DOCUMENTS}
CASES = [c for doc in DOCUMENTS for c in WALKS[doc].cases]


def test_documents_have_examples() -> None:
    assert len(WALKS["language.md"].cases) >= 25
    assert any(c.block.base for c in WALKS["language.md"].cases)
    assert any(c.block.expect for c in CASES)
    assert WALKS["tutorial.md"].console


@pytest.mark.parametrize("case", CASES, ids=[c.block.where for c in CASES])
def test_example(case: Case) -> None:
    b = case.block
    result = api.build(b.where, case.site)
    found = [d.code for d in result.diagnostics]
    shown = "\n".join(f"{d.code} {d.message}" for d in result.diagnostics)
    if b.planned:
        assert "E0002" in found, (
            f"{b.where}: fsc parses this planned form now: describe it in the document and drop the `planned` mark"
        )
        return
    expected_errors = sorted(c for c in b.expect if c.startswith("E"))
    if expected_errors:
        assert not result.ok
        assert sorted({c for c in found if c.startswith("E")}) == expected_errors, shown
    else:
        assert result.ok, shown
    for code in b.expect:
        assert code in found, f"expected {code}; got:\n{shown}"
    unexpected = [c for c in found if c not in b.expect and not (c == "W0001" and not b.whole and not b.add)]
    assert unexpected == [], shown


def test_expected_codes_exist() -> None:
    """Codes the documents expect are real ones (docs/diagnostics.md lists them all)."""
    known = {c.code for c in codes.CODES}
    for c in CASES:
        for code in c.block.expect:
            assert code in known, f"{c.block.where}: there is no diagnostic {code}"


def test_keyword_list_is_complete() -> None:
    """language.md lists the reserved words; it must list exactly the grammar's."""
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- keywords -->\n(.*?)\n<!-- /keywords -->", text, re.S)
    assert m, "docs/language.md: the keyword list (between <!-- keywords --> marks) is missing"
    listed = set(re.findall(r"`([a-z0-9]+)`", m.group(1)))
    assert listed == set(reserved_keywords()), (
        f"update the keyword list in docs/language.md: missing {sorted(set(reserved_keywords()) - listed)}, "
        f"not keywords {sorted(listed - set(reserved_keywords()))}"
    )


def test_module_catalogue_table() -> None:
    """Every built-in type is in language.md's catalogue table with its default kind."""
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if line.startswith("| `") and len(cells) >= 4:
            for name in re.findall(r"`([a-z]+)`", cells[0]):
                rows[name] = cells
    for name, mtype in CATALOGUE.items():
        assert name in rows, f"docs/language.md: module type `{name}` is missing from the catalogue table"
        assert rows[name][3] == mtype.default_kind, f"`{name}`: default kind is {mtype.default_kind}"


def test_tutorial_site_is_the_file() -> None:
    """The tutorial's blocks, put together, are docs/tutorial.fs."""
    assert WALKS["tutorial.md"].final == TUTORIAL_SITE.read_text(encoding="utf-8")


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, f"{block.where}: a console block starts with `$ COMMAND`"
            out[-1][1].append(line)
    return out


RUNS = [
    (b, site, cmd, expected)
    for b, site in WALKS["tutorial.md"].console
    for cmd, expected in _commands(b)
    if not cmd.startswith("sudo ")
]


def test_tutorial_commands_are_known() -> None:
    """Every command the tutorial shows is either run again here or a lab command (root)."""
    for b, _ in WALKS["tutorial.md"].console:
        for cmd, _ in _commands(b):
            words = shlex.split(cmd.split("|")[0])
            if words[0] == "sudo":
                assert words[1] == FSC and words[2] in LAB_ONLY, f"{b.where}: `{cmd}`"
            elif words[0] == FSC:
                assert words[1] in RERUN, f"{b.where}: `{cmd}` is neither run again nor a lab command"
            else:
                assert words[0] in SHELL_RERUN, f"{b.where}: `{cmd}`"
    assert len(RUNS) >= 5


def _short(cmd: str) -> str:
    words = shlex.split(cmd)
    return " ".join(["fsc", words[1]] if words[0] == FSC else words[:1])


def _run(cmd: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "NO_COLOR": "1"}
    if cmd.startswith(FSC + " "):
        argv = [sys.executable, "-m", "fslang.cli", *shlex.split(cmd)[1:]]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    else:
        done = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    return done.stderr + done.stdout


def _lines(text: str | list[str]) -> list[str]:
    lines = [line.rstrip() for line in (text.splitlines() if isinstance(text, str) else text)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pytest.mark.parametrize(
    ("block", "site", "cmd", "expected"), RUNS, ids=[f"{b.where}: {_short(cmd)}" for b, _, cmd, _ in RUNS]
)
def test_tutorial_output(block: Block, site: str, cmd: str, expected: list[str], tmp_path: Path) -> None:
    """A command the tutorial shows prints what the tutorial says, on the site
    written up to that point (commands in one block share one folder)."""
    assert site, f"{block.where}: a command before any site"
    (tmp_path / TUTORIAL_FILE).write_text(site, encoding="utf-8")
    for earlier, _ in _commands(block):
        if earlier == cmd:
            break
        if not earlier.startswith("sudo "):
            _run(earlier, tmp_path)  # e.g. the compile that a later `find` lists
    assert _lines(_run(cmd, tmp_path)) == _lines(expected), f"{block.where}: `{cmd}`"


LINKED = ("README.md", "docs/language.md", "docs/tutorial.md", "docs/platform-notes.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation gone, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", LINKED)
def test_links_resolve(doc: str) -> None:
    """Relative links in the users' documents lead to files and headings that exist."""
    path = ROOT / doc
    text = path.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{doc}: link to {target}: no such file"
        assert ROOT in dest.parents, f"{doc}: link to {target} leaves the repository"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", dest.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{doc}: link to {target}: no such heading"


def test_readme_demo_output_is_what_compile_prints(tmp_path: Path) -> None:
    """The README shows what `make demo` prints: it must stay true."""
    text = (ROOT / "README.md").read_text()
    start = text.index("`make demo` prints:\n\n```\n") + len("`make demo` prints:\n\n```\n")
    shown = text[start : text.index("```", start)].rstrip("\n").splitlines()
    out = subprocess.run(
        [sys.executable, "-m", "fslang.cli", "compile", "examples/campus.fs", "-o", str(tmp_path / "campus")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    printed = out.stdout.rstrip("\n").splitlines()
    assert printed[:-1] == shown[:-1]  # the last line names the output folder
    assert shown[-1] == "wrote 13 files to build/campus/" and printed[-1].startswith("wrote 13 files to ")
