"""Crash safety: the controller is SIGKILLed after the install phase, after
the flip (before the commit) and after the commit (before the clean-up); on
restart it reconciles each switch to the committed site, so the real tables
equal the old or the new compiled site exactly, and the next apply converges."""

from __future__ import annotations

import subprocess
from pathlib import Path

from test_controller_harness import FSC, NEEDS_OVS, ROOT, SWITCHES, TWO, compile_files, lab_with_controller, real_agent

from backends.platform.wait import wait_until

pytestmark = NEEDS_OVS


def _apply_until_paused(ctl, site: Path) -> None:
    """Run `fsc apply` until the controller reports it paused; then kill the controller."""
    cli = subprocess.Popen(
        [FSC, *ctl.apply_args(site, "--format", "json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        seen = []
        for line in cli.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if '"paused"' in line:
                break
        else:
            raise AssertionError("apply ended without pausing: " + "".join(seen) + cli.stderr.read())  # type: ignore[union-attr]
        ctl.kill()
    finally:
        cli.kill()
        cli.wait(10)


def test_kill_between_phases_then_restart_converges(tmp_path: Path) -> None:
    site = tmp_path / "two_switch.fs"
    site.write_text(TWO)
    # the controller pauses after a phase of an update (a first deploy runs through)
    with lab_with_controller(tmp_path, SWITCHES, env={"FSC_CONTROLLER_PAUSE_AFTER": "install"}) as (lab, ctl):
        agents = [real_agent(tmp_path, h, ctl) for h in ("m1", "m2")]
        for a in agents:
            a.__enter__()

        def tables() -> dict[str, list[str]]:
            return {n: lab.flows(n) for n in SWITCHES}

        try:
            r = ctl.cli("apply", str(site), "--yes", "--drain", "0")
            assert r.returncode == 0, r.stdout + r.stderr
            old = compile_files(site, tmp_path / "old", generation=0)
            ref_old = {n: lab.reference_of(old, n, tmp_path) for n in SWITCHES}
            assert tables() == ref_old

            site.write_text(TWO.replace("10.70.99.0/24", "10.70.98.0/24"))
            new = compile_files(site, tmp_path / "new", generation=1, previous=tmp_path / "old")
            ref_new = {n: lab.reference_of(new, n, tmp_path) for n in SWITCHES}
            assert ref_new != ref_old

            # each restart after a kill already pauses after the next phase
            for phase, nxt, survivor, gen in (
                ("install", "flip", ref_old, 0),
                ("flip", "commit", ref_old, 0),
                ("commit", "", ref_new, 1),
            ):
                _apply_until_paused(ctl, site)
                mid = tables()
                assert mid != ref_old and mid != ref_new, f"after {phase} the tables hold both generations"
                ctl.start(env={"FSC_CONTROLLER_PAUSE_AFTER": nxt} if nxt else None)
                wait_until(
                    lambda survivor=survivor: tables() == survivor,
                    30,
                    f"the tables to equal the committed site after a kill after {phase}",
                )
                assert ctl.get("/v1/deployed")["generation"] == gen
                lab.wait_connected(ctl, list(SWITCHES))
            # the update that got as far as its commit has converged: a repeat changes nothing
            assert "nothing to change" in ctl.cli("apply", str(site), "--yes").stdout
        finally:
            for a in agents:
                a.__exit__(None, None, None)
