"""`fsc compile --previous`: a one-policy edit (its match, its pipeline,
`symmetric`, `drop`, a policy added or removed) is spliced into the earlier
output (fslang/incremental.py) and gives, file for file (the cache
included), the diagnostics and the summary of a full compile of the edited
site; every other change, and a cache that cannot be trusted, compiles in
full."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from benchmarks.gen_site import generate
from fslang import api
from fslang import incremental as inc
from fslang import incremental_build as ib
from fslang.diagnostics import render_text
from tests.test_compile_cli import FSC, fsc

N = 60
NAME = "site/synth.fs"


def _openflow(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "openflow").iterdir())}


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_edit_with_previous_matches_a_full_compile(tmp_path: Path) -> None:
    """Through the real command line: every file, standard output (the
    folder's name aside) and error; FSC_DEBUG=1 says nothing was compiled
    in full."""
    site = tmp_path / "a" / "synth.fs"
    edited = tmp_path / "b" / "synth.fs"  # same file name: same site and file names
    site.parent.mkdir()
    edited.parent.mkdir()
    text = generate(300, 12, 3, seed=4)
    site.write_text(text)
    r = fsc("compile", str(site), "-o", str(tmp_path / "plain"))
    assert r.returncode == 0, r.stderr
    r = fsc("compile", str(site), "-o", str(tmp_path / "before"), "--previous", str(tmp_path / "plain"))
    assert r.returncode == 0, r.stderr
    cache = inc.read_cache(tmp_path / "before")
    assert cache is not None
    name = next(p.name for p in cache.policies[150:] if p.spliceable)
    edited.write_text(_set_match(text, name, "dst host 10.9.0.1 and tcp and dst port 4242"))
    nocache = tmp_path / "nocache"  # the same earlier output without its cache: --previous compiles in full
    shutil.copytree(tmp_path / "before", nocache)
    shutil.rmtree(nocache / ".fsc-cache")
    runs = {}
    for out, extra in (
        ("full", ("--previous", str(nocache))),
        ("incremental", ("--previous", str(tmp_path / "before"))),
    ):
        env = {**os.environ, "FSC_DEBUG": "1"}
        args = [*FSC, "compile", str(edited), "-o", str(tmp_path / out), *extra]
        runs[out] = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        assert runs[out].returncode == 0, runs[out].stderr
    assert "compiling in full" not in runs["incremental"].stderr
    assert "compiling in full: no usable cache" in runs["full"].stderr
    full_err = runs["full"].stderr.replace(runs["full"].stderr.splitlines()[0] + "\n", "", 1)
    assert runs["incremental"].stderr == full_err
    assert runs["incremental"].stdout.replace("incremental/", "full/") == runs["full"].stdout
    full, incremental = _tree(tmp_path / "full"), _tree(tmp_path / "incremental")
    assert len(full) >= 10 and full.keys() == incremental.keys()
    assert full == incremental
    assert _openflow(tmp_path / "before") != _openflow(tmp_path / "full")  # the edit reached the rules


# ---------------------------------------------------------------- in process


@dataclass
class Base:
    text: str
    out: Path
    previous: api.Placement


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A generated site compiled in full, its output folder written as `fsc compile` writes it."""
    from backends.emit.write import write

    lines = generate(N, 8, 2, seed=3).split("\n")
    for i in [i for i, line in enumerate(lines) if line.startswith("policy ") and "{" not in line][1:20:6]:
        lines[i] += " symmetric"  # a few symmetric policies: the ingress tables then have region fields
    text = "\n".join(lines)
    plain = api.build(NAME, text, cache=True)
    assert plain.ok and plain.cache and plain.compiled and plain.compiled.placement
    # compiled again with --previous of itself: its cache then knows the placement is kept
    b = api.build(NAME, text, previous=plain.compiled.placement, cache=True)
    out = tmp_path_factory.mktemp("incremental") / "before"
    write(out, {**b.files, **b.cache})
    return Base(text, out, api.previous_placement(out))


def _both(base: Base, text: str, out: Path | None = None, **options: object) -> tuple[api.Build, api.Build]:
    """(``--previous`` with the cache, the full compile with ``--previous``) of ``text``."""
    kw = {"previous": base.previous, "cache": True, **options}
    fast = api.build(NAME, text, previous_dir=out or base.out, **kw)  # type: ignore[arg-type]
    why = ib.last_fallback
    full = api.build(NAME, text, **kw)  # type: ignore[arg-type]
    ib.last_fallback = why
    return fast, full


def _same(fast: api.Build, full: api.Build) -> None:
    assert fast.ok and full.ok
    assert fast.files == full.files
    assert fast.cache == full.cache
    assert fast.summary == full.summary
    assert render_text(fast.diagnostics, fast.source) == render_text(full.diagnostics, full.source)


def _policy_line(text: str, name: str) -> re.Match[str]:
    m = re.search(rf"^policy {name} from \S+ match (.*?) via .*$", text, flags=re.M)
    assert m is not None
    return m


def _set_match(text: str, name: str, match: str) -> str:
    m = _policy_line(text, name)
    return text[: m.start(1)] + match + text[m.end(1) :]


FRESH = st.builds(
    lambda a, b, kind, lo, n: {
        "host": f"dst host 10.9.{a}.{b}",
        "net": f"dst net 10.9.{a}.0/24 and tcp and dst port {lo}..{lo + n}",
        "udp": f"dst host 10.9.{a}.{b} and udp and dst port {{{lo}, {lo + n + 1}}}",
        "v6": f"dst net 2001:db8:{a}::/48 and tcp",
    }[kind],
    st.integers(0, 255),
    st.integers(1, 254),
    st.sampled_from(["host", "net", "udp", "v6"]),
    st.integers(1024, 60000),
    st.integers(0, 400),
)
ANY = st.one_of(
    FRESH,
    st.sampled_from(
        [
            "tcp",  # overlaps every later policy's TCP traffic
            "dst host 10.9.0.1 and not dst port 80",  # an exclusion
            "dst net 10.0.0.0/16",  # overlaps a neighbour
            "dst host 10.9.0.1 and",  # a syntax error
            "dst host 10.9.0.1 via drop",  # no longer only the match
            "dst net 10.9.0.0/33",  # a bad prefix
        ]
    ),
)


@settings(max_examples=60)
@given(policy=st.integers(0, N - 1), match=ANY)
def test_random_match_edit_equals_full_compile(base: Base, policy: int, match: str) -> None:
    """Any edit of one policy's match: `--previous` gives what a full
    compile gives (spliced or not); a fresh IP-only destination in a
    policy that could be spliced before always is."""
    edited = _set_match(base.text, f"p{policy}", match)
    fast, full = _both(base, edited)
    event("spliced" if fast.incremental else f"compiled in full: {ib.last_fallback}")
    if not full.ok:
        assert not fast.ok and not fast.incremental
        assert render_text(fast.diagnostics, fast.source) == render_text(full.diagnostics, full.source)
        return
    _same(fast, full)
    record = inc.read_cache(base.out).policies[policy]  # type: ignore[union-attr]
    if record.spliceable and not match.startswith("dst net 2001:") and match in _fresh_forms(match):
        # a symmetric policy's replies are classified where its destination's edge is:
        # a destination behind another switch moves that decision list (a full compile)
        moved = record.symmetric and ib.last_fallback == REPLIES_MOVE
        assert fast.incremental or moved, ib.last_fallback


REPLIES_MOVE = "a decision list would appear on or leave a switch"


def test_a_symmetric_policy_whose_destination_moves_switch_is_compiled_in_full(base: Base) -> None:
    """Found by `make explore`: p1 (symmetric, to 10.1.0.0 behind s1) edited to
    a destination behind the default edge: its replies' decision list leaves
    s1, so the edit is not spliced, and the result is the full compile's."""
    assert "symmetric" in _policy_line(base.text, "p1").group(0)
    fast, full = _both(base, _set_match(base.text, "p1", "dst host 10.9.0.1"))
    assert not fast.incremental and ib.last_fallback == REPLIES_MOVE
    _same(fast, full)


def _fresh_forms(match: str) -> set[str]:
    return {match} if match.startswith(("dst host 10.9.", "dst net 10.9.")) and "not" not in match else set()


def test_the_fast_path_is_taken_and_chains(base: Base, tmp_path: Path) -> None:
    """An edit spliced, then another edit on the spliced output: both equal a full compile."""
    from backends.emit.write import write

    first = _set_match(base.text, "p7", "dst host 10.9.1.1 and tcp and dst port 4242")
    fast, full = _both(base, first)
    assert fast.incremental, ib.last_fallback
    _same(fast, full)
    out = tmp_path / "first"
    write(out, {**fast.files, **fast.cache})
    second = _set_match(first, "p20", "dst net 10.9.2.0/24 and udp and dst port 53")
    fast2, full2 = _both(Base(first, out, base.previous), second, out)
    assert fast2.incremental, ib.last_fallback
    _same(fast2, full2)
    same, again = _both(base, base.text)  # nothing changed: the same files again
    assert same.incremental
    _same(same, again)


def _copy(base: Base, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    for rel, data in _tree(base.out).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / ".fsc-output").write_bytes((base.out / ".fsc-output").read_bytes())
    return out


EDIT = ("p3", "dst host 10.9.3.3 and tcp and dst port 8080")


@pytest.mark.parametrize("change", ["topology", "host", "reorder", "two", "new-chain"])
def test_other_edits_compile_in_full(base: Base, change: str) -> None:
    text = _set_match(base.text, *EDIT)
    lines = text.split("\n")
    policies = [i for i, line in enumerate(lines) if line.startswith("policy ")]
    if change == "topology":
        text = text.replace("ports 64", "ports 60", 1)
    elif change == "host":
        text = text.replace("cores 32", "cores 31", 1)
    elif change == "reorder":
        a, b = policies[8], policies[9]
        lines[a], lines[b] = lines[b], lines[a]
        text = "\n".join(lines)
    elif change == "two":  # two policies edited
        text = _set_match(text, "p30", "dst host 10.9.3.4")
    else:  # a pipeline no policy has: its decision list and tags are new
        m = re.search(r"^(policy p3 from \S+ match .*? via )(.*)$", text, flags=re.M)
        assert m is not None
        text = text[: m.end(2)] + " >> mon1" + text[m.end(2) :]
    fast, full = _both(base, text)
    assert not fast.incremental and ib.last_fallback
    if full.ok:
        _same(fast, full)


def _statement(text: str, name: str) -> re.Match[str]:
    m = re.search(rf"^policy {name} from (\S+) match (.*?) via (.*?)( symmetric)?\n", text, flags=re.M)
    assert m is not None
    return m


def _edit(text: str, kind: str, k: int, other: int, fresh: str, sym: bool) -> str:
    """``text`` with one edit of ``kind`` at policy ``p{k}`` (``other``: a
    policy whose pipeline it takes; ``fresh``: a new match; ``sym``: an
    added policy is symmetric)."""
    m = _statement(text, f"p{k}")
    chain = _statement(text, f"p{other}").group(3)
    if kind == "match":
        return text[: m.start(2)] + fresh + text[m.end(2) :]
    if kind == "pipeline":
        return text[: m.start(3)] + chain + text[m.end(3) :]
    if kind == "both":
        return text[: m.start(2)] + fresh + " via " + chain + text[m.end(3) :]
    if kind == "drop":
        return text[: m.start(3)] + "drop" + text[m.end(3) :]
    if kind == "stage":  # one more stage: most often a pipeline no policy has (its decision lists and tags new)
        return text[: m.end(3)] + " >> mon1" + text[m.end(3) :]
    if kind == "symmetric":  # the keyword added or taken away
        if m.group(4):
            return text[: m.start(4)] + text[m.end(4) :]
        return text[: m.end(3)] + ("" if "{" in m.group(3) else " symmetric") + text[m.end(3) :]
    if kind in ("add-before", "add-after"):
        keyword = " symmetric" if sym and "{" not in chain else ""
        new = f"policy extra from internet match {fresh} via {chain}{keyword}\n"
        at = m.start() if kind == "add-before" else m.end()
        return text[:at] + new + text[at:]
    assert kind == "remove"
    return text[: m.start()] + text[m.end() :]


KINDS = ["match", "pipeline", "both", "drop", "stage", "symmetric", "add-before", "add-after", "remove"]


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    k=st.integers(0, N - 1),
    other=st.integers(0, N - 1),
    fresh=FRESH,
    flag=st.booleans(),
)
def test_random_one_policy_edit_equals_full_compile(
    base: Base, kind: str, k: int, other: int, fresh: str, flag: bool
) -> None:
    """Every kind of one-policy edit (a match, the pipeline, both, `drop`,
    one more stage, `symmetric`, a policy added before or after another, one removed): with
    `--previous` the files, cache, summary and diagnostics are a full
    compile's, whether spliced or compiled in full."""
    edited = _edit(base.text, kind, k, other, fresh, flag)
    fast, full = _both(base, edited)
    event(f"{kind}: " + ("spliced" if fast.incremental else f"compiled in full: {ib.last_fallback}"))
    if not full.ok:
        assert not fast.ok and not fast.incremental
        return
    _same(fast, full)


