"""The controller's HTTP API (docs/platform.md): JSON in, JSON or NDJSON out,
bearer token. A plain ThreadingHTTPServer: os-ken 4.2 runs on native threads,
so no event loop is shared with it."""

from __future__ import annotations

import hmac
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from backends.platform.controller.flows import FlowFormatError
from backends.platform.controller.protocol import ApplyRequest, Heartbeat
from backends.platform.controller.service import Controller

LOG = logging.getLogger("fsc.controller.http")
MAX_BODY = 256 * 1024 * 1024
_HEARTBEAT = re.compile(r"^/v1/agents/([A-Za-z0-9_.-]+)/heartbeat$")


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        LOG.debug("%s " + fmt, self.address_string(), *args)

    def _send_json(self, code: int, doc: Any) -> None:
        body = (json.dumps(doc, sort_keys=True) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str) -> None:
        self._send_json(code, {"error": message})

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.server.token.encode()):
            return True
        self._error(401, "missing or wrong bearer token; pass --token-file (the controller prints where its token is)")
        return False

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("request body too large")
        raw = self.rfile.read(n) if n else b"{}"
        return json.loads(raw)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._authorized():
            return
        ctl = self.server.controller
        try:
            if self.path == "/v1/status":
                self._send_json(200, ctl.status())
            elif self.path == "/v1/deployed":
                self._send_json(200, ctl.deployed())
            else:
                self._error(404, f"no such resource {self.path}")
        except Exception as err:  # answer instead of dropping the connection; the log has the details
            LOG.exception("GET %s failed", self.path)
            self._error(500, f"the controller failed on {self.path}: {err}; see its log")

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        ctl = self.server.controller
        try:
            body = self._body()
        except (ValueError, json.JSONDecodeError) as err:
            self._error(400, f"bad request body: {err}")
            return
        try:
            m = _HEARTBEAT.match(self.path)
            if m:
                answer = ctl.heartbeat(m.group(1), Heartbeat.model_validate(body))
                if answer is None:
                    self._error(404, f"host `{m.group(1)}` is not part of the deployed site or the apply in progress")
                else:
                    self._send_json(200, answer.model_dump())
            elif self.path == "/v1/plan":
                self._send_json(200, ctl.plan(ApplyRequest.model_validate(body)))
            elif self.path == "/v1/apply":
                self._stream(ctl.apply(ApplyRequest.model_validate(body)))
            else:
                self._error(404, f"no such resource {self.path}")
        except ValidationError as err:
            self._error(400, f"bad request: {err}")
        except FlowFormatError as err:
            self._error(400, f"the compiled files are not usable: {err}")
        except Exception as err:  # answer instead of dropping the connection; the log has the details
            LOG.exception("%s %s failed", self.command, self.path)
            self._error(500, f"the controller failed on {self.path}: {err}; see its log")

    def _stream(self, events: Any) -> None:
        """NDJSON, chunked: one line per progress event, flushed as it happens."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for ev in events:
                line = (json.dumps(ev, sort_keys=True) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            LOG.warning("the apply client went away; the apply continues")
            for _ in events:
                pass
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], controller: Controller, token: str) -> None:
        super().__init__(addr, _Handler)
        self.controller = controller
        self.token = token
