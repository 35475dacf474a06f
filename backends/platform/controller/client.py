"""The one HTTP client of the controller API: `fsc plan/apply/status`, the
agents and the tests all use :class:`ApiClient`.

Every answer is read back into its :mod:`protocol` model; anything else (no
answer in time, HTML, JSON of the wrong shape, a broken stream) is a
:class:`ClientError` with a one-line message, never a traceback or a hang.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from backends.platform.controller.protocol import (
    APPLY_EVENT,
    ApplyEvent,
    ApplyRequest,
    DeployedAnswer,
    DigestAnswer,
    DrainRequest,
    Heartbeat,
    HeartbeatAnswer,
    HostAnswer,
    PlanAnswer,
    StatusAnswer,
    one_line,
)

DEFAULT_URL = "http://127.0.0.1:8181"
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for an answer.
READ_TIMEOUT = 30.0
#: At least this many seconds between two lines of an apply's stream (the
#: controller sends an empty line every 5 s while it works).
STREAM_QUIET = 15.0

M = TypeVar("M", bound=BaseModel)


class ClientError(RuntimeError):
    """The controller cannot be reached, refused, or answered something else
    than the API says. ``usage``: the caller's mistake (exit 2, not 3);
    ``status``: the HTTP status of a refusal."""

    def __init__(self, message: str, usage: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        self.status = status


def read_token(token_file: str | Path | None) -> str:
    """The bearer token: ``token_file``, else $FSC_TOKEN_FILE, else the token of
    the one lab running on this machine (so `fsc apply SITE --controller URL`
    works as the CLI contract writes it)."""
    path = str(token_file) if token_file else os.environ.get("FSC_TOKEN_FILE")
    if not path:
        lab_root = os.environ.get("FSC_LAB_ROOT") or "/run/fsc-lab"  # as `fsc lab` keeps its labs
        labs = sorted(glob.glob(os.path.join(glob.escape(lab_root), "*", "controller", "token")))
        path = labs[0] if len(labs) == 1 else None
    if not path:
        raise ClientError(
            "no token: pass --token-file FILE or set FSC_TOKEN_FILE "
            "(the controller prints where its token is, e.g. STATE/token)",
            usage=True,
        )
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ClientError(f"cannot read the token file {path}: {why}", usage=True) from err
    if not token:
        raise ClientError(f"the token file {path} is empty", usage=True)
    return token


class ApiClient:
    """Typed calls of the controller's HTTP API (docs/openapi.json)."""

    def __init__(
        self, url: str, token: str, read_timeout: float = READ_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(
                f"--controller {url!r} is not a URL; write it as http://HOST:PORT (e.g. http://127.0.0.1:8181)",
                usage=True,
            )
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = (connect_timeout, read_timeout)

    # ---- the API ----
    def status(self) -> StatusAnswer:
        return self._call("GET", "/v1/status", StatusAnswer)

    def deployed(self) -> DeployedAnswer:
        return self._call("GET", "/v1/deployed", DeployedAnswer)

    def digest(self) -> DigestAnswer:
        return self._call("GET", "/v1/deployed/digest", DigestAnswer)

    def plan(self, req: ApplyRequest) -> PlanAnswer:
        return self._call("POST", "/v1/plan", PlanAnswer, req)

    def heartbeat(self, host: str, beat: Heartbeat) -> HeartbeatAnswer:
        return self._call("POST", f"/v1/agents/{quote(host, safe='')}/heartbeat", HeartbeatAnswer, beat)

    def apply(self, req: ApplyRequest) -> Iterator[ApplyEvent]:
        """POST /v1/apply and yield each progress event as it arrives."""
        return self._stream("/v1/apply", req, "the apply")

    def drain(self, host: str, req: DrainRequest) -> Iterator[ApplyEvent]:
        """POST /v1/hosts/HOST/drain and yield each progress event as it arrives."""
        return self._stream(f"/v1/hosts/{quote(host, safe='')}/drain", req, "the drain")

    def undrain(self, host: str) -> HostAnswer:
        return self._call("POST", f"/v1/hosts/{quote(host, safe='')}/undrain", HostAnswer)

    def rebalance_plan(self, req: BaseModel) -> Any:
        """POST /v1/rebalance/plan: a ``scaling.RebalanceAnswer``."""
        from backends.platform.controller.scaling import RebalanceAnswer

        return self._call("POST", "/v1/rebalance/plan", RebalanceAnswer, req)

    def rebalance(self, req: BaseModel) -> Iterator[ApplyEvent]:
        """POST /v1/rebalance and yield each progress event as it arrives."""
        return self._stream("/v1/rebalance", req, "the rebalance")

    def _stream(self, path: str, body: BaseModel, what: str) -> Iterator[ApplyEvent]:
        r = self._send("POST", path, body, stream=True, read_timeout=max(self.timeout[1], STREAM_QUIET))
        with r:
            try:
                for line in r.iter_lines():
                    if line.strip():  # empty lines keep the connection alive
                        yield self._model_line(line)
            except requests.RequestException as err:
                if _timed_out(err):
                    raise self._timeout(err, (self.timeout[0], max(self.timeout[1], STREAM_QUIET))) from err
                raise ClientError(
                    f"the connection to the controller at {self.url} broke during {what} ({_why(err)}); "
                    f"{what} goes on there: see `fsc status`"
                ) from err

    # ---- plumbing ----
    def _call(self, method: str, path: str, model: type[M], body: BaseModel | None = None) -> M:
        r = self._send(method, path, body)
        try:
            return model.model_validate_json(r.content)
        except ValidationError as err:
            raise self._unexpected(r, path, err) from None

    def _model_line(self, line: bytes) -> ApplyEvent:
        try:
            return APPLY_EVENT.validate_json(line)
        except ValidationError as err:
            raise ClientError(
                f"{self.url} sent a progress line that is not an apply event ({one_line(err, 1)}): "
                f"{line[:80].decode(errors='replace')!r}"
            ) from None

    def _send(
        self, method: str, path: str, body: BaseModel | None, stream: bool = False, read_timeout: float | None = None
    ) -> requests.Response:
        data = body.model_dump_json(by_alias=True).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        timeout = (self.timeout[0], read_timeout or self.timeout[1])
        try:
            r = self.session.request(
                method, self.url + path, data=data, headers=headers, stream=stream, timeout=timeout
            )
        except requests.RequestException as err:
            if _timed_out(err):
                raise self._timeout(err, timeout) from err
            if isinstance(err, requests.ConnectionError):
                raise ClientError(
                    f"cannot reach the controller at {self.url}: is `fsc controller` running there? ({_why(err)})"
                ) from err
            raise ClientError(f"cannot talk to the controller at {self.url}: {_why(err)}") from err
        if r.status_code != 200:
            raise ClientError(
                f"the controller at {self.url} answered {r.status_code}: {_error_text(r)}", status=r.status_code
            )
        return r

    def _timeout(self, err: Exception, timeout: tuple[float, float]) -> ClientError:
        connecting = isinstance(err, requests.ConnectTimeout)
        limit = timeout[0] if connecting else timeout[1]
        what = "accept the connection" if connecting else "answer"
        return ClientError(f"the controller at {self.url} did not {what} within {limit:g}s; is it stuck? see its log")

    def _unexpected(self, r: requests.Response, path: str, err: ValidationError) -> ClientError:
        kind = r.headers.get("Content-Type", "no content type").split(";")[0]
        if kind != "application/json":
            return ClientError(f"{self.url}{path} answered {kind}, not JSON: is {self.url} an fsc controller?")
        return ClientError(
            f"{self.url}{path} answered JSON that is not an fsc controller's answer ({one_line(err, 1)}); "
            "is it an fsc controller of this version?"
        )


def _timed_out(err: requests.RequestException) -> bool:
    # a read timeout inside a streamed body surfaces as a ConnectionError
    return isinstance(err, requests.Timeout) or "timed out" in str(err).lower()


def _why(err: Exception) -> str:
    """``Kind: reason`` of a requests error, short (the OS's words when there are)."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    reason = found.group(1).strip() if found else " ".join(text.split())
    if len(reason) > 160:
        reason = reason[:157] + "..."
    return f"{type(err).__name__}: {reason}" if reason else type(err).__name__


def _error_text(r: requests.Response) -> str:
    """The ``error`` of a JSON refusal, else the start of the body."""
    try:
        doc = r.json()
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"]
    except ValueError:
        pass
    text = " ".join(r.text.split())
    return (text[:200] + "...") if len(text) > 200 else text or "(no body)"
