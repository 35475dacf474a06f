"""The controller's HTTP API against hostile and careless clients, on a real
`fsc controller` process over real TCP: every refusal is JSON with the right
status (never HTML, never a dropped connection), bodies are bounded in size,
nesting and time, idle and half-sent requests are timed out without holding
anything, and the OpenAPI document served is the one committed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_controller_harness import Controller

from backends.platform.controller.client import ClientError
from backends.platform.controller.httpapi import (
    APPLY_KEEPALIVE,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_DEPTH,
    nesting_problem,
    openapi_document,
)
from backends.platform.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 1.5  # the controller's --request-timeout here


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("h2http") / "state", "127.0.0.1", ("--request-timeout", str(TIMEOUT)))
    c.start()
    yield c
    assert c.stop() == 0
    assert "Traceback" not in c.log.read_text()


def raw(ctl: Controller, data: bytes, read_for: float = 10.0) -> bytes:
    """Send bytes on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", ctl.http_port), timeout=read_for) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def answer(data: bytes) -> tuple[int, dict[str, str], object]:
    """(status, headers, JSON body) of one HTTP/1.1 answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers.get("content-type") == "application/json", data[:300]
    return status, headers, json.loads(body)


def request(ctl: Controller, method: str, path: str, body: bytes | None = None, **headers: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ctl.token}\r\n"
    head += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return raw(ctl, head.encode() + b"\r\n" + (body or b""))


def test_every_refusal_is_json_with_its_status(ctl: Controller) -> None:
    cases = [
        ("GET", "/v1/status", None, {"Authorization": "Bearer wrong"}, 401, "token"),
        ("GET", "/v1/nothing", None, {}, 404, "no such resource /v1/nothing"),
        ("GET", "/elsewhere", None, {}, 404, "no such resource"),
        ("DELETE", "/v1/status", None, {}, 405, "DELETE is not allowed on /v1/status"),
        ("FOO", "/v1/deployed", None, {}, 405, "FOO is not allowed"),
        ("GET", "/v1/plan", None, {}, 405, "GET is not allowed"),
        ("POST", "/v1/plan", b"{not json", {}, 400, "not valid JSON"),
        ("POST", "/v1/plan", b'{"site": "x", "files": {', {}, 400, "do not balance"),
        ("POST", "/v1/plan", b"[" * 100_000, {}, 400, "do not balance"),
        ("POST", "/v1/plan", b"[" * 1000 + b"]" * 1000, {}, 400, f"nested more than {MAX_DEPTH} deep"),
        ("POST", "/v1/plan", b'{"site": "x"}', {}, 422, "files: Field required"),
        ("POST", "/v1/plan", b'{"site": "x", "files": [1, 2]}', {}, 422, "files"),
        ("POST", "/v1/plan", b'{"site": "x", "files": {}, "drain_seconds": NaN}', {}, 422, "drain_seconds"),
        ("POST", "/v1/agents/a%20b/heartbeat", b"{}", {}, 422, "host"),
    ]
    for method, path, body, extra, status, words in cases:
        if "Authorization" in extra:
            data = raw(ctl, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        else:
            data = request(ctl, method, path, body)
        got, headers, doc = answer(data)
        assert (got, set(doc)) == (status, {"error"}), (method, path, data[:400])  # type: ignore[arg-type]
        assert words in doc["error"], (method, path, doc)  # type: ignore[index]
        if status == 405:
            assert headers["allow"], headers


def test_flow_files_of_the_wrong_shape_are_named_not_a_500(ctl: Controller) -> None:
    shapes = {
        "[1, 2, 3]": "openflow/s.json: Input should be an object",  # a list of non-objects
        '{"dpid": 1, "flows": [1, "x"]}': "flows.0",
        '{"dpid": 1, "flows": [{"table_id": 0, "match": [1]}]}': "match",
        '{"dpid": 1, "flows": [{"table_id": 999}]}': "table_id",
        '{"dpid": 1, "flows": [{"actions": {"type": "OUTPUT"}}]}': "actions",
        '{"dpid": 1, "flows": [{"actions": [{"type": "OUTPUT", "port": "x"}]}]}': "output:x",
        '{"dpid": 1, "flows": [{"match": {"warp_field": 3}}]}': "warp_field",
        '{"dpid": "one"}': "dpid",
    }
    for text, words in shapes.items():
        files = {"openflow/s.json": text}
        r = requests.post(ctl.url + "/v1/plan", json={"site": "x", "files": files}, headers=ctl.headers(), timeout=10)
        assert r.status_code == 422 and "not usable" in r.json()["error"], (text, r.text)
        assert words in r.json()["error"], (text, r.text)
    for name, text in (("plan.json", "[]"), ("placement.json", '{"instances": 3}')):
        r = requests.post(
            ctl.url + "/v1/plan", json={"site": "x", "files": {name: text}}, headers=ctl.headers(), timeout=10
        )
        assert r.status_code == 422 and name in r.json()["error"], r.text
    # an apply of such files says so as its result
    r = requests.post(
        ctl.url + "/v1/apply",
        json={"site": "x", "files": {"openflow/s.json": "[1]"}},
        headers=ctl.headers(),
        timeout=10,
    )
    last = [json.loads(x) for x in r.iter_lines() if x.strip()][-1]
    assert last["result"] == "failed" and "not usable" in last["error"]


def test_bodies_too_large_are_413_before_they_are_read(ctl: Controller) -> None:
    # announced too large: refused at once, the body is never sent
    head = (
        f"POST /v1/plan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ctl.token}\r\n"
        f"Content-Length: {MAX_BODY + 1}\r\n\r\n"
    )
    status, headers, doc = answer(raw(ctl, head.encode() + b'{"site": '))
    assert status == 413 and headers["connection"] == "close" and "larger" in doc["error"]  # type: ignore[index]
    # chunked, without a length: counted as it arrives
    with socket.create_connection(("127.0.0.1", ctl.http_port), timeout=30) as s:
        s.sendall(
            f"POST /v1/plan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ctl.token}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(MAX_BODY // len(chunk) + 2):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        data = b""
        try:
            while part := s.recv(65536):
                data += part
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 413"), data[:300]


def test_half_sent_and_idle_requests_time_out_and_hold_nothing(ctl: Controller) -> None:
    # half a body: 408 after the request timeout, the connection closed
    body = b'{"site": "x", "files": {}}'
    head = (
        f"POST /v1/plan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ctl.token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    status, headers, doc = answer(raw(ctl, head.encode() + body[:10], read_for=TIMEOUT + 10))
    assert status == 408 and headers["connection"] == "close" and "body" in doc["error"]  # type: ignore[index]
    # half a head: 408 too
    status, _, doc = answer(raw(ctl, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n", read_for=TIMEOUT + 10))
    assert status == 408 and "head" in doc["error"]  # type: ignore[index]
    # a connection that never asks anything is closed, quietly
    assert raw(ctl, b"", read_for=TIMEOUT + 10) == b""
    # and many of them at once did not take the server's workers
    socks = [socket.create_connection(("127.0.0.1", ctl.http_port)) for _ in range(50)]
    for s in socks:
        s.sendall(head.encode() + body[:5])
    try:
        assert ctl.api.deployed().generation is None  # still answering while they hang
    finally:
        for s in socks:
            s.close()


def test_too_many_connections_are_told_so(ctl: Controller) -> None:
    socks = [socket.create_connection(("127.0.0.1", ctl.http_port)) for _ in range(MAX_CONNECTIONS + 4)]
    try:
        socks[-1].settimeout(10)
        data = b""
        while part := socks[-1].recv(4096):
            data += part
        status, _, doc = answer(data)
        assert status == 503 and "too many connections" in doc["error"]  # type: ignore[index]
    finally:
        for s in socks:
            s.close()

    def answers() -> bool:
        try:
            return ctl.api.deployed().generation is None
        except ClientError:  # 503 until it has seen the others close
            return False

    wait_until(answers, 10, "the controller to answer again")


def test_a_kept_alive_connection_serves_many_requests(ctl: Controller) -> None:
    session = requests.Session()
    for _ in range(5):
        r = session.get(ctl.url + "/v1/deployed", headers=ctl.headers(), timeout=5)
        assert r.status_code == 200 and r.json()["generation"] is None


def test_bodies_are_json_whatever_their_declared_type(ctl: Controller) -> None:
    r = requests.post(
        ctl.url + "/v1/agents/nobody/heartbeat",
        data=b'{"instances": []}',
        headers={**ctl.headers(), "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert r.status_code == 404 and "nobody" in r.json()["error"]


def test_openapi_document_is_served_and_committed(ctl: Controller) -> None:
    r = requests.get(ctl.url + "/openapi.json", timeout=5)
    assert r.status_code == 200
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert r.json() == committed == openapi_document(), (
        "docs/openapi.json is out of date: python -m backends.platform.controller.httpapi > docs/openapi.json"
    )
    paths = committed["paths"]
    assert set(paths) == {
        "/v1/status",
        "/v1/deployed",
        "/v1/deployed/digest",
        "/metrics",
        "/v1/plan",
        "/v1/apply",
        "/v1/agents/{host}/heartbeat",
        "/v1/hosts/{host}/drain",
        "/v1/hosts/{host}/undrain",
        "/v1/rebalance/plan",
        "/v1/rebalance",
    }
    assert all(op["security"] == [{"bearer": []}] for p in paths.values() for op in p.values())
    assert "application/x-ndjson" in paths["/v1/apply"]["post"]["responses"]["200"]["content"]
    for page in ("/docs", "/redoc"):  # no HTML pages
        assert requests.get(ctl.url + page, timeout=5).headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "text, problem",
    [
        (b'{"a": [1, {"b": "]]]]"}]}', None),
        (b'"[[[[[[[[["', None),
        (b'{"a": "\\"[[["}', None),
        (b'{"a": "\\\\", "b": "[[[["}', None),  # an escaped backslash ends the string before the quote
        (b'{"a": "\\\\\\"[[[", "b": [[]]}', None),
        (b'["\\\\"' + b"[" * 33 + b"]" * 33 + b"]", "nested more than 32 deep"),
        (b"[" * 32 + b"]" * 32, None),
        (b"[" * 33 + b"]" * 33, "nested more than 32 deep"),
        (b"[" * 100_000, "do not balance"),
        (b"[}", "do not balance"),
        (b"", None),
    ],
)
def test_nesting_is_measured_without_parsing(text: bytes, problem: str | None) -> None:
    got = nesting_problem(text)
    assert (got is None) if problem is None else (got is not None and problem in got), got


def test_a_quiet_apply_keeps_its_stream_alive(tmp_path: Path) -> None:
    """While an apply waits (here its drain), empty lines keep coming, so a
    client's read timeout tells a busy controller from a dead one."""
    c = Controller(tmp_path / "state", "127.0.0.1")
    c.start()
    try:
        r = requests.post(
            c.url + "/v1/apply",
            json={"site": "x", "files": {"notes.txt": "no switch, no host"}, "drain_seconds": APPLY_KEEPALIVE + 1},
            headers=c.headers(),
            stream=True,
            timeout=(5, APPLY_KEEPALIVE + 3),  # fails unless something arrives between the commit and the result
        )
        lines = list(r.iter_lines())
        assert b"" in lines, lines
        events = [json.loads(line) for line in lines if line]
        assert [e.get("phase") for e in events][:2] == ["plan", "commit"] and events[-1]["result"] == "ok", events
    finally:
        assert c.stop() == 0