@pytest.mark.parametrize("kind", ["pipeline", "add-before", "add-after", "remove", "drop-at-end"])
def test_each_kind_is_spliced(base: Base, kind: str) -> None:
    """The common edits of a site whose pipelines are shared: another
    policy's pipeline, a policy added or removed, `drop` on a policy after
    every pipeline's first policy."""
    cache = inc.read_cache(base.out)
    assert cache is not None
    plain = [i for i, r in enumerate(cache.policies) if r.spliceable and not r.symmetric]
    k = plain[-1]
    chains = [r.chain for r in cache.policies]
    other = next(i for i in range(k - 1, -1, -1) if chains[i] != chains[k] and not cache.policies[i].symmetric)
    if kind == "drop-at-end":
        edited = _edit(base.text, "add-after", N - 1, k, "dst host 10.9.0.1", False)
        m = re.search(r"^policy extra .* via (.*)$", edited, flags=re.M)
        assert m is not None
        edited = edited[: m.start(1)] + "drop" + edited[m.end(1) :]
    else:
        edited = _edit(base.text, kind, k, other, "dst host 10.9.0.1 and tcp and dst port 4242", False)
    fast, full = _both(base, edited)
    assert fast.incremental, ib.last_fallback
    _same(fast, full)
    assert fast.files != _tree_text(base.out)


