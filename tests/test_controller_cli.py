"""`fsc controller/plan/apply/status`: user errors get a message and the
contract's exit code, never a traceback; the API refuses without the token;
one controller per state directory, and no token others can read; a
controller that hangs or answers nonsense is one line and exit 3; with
`--format json` standard output is exactly the answer."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from test_controller_harness import Controller, free_port, fsc
from typer.testing import CliRunner

from fslang.cli import app

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
    assert ctl.api.deployed().generation is None
    # --format json: standard output is NDJSON events and nothing else
    r = ctl.cli("apply", SITE, "--yes", "--format", "json")
    _clean(r)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 3 and events and events[-1]["result"] == "failed", r.stdout + r.stderr
    assert "switches not connected" in events[-1]["error"]


def test_format_json_is_one_document_on_stdout(ctl: Controller) -> None:
    for args in (("status",), ("plan", SITE)):
        r = ctl.cli(*args, "--format", "json")
        _clean(r)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)  # the whole of standard output is one JSON document
        assert isinstance(doc, dict) and r.stdout.strip().startswith("{")
    assert doc["new_generation"] == 0 and doc["old_generation"] is None and "gw" in doc["switches"]
    # a site with warnings: they go to standard error, standard output stays one document
    warned = ctl.state.parent / "warned.fs"
    warned.write_text(Path(SITE).read_text() + "\nmodule unused_h2 = firewall(deny: tcp and dst port 23)\n")
    r = ctl.cli("plan", str(warned), "--format", "json")
    assert r.returncode == 0 and "warning" in r.stderr, r.stderr
    assert json.loads(r.stdout)["new_generation"] == 0


def test_plan_against_nothing_deployed(ctl: Controller) -> None:
    r = ctl.cli("plan", SITE)
    assert r.returncode == 0, r.stderr
    assert "generation (none) -> 0" in r.stdout and "gw" in r.stdout


def test_user_errors(ctl: Controller, tmp_path: Path) -> None:
    r = fsc("plan", SITE, "--controller", ctl.url, env={"FSC_TOKEN_FILE": "", "FSC_LAB_ROOT": str(tmp_path)})
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


def test_one_controller_per_state_directory(ctl: Controller) -> None:
    r = fsc(
        "controller",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--openflow",
        f"127.0.0.1:{free_port()}",
        "--state",
        str(ctl.state),
        timeout=30,
    )
    _clean(r)
    assert r.returncode == 3, r.stderr
    assert f"in use by another controller (pid {ctl.proc.pid})" in r.stderr, r.stderr  # type: ignore[union-attr]
    assert ctl.api.deployed().generation is None  # the first one is untouched


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    token = state / "token"
    token.write_text("a-token-others-could-read\n")
    token.chmod(0o644)
    args = ("--listen", f"127.0.0.1:{free_port()}", "--openflow", f"127.0.0.1:{free_port()}", "--state", str(state))
    r = fsc("controller", *args, timeout=30)
    _clean(r)
    assert r.returncode == 3 and f"chmod 600 {token}" in r.stderr and "0644" in r.stderr, r.stderr
    assert stat.S_IMODE(token.stat().st_mode) == 0o644  # left as it was: the user decides


class _Misbehaving(ThreadingHTTPServer):
    """An HTTP server that is not an fsc controller: ``answer(method, path)``
    gives (status, content type, body) or None for "never answer"."""

    daemon_threads = True

    def __init__(self, answer) -> None:  # type: ignore[no-untyped-def]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                got = answer(self.command, self.path)
                if got is None:
                    outer.stop.wait()
                    return
                status, kind, body = got
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any  # noqa: N815

        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


@pytest.fixture()
def token(tmp_path: Path) -> Path:
    t = tmp_path / "token"
    t.write_text("t\n")
    return t


def _against(url: str, token: Path, *args: str) -> tuple[int, str]:
    """`fsc ARGS --controller URL` (in this process: the CLI's own code, quicker than a new one)."""
    r = CliRunner().invoke(app, [*args, "--controller", url, "--token-file", str(token), "--timeout", "1"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # no traceback
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr  # one line says it all
    return r.exit_code, lines[0]


def test_a_server_that_accepts_but_never_answers(token: Path) -> None:
    with socket.socket() as s:  # the kernel accepts connections; nobody reads them
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        for args in (("status",), ("plan", SITE), ("apply", SITE, "--yes")):
            t0 = time.monotonic()
            code, line = _against(url, token, *args)
            assert code == 3 and "did not answer within 1s" in line, (args, line)
            assert time.monotonic() - t0 < 30
    server = _Misbehaving(lambda method, path: None)  # reads the request, never answers
    try:
        code, line = _against(server.url, token, "status")
        assert code == 3 and "did not answer within 1s" in line, line
    finally:
        server.close()


def test_answers_that_are_not_the_api_are_one_line_and_exit_3(token: Path) -> None:
    html = (200, "text/html", b"<html><body>It works!</body></html>")
    deployed = (200, "application/json", b'{"generation": null, "files": {}, "site": null}')
    digest = (200, "application/json", b'{"generation": null, "site": null, "digest": ""}')
    cases = [
        (lambda m, p: html, ("status",), "answered text/html, not JSON"),
        (
            lambda m, p: (200, "application/json", b'{"unexpected": true}'),
            ("status",),
            "not an fsc controller's answer",
        ),
        (lambda m, p: (200, "application/json", b"[1, 2"), ("status",), "not an fsc controller's answer"),
        (
            lambda m, p: digest if p == "/v1/deployed/digest" else (200, "application/json", b'{"unexpected": true}'),
            ("plan", SITE),
            "/v1/deployed answered",
        ),
        (lambda m, p: (200, "application/json", b'{"unexpected": true}'), ("plan", SITE), "/digest answered"),
        (
            lambda m, p: {"/v1/deployed": deployed, "/v1/deployed/digest": digest}.get(
                p, (200, "application/json", b'{"switches": 3}')
            ),
            ("plan", SITE),
            "/v1/plan answered JSON that is not",
        ),
        (
            lambda m, p: {"/v1/deployed": deployed, "/v1/deployed/digest": digest}.get(
                p, (200, "application/x-ndjson", b'{"phase": "warp"}\n')
            ),
            ("apply", SITE, "--yes"),
            "not an apply event",
        ),
        (lambda m, p: (500, "text/html", b"<h1>Internal Server Error</h1>"), ("status",), "answered 500"),
        (lambda m, p: (404, "application/json", b'{"error": "no such thing"}'), ("status",), "404: no such thing"),
    ]
    for answer, args, words in cases:
        server = _Misbehaving(answer)
        try:
            code, line = _against(server.url, token, *args)
        finally:
            server.close()
        assert code == 3 and words in line, (args, line)


def test_token_of_the_only_lab_is_the_default(tmp_path, monkeypatch) -> None:
    """Without --token-file or $FSC_TOKEN_FILE the client uses the token of the
    one running lab, and still refuses to guess between several."""
    from backends.platform.controller import client as cl

    monkeypatch.delenv("FSC_TOKEN_FILE", raising=False)
    (tmp_path / "a" / "controller").mkdir(parents=True)
    (tmp_path / "a" / "controller" / "token").write_text("secret-a\n")
    monkeypatch.setenv("FSC_LAB_ROOT", str(tmp_path))
    assert cl.read_token(None) == "secret-a"
    (tmp_path / "b" / "controller").mkdir(parents=True)
    (tmp_path / "b" / "controller" / "token").write_text("secret-b\n")
    with pytest.raises(cl.ClientError, match="--token-file"):
        cl.read_token(None)
