"""Apply at switch speed, kept consistent: a real controller and a real OVS
bridge. An unchanged site is known from its digest without compiling (the
client does not even import the compiler); a one-policy change is an
ingress-only update of a few rules; the switch holds exactly what
`ovs-ofctl --bundle add-flows` of the compiled file gives, after each step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from test_controller_harness import NEEDS_OVS, compile_files, lab_with_controller

from benchmarks.apply_speed import change_one_policy, site_text
from fslang.cli.controller import DEFAULT_LISTEN, DEFAULT_OPENFLOW
from fslang.cli.sitecompile import site_digest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = NEEDS_OVS


def test_cli_defaults_are_the_servers() -> None:
    from backends.platform.controller import server

    assert (DEFAULT_LISTEN, DEFAULT_OPENFLOW) == (server.DEFAULT_LISTEN, server.DEFAULT_OPENFLOW)


def test_unchanged_site_needs_no_compile_and_a_small_change_is_small(tmp_path: Path) -> None:
    text = site_text(40)
    site = tmp_path / "site.fs"
    site.write_text(text)
    with lab_with_controller(tmp_path, {"s0": 0xA1}) as (lab, ctl):
        r = ctl.cli("apply", str(site), "--yes", "--drain", "0")
        assert r.returncode == 0, r.stdout + r.stderr
        ref = lab.reference(compile_files(site, tmp_path / "c0", generation=0)["openflow/s0.ofctl"], tmp_path)
        assert lab.flows("s0") == ref and len(ref) > 100
        assert ctl.api.digest().digest == site_digest(site, False) != ""

        # the same file again: the digest says so; the compiler is never imported
        cmd = [sys.executable, "-X", "importtime", "-m", "fslang.cli", "apply", str(site), "--yes"]
        cmd += ["--controller", ctl.url, "--token-file", str(ctl.token_file)]
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout + again.stderr[-2000:]
        assert "compiler.pipeline" not in again.stderr and "fslang.api" not in again.stderr
        # --optimal is another compile: not the same digest
        assert site_digest(site, True) != site_digest(site, False)

        # one policy changed: only its rules move, in the deployed generation, and the switch
        # holds exactly the new compiled file
        text2, _name, _line = change_one_policy(text)
        site.write_text(text2)
        r = ctl.cli("apply", str(site), "--yes", "--drain", "0", "--format", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert '"generation": 0' in r.stdout.splitlines()[-1]
        ref2 = lab.reference(compile_files(site, tmp_path / "c1", generation=0)["openflow/s0.ofctl"], tmp_path)
        assert lab.flows("s0") == ref2 != ref
        assert 0 < len(set(ref2) ^ set(ref)) <= 8
        assert ctl.api.digest().digest == site_digest(site, False)
        # the pre-apply reconcile trusted the switch's per-table counts (it was verified by the first apply)
        assert "switch s0 (0xa1): per-table flow counts as last verified; not read" in ctl.log.read_text()
        assert '"phase": "prepare"' not in r.stdout

        # /metrics of the running controller: what status says, and the applies
        assert requests.get(ctl.url + "/metrics", timeout=10).status_code == 401
        m = scrape(ctl.url, ctl.token_file)
        assert m[("fsc_switch_rules", (("switch", "s0"),))] == len(ref2)
        assert m[("fsc_switch_rules_installed", (("switch", "s0"),))] == len(lab.flows("s0"))
        assert m[("fsc_switch_connected", (("switch", "s0"),))] == 1
        assert m[("fsc_generation", ())] == 0
        assert m[("fsc_applies_total", (("result", "ok"),))] == 2  # the unchanged one never reached it
        assert m[("fsc_applies_total", (("result", "failed"),))] == 0
        assert m[("fsc_apply_duration_seconds_count", (("result", "ok"),))] == 2
        assert 0 < m[("fsc_apply_duration_seconds_sum", (("result", "ok"),))] < 60
        assert m[("fsc_relocations_total", (("kind", "failover"), ("result", "ok")))] == 0

        # a rule deleted behind the controller's back changes its table's count: the next apply
        # reads the switch, puts the rule back first, then updates
        gone = next(line for line in lab.flows("s0") if "priority=0" not in line)
        strict = ",".join(
            f for f in gone.split(" actions=")[0].replace(" ", ",").split(",") if f and "cookie=" not in f
        )
        lab.ovs.ofctl("--strict", "del-flows", strict, bridge="s0")
        assert len(lab.flows("s0")) == len(ref2) - 1
        site.write_text(text)
        r = ctl.cli("apply", str(site), "--yes", "--drain", "0", "--format", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert {"phase": "prepare", "repaired": 1} in [json.loads(line) for line in r.stdout.splitlines()], r.stdout
        assert lab.flows("s0") == ref


def scrape(url: str, token_file: Path) -> dict[tuple[str, tuple], float]:
    """GET /metrics, parsed by prometheus-client's own parser: (name, labels) -> value."""
    r = requests.get(
        url + "/metrics", headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}, timeout=10
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text[:200]
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
