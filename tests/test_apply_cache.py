"""The client's cache of what it applied (fslang/cli/applycache.py): used
only when the controller's files digest says it is what is deployed, and
then the deployed files are not fetched again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from backends.platform.controller.protocol import DeployedAnswer, DigestAnswer, files_digest
from fslang import api
from fslang import incremental_build as ib
from fslang.cli import applycache
from fslang.cli.sitecompile import _compile

ROOT = Path(__file__).resolve().parents[1]
URL = "http://127.0.0.1:8181"


def test_entries_are_used_only_while_they_are_what_is_deployed(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "s.fs"
    files = {"plan.json": "{}", "openflow/s0.json": '{"dpid": 1}'}
    assert applycache.load(URL, site, files_digest(files)) is None  # nothing kept yet
    applycache.save(URL + "/", site, files)
    assert applycache.load(URL, site, files_digest(files)) == (files, applycache.entry_path(URL, site) / "files")
    assert applycache.load(URL, site, "") is None  # a controller that does not say
    assert applycache.load(URL, site, files_digest({**files, "plan.json": "{ }"})) is None  # stale
    assert applycache.load("http://other:8181", site, files_digest(files)) is None
    assert applycache.load(URL, tmp_path / "t.fs", files_digest(files)) is None
    path = applycache.entry_path(URL, site)
    assert path.parent == tmp_path / "cache" / "fsc" / "apply" and path.stat().st_mode & 0o077 == 0
    (path / "files" / "plan.json").write_text("[]")  # damaged: its own digest no longer holds
    assert applycache.load(URL, site, files_digest(files)) is None
    applycache.save(URL, site, files, {".fsc-cache/incremental.json": "x"})  # replaced, with fsc's own files
    assert (path / "files" / ".fsc-cache" / "incremental.json").read_text() == "x"
    assert applycache.load(URL, site, files_digest(files)) == (files, path / "files")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no leftovers
    (path / "entry.json").write_text("not json")
    assert applycache.load(URL, site, files_digest(files)) is None
    applycache.save(URL, site, {"../escape": "x"})  # a path outside the entry: not kept
    assert not (path.parent.parent / "escape").exists()
    # a cache that cannot be written is no error
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_text("")
    applycache.save(URL, site, files)


class _Client:
    """What `_compile` asks of the controller client; counts the deployed-files fetches."""

    def __init__(self, files: dict[str, str]) -> None:
        self.url = URL
        self.files = files
        self.fetches = 0

    def deployed(self) -> DeployedAnswer:
        self.fetches += 1
        return DeployedAnswer(generation=0, files=self.files, site="two_switch", unavailable=[])


def test_a_valid_entry_saves_fetching_the_deployed_files(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "two_switch.fs"
    site.write_text((ROOT / "examples" / "two_switch.fs").read_text())
    deployed = api.build_file(site, generation=0).files
    client = _Client(deployed)
    known = DigestAnswer(generation=0, site="two_switch", files_digest=files_digest(deployed))
    # no entry: fetched (and, the site being the deployed one, kept)
    assert _compile(site, client, False, known).same is True and client.fetches == 1
    # now kept: not fetched
    assert _compile(site, client, False, known).same is True and client.fetches == 1
    # the controller's files changed (a failover moved an instance): the entry is stale, fetched again
    moved = {**deployed, "plan.json": deployed["plan.json"] + " "}
    client.files = moved
    known = known.model_copy(update={"files_digest": files_digest(moved)})
    assert _compile(site, client, False, known).same is False and client.fetches == 2


def test_an_ingress_only_change_is_told_without_the_openflow_code() -> None:
    """`fsc apply` decides in-place vs a new generation from the compiled text
    alone: os-ken (a third of a second to import) is not loaded by the client."""
    code = """
