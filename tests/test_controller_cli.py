"""`fsc controller/plan/apply/status`: user errors get a message and the
contract's exit code, never a traceback; the API refuses without the token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import requests
from test_controller_harness import Controller, fsc

ROOT = Path(__file__).resolve().parents[1]
SITE = str(ROOT / "examples" / "vpn_gateway.fs")


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    c = Controller(tmp_path_factory.mktemp("h2cli") / "state", "127.0.0.1")
    c.start()
    yield c
    assert c.stop() == 0, "the controller must end cleanly on SIGTERM"


def _clean(r) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in r.stderr + r.stdout, r.stderr


def test_token_is_private_and_required(ctl: Controller) -> None:
    assert stat.S_IMODE(ctl.token_file.stat().st_mode) == 0o600
    assert str(ctl.token_file) in ctl.log.read_text()  # the controller says where its token is
    assert requests.get(ctl.url + "/v1/status", timeout=5).status_code == 401
    bad = requests.get(ctl.url + "/v1/status", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert bad.status_code == 401 and "token" in bad.json()["error"]


def test_status_with_nothing_deployed(ctl: Controller) -> None:
    r = ctl.cli("status")
    assert r.returncode == 0 and "nothing deployed" in r.stdout, r.stderr
    j = ctl.cli("status", "--format", "json")
    assert j.returncode == 0 and '"switches": []' in j.stdout


def test_heartbeat_of_an_unknown_host_is_404(ctl: Controller) -> None:
    r = requests.post(
        ctl.url + "/v1/agents/h2nobody/heartbeat", json={"load": {}, "instances": []}, headers=ctl.headers(), timeout=5
    )
    assert r.status_code == 404 and "h2nobody" in r.json()["error"]
    r = requests.post(ctl.url + "/v1/agents/h2nobody/heartbeat", data=b"{not json", headers=ctl.headers(), timeout=5)
    assert r.status_code == 400


def test_apply_refuses_when_a_switch_is_missing(ctl: Controller) -> None:
    r = ctl.cli("apply", SITE, "--yes")
    _clean(r)
    assert r.returncode == 3 and "switches not connected: gw (0x20)" in r.stdout, r.stdout + r.stderr
    assert ctl.get("/v1/deployed")["generation"] is None


def test_plan_against_nothing_deployed(ctl: Controller) -> None:
    r = ctl.cli("plan", SITE)
    assert r.returncode == 0, r.stderr
    assert "generation (none) -> 0" in r.stdout and "gw" in r.stdout


def test_user_errors(ctl: Controller, tmp_path: Path) -> None:
    r = fsc("plan", SITE, "--controller", ctl.url, env={"FSC_TOKEN_FILE": ""})
    _clean(r)
    assert r.returncode == 2 and "--token-file" in r.stderr
    r = fsc("status", "--controller", "localhost:8181", "--token-file", str(ctl.token_file))
    _clean(r)
    assert r.returncode == 2 and "http://HOST:PORT" in r.stderr
    r = fsc("status", "--controller", "http://127.0.0.1:9", "--token-file", str(ctl.token_file))
    _clean(r)
    assert r.returncode == 3 and "cannot reach the controller" in r.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    r = fsc("status", "--controller", ctl.url, "--token-file", str(wrong))
    _clean(r)
    assert r.returncode == 3 and "401" in r.stderr
    broken = tmp_path / "broken.fs"
    broken.write_text("site x\nswitch s dpid 1\npolicy p via nosuch\n")
    r = ctl.cli("plan", str(broken))
    _clean(r)
    assert r.returncode == 1 and "error[" in r.stderr
    r = ctl.cli("apply", SITE)  # not a terminal and no --yes
    _clean(r)
    assert r.returncode == 2 and "--yes" in r.stderr
    r = fsc("controller", "--listen", "nonsense")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = fsc(
        "controller",
        "--listen",
        f"127.0.0.1:{ctl.http_port}",
        "--openflow",
        "127.0.0.1:0",
        "--state",
        str(tmp_path / "s2"),
    )
    _clean(r)
    assert r.returncode == 3 and "cannot listen for HTTP" in r.stderr


def test_unusable_files_are_a_400_not_a_dropped_connection(ctl: Controller) -> None:
    files = {
        "openflow/s.json": json.dumps(
            {
                "dpid": 1,
                "groups": [],
                "flows": [{"table_id": 0, "priority": 1, "cookie": 0, "match": {"warp_field": 3}, "actions": []}],
            }
        )
    }
    r = requests.post(ctl.url + "/v1/plan", json={"site": "x", "files": files}, headers=ctl.headers(), timeout=10)
    assert r.status_code == 400 and "warp_field" in r.json()["error"]
    r = requests.post(ctl.url + "/v1/apply", json={"site": "x", "files": files}, headers=ctl.headers(), timeout=10)
    last = [json.loads(x) for x in r.iter_lines() if x.strip()][-1]
    assert last["result"] == "failed" and "warp_field" in last["error"]


def test_token_of_the_only_lab_is_the_default(tmp_path, monkeypatch) -> None:
    """Without --token-file or $FSC_TOKEN_FILE the client uses the token of the
    one running lab, and still refuses to guess between several."""
    from backends.platform.controller import client as cl

    monkeypatch.delenv("FSC_TOKEN_FILE", raising=False)
    (tmp_path / "a" / "controller").mkdir(parents=True)
    (tmp_path / "a" / "controller" / "token").write_text("secret-a\n")
    monkeypatch.setattr(cl, "LAB_TOKENS", str(tmp_path / "*" / "controller" / "token"))
    assert cl.read_token(None) == "secret-a"
    (tmp_path / "b" / "controller").mkdir(parents=True)
    (tmp_path / "b" / "controller" / "token").write_text("secret-b\n")
    with pytest.raises(cl.ClientError, match="--token-file"):
        cl.read_token(None)
