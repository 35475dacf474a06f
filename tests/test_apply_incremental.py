"""`fsc apply` through the incremental compile, against a real controller
and a real OVS bridge: a one-policy match edit is spliced into the client's
kept copy of the deployed files (FSC_DEBUG=1 says when it is not), and what
the controller then holds and the switch runs is exactly what a full compile
of the edited site deploys; an edit the splice refuses (a policy through a
box) is compiled in full and lands the same way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_controller_harness import fsc, lab_with_controller

from backends.platform.lab.ovs import ovs_available
from benchmarks.apply_speed import change_one_policy, site_text
from fslang import api
from fslang import incremental as inc
from fslang.cli import applycache

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or ovs_available() is not None, reason="needs root and OVS"),
]

SPLICED = "compiling in full"  # what FSC_DEBUG=1 prints when the incremental compile is not used


def test_a_spliced_one_policy_change_deploys_what_a_full_compile_does(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the CLI subprocesses inherit it
    text = site_text(40)
    site = tmp_path / "site.fs"
    site.write_text(text)
    with lab_with_controller(tmp_path, {"s0": 0xA1}) as (lab, ctl):

        def apply() -> str:
            r = fsc(*ctl.apply_args(site), env={"FSC_DEBUG": "1"})
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stderr

        def full_compile() -> dict[str, str]:
            """What a full compile against the deployed placement, in the deployed generation, gives."""
            deployed = ctl.api.deployed()
            prev = api.Placement.from_json(deployed.files["placement.json"])
            b = api.build(str(site), site.read_text(), prev, generation=int(deployed.generation or 0))
            assert b.ok and b.compiled is not None
            return b.files

        apply()
        first = ctl.api.deployed().files
        assert lab.flows("s0") == lab.reference_of(first, "s0", tmp_path)
        kept = applycache.load(ctl.url, site, ctl.api.digest().files_digest)
        assert kept is not None and (kept.folder / inc.CACHE).is_file()  # with the incremental cache

        # two match edits in a row, each spliced into what the one before deployed
        for which in ("via pass", "via pass"):
            text = change_one_policy(site.read_text(), which)[0]
            site.write_text(text)
            assert SPLICED not in apply()
            want = full_compile()
            assert ctl.api.deployed().files == want
            assert lab.flows("s0") == lab.reference_of(want, "s0", tmp_path)
        assert ctl.api.deployed().files != first

        # a policy through a box: compiled in full, the same result as ever
        site.write_text(change_one_policy(site.read_text(), "via bx")[0])
        assert SPLICED in apply()
        want = full_compile()
        assert ctl.api.deployed().files == want
        assert lab.flows("s0") == lab.reference_of(want, "s0", tmp_path)