def _tree_text(out: Path) -> dict[str, str]:
    return {k: v.decode() for k, v in _tree(out).items() if not k.startswith(".fsc")}


def test_a_damaged_cache_compiles_in_full(base: Base, tmp_path: Path) -> None:
    out = _copy(base, tmp_path)
    cache = out / inc.CACHE
    head, body = cache.read_text().split("\n", 1)
    cache.write_text(head + "\n" + body.replace('"p3"', '"p4"', 1))  # the checksum no longer holds
    fast, full = _both(base, _set_match(base.text, *EDIT), out)
    assert not fast.incremental and "cache" in (ib.last_fallback or "")
    _same(fast, full)
    cache.write_text("not json")
    assert not _both(base, _set_match(base.text, *EDIT), out)[0].incremental
    cache.unlink()
    assert not _both(base, _set_match(base.text, *EDIT), out)[0].incremental


def test_a_tampered_output_compiles_in_full(base: Base, tmp_path: Path) -> None:
    """A file of the earlier output that is not what the cache says is never copied."""
    out = _copy(base, tmp_path)
    click = next((out / "click").iterdir())
    click.write_text(click.read_text() + "// edited by hand\n")
    fast, full = _both(base, _set_match(base.text, *EDIT), out)
    assert not fast.incremental and "files differ" in (ib.last_fallback or "")
    _same(fast, full)


