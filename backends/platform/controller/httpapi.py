"""The controller's HTTP API (docs/platform.md, docs/openapi.json): FastAPI
routes on uvicorn, every body and answer a pydantic model of
:mod:`protocol`, a bearer token, and every error a JSON ``{"error": ...}``
with its status (400 bad JSON, 401 token, 404 path, 405 method, 408 too slow,
413 too large, 422 not the model, 503 too many connections).

Limits, where they are enforced, and why:

* :class:`_Gate` (ASGI, before any route): the token; a body of at most
  ``MAX_BODY`` bytes (413), read within the request timeout (408: a client
  that sends half a body holds nothing for long), nested at most
  ``MAX_DEPTH`` deep (400; checked before any JSON parser recurses into it);
* :class:`_Protocol` (uvicorn's HTTP/1.1 protocol): the request line and
  headers within the request timeout (an idle connection is closed, a
  half-sent head answered 408), at most ``MAX_CONNECTIONS`` connections, and
  JSON for the errors uvicorn answers itself (malformed HTTP).

Run ``python -m backends.platform.controller.httpapi > docs/openapi.json``
after changing a route or a model (a test compares the two).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from backends.platform.controller import scaling
from backends.platform.controller.flows import FilesError
from backends.platform.controller.metrics import CONTENT_TYPE as METRICS_TYPE
from backends.platform.controller.protocol import (
    APPLY_EVENT,
    PROTOCOL_VERSION,
    ApplyRequest,
    DeployedAnswer,
    DigestAnswer,
    DrainRequest,
    ErrorAnswer,
    Heartbeat,
    HeartbeatAnswer,
    HostAnswer,
    PlanAnswer,
    ResultFailed,
    StatusAnswer,
    event_line,
)
from backends.platform.controller.scaling import RebalanceAnswer, RebalanceRequest

LOG = logging.getLogger("fsc.controller.http")

MAX_BODY = 64 * 1024 * 1024  # a compiled site travels whole in one body
MAX_DEPTH = 32  # the deepest legitimate body (a heartbeat) is 4
#: Seconds a client has for a request's head (also before a connection's first
#: request), and again for its body (`fsc controller --request-timeout`).
REQUEST_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 5  # seconds an idle kept-alive connection stays open
MAX_CONNECTIONS = 256
APPLY_KEEPALIVE = 5.0  # an empty line in the apply stream after this many quiet seconds
UNAUTHORIZED = "missing or wrong bearer token; pass --token-file (the controller prints where its token is)"
HOST_NAME = r"^[A-Za-z0-9_.-]+$"

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in (
        (400, "the body is not JSON, or nested too deeply"),
        (401, "missing or wrong bearer token"),
        (408, "the request was not received in time"),
        (413, "the body is too large"),
        (422, "the body or a parameter is not what the API takes"),
        (503, "too many connections"),
    )
}


# ---- limits -------------------------------------------------------------------------------------
def _brackets_outside_strings(body: bytes) -> bytes:
    """The brackets of ``body`` that lie outside its JSON strings: escaped
    backslashes, then escaped quotes taken out, everything but brackets and
    quotes dropped, and every other quote opens or closes a string (JSON has
    no backslash outside strings: a body that does is refused by the parser
    at that point, and what lies before it is read as the parser reads it).
    All at C speed: a regular expression stepping over the escapes took
    0.05 s for the 5 MB body of a 10,000-rule apply."""
    kept = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_BRACKET_OR_QUOTE)
    return b"".join(kept.split(b'"')[::2])


_NOT_BRACKET_OR_QUOTE = bytes(b for b in range(256) if b not in b'[]{}"')
_INNERMOST = re.compile(rb"\[\]|\{\}")


def nesting_problem(body: bytes, limit: int = MAX_DEPTH) -> str | None:
    """Why a JSON text must be refused before a parser recurses into it
    (nested deeper than ``limit``, or brackets that do not balance), else None.
    Without parsing: strings removed, brackets kept, then one level of
    innermost pairs peeled per pass (each pass runs at C speed)."""
    s = _brackets_outside_strings(body)
    for _ in range(limit):
        if not s:
            return None
        t = _INNERMOST.sub(b"", s)
        if t == s:
            return "the body is not valid JSON: its brackets do not balance"
        s = t
    return f"the body is nested more than {limit} deep" if s else None


_JSON_TYPE = (b"content-type", b"application/json")


def _error_bytes(message: str) -> bytes:
    return json.dumps({"error": message}).encode() + b"\n"


async def _send_error(send: Callable[[Any], Awaitable[None]], status: int, message: str, close: bool = False) -> None:
    body = _error_bytes(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if close:  # the rest of the body is not read: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Gate:
    """Token, body size, body time and nesting, before any route runs."""

    def __init__(self, app: Any, token: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.app = app
        self.token = token.encode()
        self.timeout = timeout

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        auth = headers.get(b"authorization", b"")
        return auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), self.token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if (scope["path"].startswith("/v1/") or scope["path"] == "/metrics") and not self._authorized(headers):
            return await _send_error(send, 401, UNAUTHORIZED)
        length = headers.get(b"content-length")
        if length is None and b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            return await self.app(scope, receive, send)
        if length is not None and int(length) > MAX_BODY:
            return await _send_error(send, 413, f"the body is larger than {MAX_BODY} bytes", close=True)
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                LOG.warning("%s: request body not received within %gs", _peer(scope), self.timeout)
                return await _send_error(
                    send, 408, f"the request body did not arrive within {self.timeout:g}s", close=True
                )
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                return await _send_error(send, 413, f"the body is larger than {MAX_BODY} bytes", close=True)
            if not message.get("more_body", False):
                break
        problem = nesting_problem(bytes(body))
        if problem is not None:
            return await _send_error(send, 400, problem)
        # the API speaks JSON only: a body is read as JSON whatever its declared type (curl -d)
        scope = {**scope, "headers": [*(h for h in scope["headers"] if h[0] != b"content-type"), _JSON_TYPE]}
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head, a
    connection cap, and JSON for the errors it answers by itself."""

    _head_timer: asyncio.TimerHandle | None = None
    head_timeout = REQUEST_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            self._raw_error(503, "too many connections to the controller; try again")
            return
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()  # the head is in: the body has its own deadline (_Gate)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a request line or head
            self._raw_error(408, f"the request head did not arrive within {self.head_timeout:g}s")
        else:  # nothing asked: close quietly
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._raw_error(400, f"not an HTTP/1.1 request the controller understands ({msg.rstrip('.')})")

    def _raw_error(self, status: int, message: str) -> None:
        body = _error_bytes(message)
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


