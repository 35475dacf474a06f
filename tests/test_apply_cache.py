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
from fslang.cli import applycache
from fslang.cli.controller import _compile

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
from fslang.cli.controller import _ingress_only
text = site_text(40)
a = api.build("s.fs", text, generation=0).files
b = api.build("s.fs", change_one_policy(text)[0], generation=0).files
renamed = {**b, "plan.json": b["plan.json"].replace('"site": "', '"site": "x', 1)}
other = api.build("s.fs", text, generation=1).files
print(_ingress_only(a, b), _ingress_only(a, renamed), _ingress_only(a, other), "os_ken" in sys.modules)
"""
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cp.stdout.split() == ["True", "False", "False", "False"], cp.stdout + cp.stderr[-2000:]