def test_another_fsc_or_other_options_compile_in_full(
    base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _set_match(base.text, *EDIT)
    fast, full = _both(base, text, generation=1)  # the cache is of generation 0
    assert not fast.incremental
    _same(fast, full)
    monkeypatch.setattr(inc, "code_version", lambda: "another fsc")
    fast, full = _both(base, text)
    assert not fast.incremental and "cache" in (ib.last_fallback or "")
    _same(fast, full)


def test_after_a_plain_compile_previous_places_again(tmp_path: Path) -> None:
    """A plain compile's cache does not know that placing the site again
    from its placement keeps it: the first --previous compile places the
    edited site again (stand-in policies of its affinity) and splices only
    if the placement comes back unchanged; the same site again too."""
    from backends.emit.write import write

    text = generate(40, 6, 2, seed=6)
    plain = api.build(NAME, text, cache=True)
    write(tmp_path / "plain", {**plain.files, **plain.cache})
    base = Base(text, tmp_path / "plain", api.previous_placement(tmp_path / "plain"))
    cache = inc.read_cache(base.out)
    assert cache is not None and not cache.placement_fixed
    name = next(p.name for p in cache.policies[20:] if p.spliceable)
    for edited in (text, _set_match(text, name, "dst host 10.9.0.7 and udp and dst port 5353")):
        fast, full = _both(base, edited)
        assert full.compiled is not None and full.compiled.placement is not None
        kept = full.compiled.placement.to_json() == base.previous.to_json()
        assert fast.incremental == kept, ib.last_fallback
        _same(fast, full)


def test_cache_is_listed_as_fscs_own(base: Base) -> None:
    """The cache is a file fsc wrote: the marker lists it, so the next
    compile into the folder replaces it without --force."""
    marker = json.loads((base.out / ".fsc-output").read_text())
    assert inc.CACHE in marker["files"]


def test_diagnostics_after_the_edit_move_with_it(tmp_path: Path) -> None:
    """A warning on a statement after the edited policy keeps its place in
    the new text (the edit made the policy longer)."""
    from backends.emit.write import write

    text = generate(20, 4, 2, seed=5) + "set unused = 10.0.0.1\n"
    plain = api.build(NAME, text)
    assert plain.compiled is not None
    b = api.build(NAME, text, previous=plain.compiled.placement, cache=True)
    assert b.ok and any(d.code == "W0001" and d.span.start > len(text) - 30 for d in b.diagnostics)
    out = tmp_path / "before"
    write(out, {**b.files, **b.cache})
    record = next(p for p in inc.read_cache(out).policies if p.spliceable)  # type: ignore[union-attr]
    edited = _set_match(text, record.name, "dst net 10.9.0.0/24 and tcp and dst port 1000..2000")
    fast, full = _both(Base(text, out, api.previous_placement(out)), edited, out)
    assert fast.incremental, ib.last_fallback
    _same(fast, full)
    assert "set unused" in render_text(fast.diagnostics, fast.source)


def test_an_insertion_at_the_end_of_the_match_is_spliced(base: Base) -> None:
    """`... and tcp` appended to a match: the inserted text begins with the
    space that follows the match, so the edit must be aligned to end there."""
    m = _policy_line(base.text, "p11")
    record = inc.read_cache(base.out).policies[11]  # type: ignore[union-attr]
    assert record.spliceable and record.match_end == m.end(1)
    text = base.text[: m.end(1)] + " and tcp" + base.text[m.end(1) :]
    fast, full = _both(base, text)
    assert fast.incremental, ib.last_fallback
    _same(fast, full)


@pytest.mark.parametrize("policy", ["p22", "p37", "p9"])
def test_symmetric_toggled_on_a_chain_an_earlier_policy_has_symmetric_is_spliced(base: Base, policy: str) -> None:
    """`symmetric` added to (p22, p37) or taken from (p9) a policy whose
    chain an earlier policy has symmetric to the same switch (p18, p1): the
    reply list keeps its number and its switch, and the later policies move
    by one priority step."""
    fast, full = _both(base, _edit(base.text, "symmetric", int(policy[1:]), 0, "", False))
    assert fast.incremental, ib.last_fallback
    _same(fast, full)
    assert fast.files != _tree_text(base.out)