# ---- routes -------------------------------------------------------------------------------------
def create_app(controller: Any, token: str, timeout: float = REQUEST_TIMEOUT) -> Any:
    """The ASGI application: the routes behind :class:`_Gate`. ``controller``
    is a :class:`backends.platform.controller.service.Controller` (None: only
    for the OpenAPI document)."""
    api = FastAPI(
        title="fsc controller",
        version=str(PROTOCOL_VERSION),
        summary="Deploy compiled sites to OpenFlow switches and host agents (docs/platform.md).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    @api.get("/v1/status", response_model=StatusAnswer, responses=_ERRORS)
    def status() -> StatusAnswer:
        """Switches (connected, rules, tcam), hosts (alive, load) and their instances."""
        return controller.status()

    @api.get("/v1/deployed", response_model=DeployedAnswer, responses=_ERRORS)
    def deployed() -> DeployedAnswer:
        """The committed site's compiled files (generation and site null when nothing is deployed)."""
        return controller.deployed()

    @api.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            **_ERRORS,
            200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
        },
    )
    def metrics() -> PlainTextResponse:
        """Prometheus metrics (docs/platform.md, "Metrics"): switches, hosts, instances, applies, failovers."""
        return PlainTextResponse(controller.metrics.render(), media_type=METRICS_TYPE)

    @api.get("/v1/deployed/digest", response_model=DigestAnswer, responses=_ERRORS)
    def digest() -> DigestAnswer:
        """The committed site's generation and the digest of what its apply compiled (no files)."""
        return controller.digest()

    @api.post("/v1/plan", response_model=PlanAnswer, responses=_ERRORS)
    def plan(req: ApplyRequest) -> PlanAnswer:
        """What `apply` of these compiled files would change: rules per switch, instances."""
        return controller.plan(req)

    @api.post(
        "/v1/apply",
        response_class=StreamingResponse,
        responses={
            **_ERRORS,
            200: {
                "description": "progress as NDJSON, one ApplyEvent a line, the last one the result; "
                "empty lines (keep-alive) may come between them",
                "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/ApplyEvent"}}},
            },
        },
    )
    async def apply(req: ApplyRequest) -> StreamingResponse:
        """Deploy these compiled files: the two-phase update (docs/platform.md). The
        apply runs to its end even when the client goes away."""
        return StreamingResponse(_stream_lines(lambda: controller.apply(req)), media_type=_NDJSON_TYPE)

    _NDJSON = {
        **_ERRORS,
        200: {
            "description": "progress as NDJSON, one ApplyEvent a line, the last one the result; "
            "empty lines (keep-alive) may come between them",
            "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/ApplyEvent"}}},
        },
        404: {"model": ErrorAnswer, "description": "the deployed site has no such host"},
    }

    @api.post("/v1/hosts/{host}/drain", response_class=StreamingResponse, responses=_NDJSON)
    async def drain(
        req: DrainRequest, host: str = Path(pattern=HOST_NAME, max_length=255, description="the host to drain")
    ) -> StreamingResponse:
        """Move every instance off HOST, make-before-break (docs/platform.md, "Drain"); the
        answer streams the moves and the wait for the old connections. The drain runs to
        its end even when the client goes away."""
        if host not in controller.site_hosts():
            raise HTTPException(404, f"the deployed site has no host `{host}`")
        return StreamingResponse(_stream_lines(lambda: controller.drain_host(host, req)), media_type=_NDJSON_TYPE)

    @api.post(
        "/v1/hosts/{host}/undrain",
        response_model=HostAnswer,
        responses={**_ERRORS, 404: {"model": ErrorAnswer, "description": "the deployed site has no such host"}},
    )
    def undrain(
        host: str = Path(pattern=HOST_NAME, max_length=255, description="the host to give back to placement"),
    ) -> HostAnswer:
        """Later placements may use HOST again (nothing moves now)."""
        answer = controller.undrain(host)
        if answer is None:
            raise HTTPException(404, f"the deployed site has no host `{host}`")
        return answer

    @api.post("/v1/rebalance/plan", response_model=RebalanceAnswer, responses=_ERRORS)
    def rebalance_plan(req: RebalanceRequest) -> RebalanceAnswer:
        """What a rebalance by measured load would do now (docs/platform.md, "Rebalance"):
        per replicated stage its load and the decision, and the update it takes."""
        return scaling.plan(controller, scaling.thresholds_for(controller.thresholds, req), req.targets)

    @api.post("/v1/rebalance", response_class=StreamingResponse, responses={**_ERRORS, 200: _NDJSON[200]})
    async def rebalance(req: RebalanceRequest) -> StreamingResponse:
        """Carry out a rebalance (``targets``: the ones a plan showed; else decided now)
        with the consistent update of `apply`; the answer streams its events."""
        th = scaling.thresholds_for(controller.thresholds, req)
        return StreamingResponse(
            _stream_lines(lambda: scaling.carry_out(controller, th, req.targets, req.ready_timeout)),
            media_type=_NDJSON_TYPE,
        )

    @api.post(
        "/v1/agents/{host}/heartbeat",
        response_model=HeartbeatAnswer,
        responses={
            **_ERRORS,
            404: {"model": ErrorAnswer, "description": "the host is not part of the deployed site or the apply"},
        },
    )
    def heartbeat(
        beat: Heartbeat, host: str = Path(pattern=HOST_NAME, max_length=255, description="the agent's host")
    ) -> HeartbeatAnswer:
        """An agent's heartbeat: its load and instances in, its host's desired instance set out."""
        answer = controller.heartbeat(host, beat)
        if answer is None:
            raise HTTPException(404, f"host `{host}` is not part of the deployed site or the apply in progress")
        return answer

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if exc.status_code != 405 else f"{request.method} is not allowed on {request.url.path}"
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no such resource {request.url.path}"
        return JSONResponse({"error": str(message)}, exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": f"the body is not valid JSON: {_first(errors)}"}, 400)
        return JSONResponse({"error": f"bad request: {_first(errors)}"}, 422)

    @api.exception_handler(FilesError)
    async def unusable(request: Request, exc: FilesError) -> JSONResponse:
        return JSONResponse({"error": f"the compiled files are not usable: {exc}"}, 422)

    @api.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        LOG.error("internal error on %s %s: %s", request.method, request.url.path, exc, exc_info=exc)
        return JSONResponse({"error": f"the controller failed on {request.url.path}: {exc}; see its log"}, 500)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            doc = get_openapi(title=api.title, version=api.version, summary=api.summary, routes=api.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            events = APPLY_EVENT.json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
            schemas.update(events.pop("$defs", {}))
            schemas["ApplyEvent"] = events
            doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in doc["paths"].items():
                for op in operations.values():
                    if path.startswith("/v1/") or path == "/metrics":
                        op["security"] = [{"bearer": []}]
                    for code, answer in op.get("responses", {}).items():
                        if code != "200" and "text/plain" in answer.get("content", {}):
                            # errors are JSON whatever the route's own content type (FastAPI copies it)
                            answer["content"] = {"application/json": answer["content"].pop("text/plain")}
            api.openapi_schema = jsonable_encoder(doc)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return _Gate(api, token, timeout)


def _first(errors: Any) -> str:
    e = list(errors)[0]
    where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
    return f"{where}: {e.get('msg')}" if where else str(e.get("msg"))


_NDJSON_TYPE = "application/x-ndjson"


async def _stream_lines(events: Callable[[], Any]) -> AsyncIterator[str]:
    """An update (apply, drain) runs in a thread of its own (it must finish even
    when the client goes away); its events come here through a queue, one NDJSON
    line each."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the server is shutting down
            pass

    def run() -> None:
        try:
            for ev in events():
                put(event_line(ev))
        except Exception as err:  # a bug: answer instead of cutting the stream
            LOG.exception("internal error in an update")
            put(event_line(ResultFailed(result="failed", error=f"the controller failed: {err}; see its log")))
        finally:
            put(None)

    threading.Thread(target=run, daemon=True, name="apply").start()
    while True:
        try:
            line = await asyncio.wait_for(queue.get(), APPLY_KEEPALIVE)
        except TimeoutError:
            yield "\n"  # keep-alive: the client's read timeout measures a silent controller
            continue
        if line is None:
            return
        yield line


# ---- serving ------------------------------------------------------------------------------------
class ApiServer:
    """uvicorn on an already bound socket, in a thread of its own."""

    def __init__(self, sock: socket.socket, app: Any, timeout: float = REQUEST_TIMEOUT) -> None:
        self.sock = sock
        protocol = type("_TimedProtocol", (_Protocol,), {"head_timeout": timeout})
        config = uvicorn.Config(
            app,
            http=protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=KEEPALIVE_TIMEOUT,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self.server = uvicorn.Server(config)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="http")
        thread.start()
        return thread


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the controller serves at /openapi.json."""
    gate = create_app(None, "")
    return gate.app.openapi()  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.stdout.write(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
