"""`fsc rebalance`, `fsc plan --consolidate` and the controller's scaling and
power options as a user meets them, against a real `fsc controller` process:
answers with nothing deployed, usage errors (exit 2) and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_controller_harness import Controller, fsc

ROOT = Path(__file__).resolve().parents[1]
SITE = str(ROOT / "examples" / "vpn_gateway.fs")


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    c = Controller(
        tmp_path_factory.mktemp("rbcli") / "state",
        "127.0.0.1",
        ("--auto-rebalance", "--rebalance-sustain", "1", "--power-hook", "true {host} {action}"),
    )
    c.start()
    yield c
    assert c.stop() == 0


def test_rebalance_with_nothing_deployed(ctl: Controller) -> None:
    r = ctl.cli("rebalance")
    assert r.returncode == 0 and "nothing is deployed" in r.stdout and "Traceback" not in r.stderr, r.stderr
    j = ctl.cli("rebalance", "--format", "json", "--yes")
    doc = json.loads(j.stdout)
    assert j.returncode == 0 and doc["changed"] is False and doc["plan"] is None, j.stdout
    bad = ctl.cli("rebalance", "--high", "0.2", "--low", "0.5")
    assert bad.returncode == 2 and "--low (0.5) must be below --high (0.2)" in bad.stderr


def test_consolidate_with_nothing_deployed(ctl: Controller) -> None:
    r = ctl.cli("plan", SITE, "--consolidate")
    assert r.returncode == 3 and "nothing is deployed; `fsc apply SITE` first" in r.stderr, r.stdout + r.stderr
    r = ctl.cli("apply", SITE, "--consolidate", "--yes")
    assert r.returncode == 1 and "is not the deployed site" in r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rebalance-low", "0.9", "--rebalance-high", "0.5"), "must be below --rebalance-high"),
        (("--power-hook", "wake {mac}"), "unknown placeholder"),
        (("--power-hook", "poweroff"), "must name the host with {host}"),
    ],
)
def test_controller_options_are_checked_before_it_starts(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = fsc("controller", "--state", str(tmp_path / "s"), "--listen", "127.0.0.1:0", *args, timeout=30)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