import sys
from benchmarks.apply_speed import change_one_policy, site_text
from fslang import api
from fslang.cli.sitecompile import _ingress_only
text = site_text(40)
a = api.build("s.fs", text, generation=0).files
b = api.build("s.fs", change_one_policy(text)[0], generation=0).files
renamed = {**b, "plan.json": b["plan.json"].replace('"site": "', '"site": "x', 1)}
other = api.build("s.fs", text, generation=1).files
print(_ingress_only(a, b), _ingress_only(a, renamed), _ingress_only(a, other), "os_ken" in sys.modules)
"""
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cp.stdout.split() == ["True", "False", "False", "False"], cp.stdout + cp.stderr[-2000:]


def _spliceable_edit(text: str, deployed_dir: Path) -> str:
    """``text`` with a new match for a policy whose edit the incremental compile splices."""
    from fslang import incremental as inc
    from tests.test_incremental import _set_match

    cache = inc.read_cache(deployed_dir)
    assert cache is not None
    name = next(p.name for p in cache.policies[len(cache.policies) // 2 :] if p.spliceable)
    return _set_match(text, name, "dst host 10.9.0.1 and tcp and dst port 4242")


def test_the_fast_path_takes_hosts_left_out_and_a_scale_only_as_cached(tmp_path: Path) -> None:
    """`fsc apply` compiles with the hosts that are down and the deployed scale:
    a splice into an output built with the same ones equals the full compile;
    with others (a host went down since) the compile is a full one."""
    from backends.emit.write import write
    from benchmarks.gen_site import generate
    from fslang.cli.sitecompile import _scale_of

    text = generate(60, 8, 2, seed=3)
    first = api.build("s.fs", text, cache=True)
    assert first.compiled is not None and first.compiled.placement is not None
    placed = first.compiled.placement
    spare = sorted({h for h, *_ in placed.hosts} - {h for _i, h in placed.assignments})
    assert spare
    out = frozenset(spare[-1:])  # a host placement must leave out (down, or drained)
    scale = _scale_of(placed, keep_weights=False)
    assert scale, "the generated site replicates modules"
    deployed = api.build("s.fs", text, placed, unavailable=out, scale=scale, cache=True)
    assert deployed.ok
    write(tmp_path / "d", {**deployed.files, **deployed.cache})
    prev = api.previous_placement(tmp_path / "d")
    edited = _spliceable_edit(text, tmp_path / "d")
    full = api.build("s.fs", edited, prev, unavailable=out, scale=_scale_of(prev, False), cache=True)
    fast = api.build(
        "s.fs", edited, prev, unavailable=out, scale=_scale_of(prev, False), cache=True, previous_dir=tmp_path / "d"
    )
    assert fast.incremental and ib.last_fallback is None
    assert fast.files == full.files and fast.cache == full.cache and fast.files != deployed.files
    for other in ({"unavailable": frozenset()}, {"unavailable": out | {"elsewhere"}}, {"scale": None}):
        opts = {"unavailable": out, "scale": _scale_of(prev, False), **other}
        again = api.build("s.fs", edited, prev, cache=True, previous_dir=tmp_path / "d", **opts)  # type: ignore[arg-type]
        assert not again.incremental and "other hosts left out or another scale" in (ib.last_fallback or "")
        assert again.files == api.build("s.fs", edited, prev, cache=True, **opts).files  # type: ignore[arg-type]


def test_apply_splices_a_one_policy_edit_into_the_kept_files(tmp_path: Path, monkeypatch: Any) -> None:
    """The client's compile starts from its kept copy of the deployed files
    (with the incremental cache): a one-policy match edit is spliced, and is
    byte for byte what a full compile against the deployed files gives."""
    from benchmarks.apply_speed import site_text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "apply40.fs"
    text = site_text(40)
    site.write_text(text)
    client = _Client({})
    client.deployed = lambda: DeployedAnswer(generation=None, files={}, site=None, unavailable=[])  # type: ignore[method-assign]
    first = _compile(site, client, False, DigestAnswer(generation=None, site=None, files_digest=""))
    assert not first.same and ".fsc-cache/incremental.json" in first.own
    applycache.save(URL, site, first.files, first.own)  # as `fsc apply` does once the controller has it
    known = DigestAnswer(generation=0, site="apply40", files_digest=files_digest(first.files))
    kept = applycache.load(URL, site, known.files_digest)
    assert kept is not None
    site.write_text(_spliceable_edit(text, kept.folder))
    second = _compile(site, client, False, known)
    assert ib.last_fallback is None, ib.last_fallback  # spliced
    prev = api.previous_placement(kept.folder)
    full = api.build(str(site), site.read_text(), prev, generation=0, cache=True)
    assert (second.name, second.files, second.own, second.same) == ("apply40", full.files, full.cache, False)
    assert second.files != first.files
