"""The agent's side of ``POST /v1/agents/HOST/heartbeat`` (docs/platform.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from backends.platform.agent.runners.base import AgentSpec
from backends.platform.controller.protocol import Heartbeat, HeartbeatAnswer

TIMEOUT = 3.0


class Unreachable(RuntimeError):
    """The controller did not answer a heartbeat usefully; the message says why."""


def read_token(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SystemExit(
            f"cannot read the token file {path}: {err.strerror}; pass the controller's STATE/token with --token-file"
        ) from err


class ControllerClient:
    def __init__(self, url: str, host: str, token: str = "") -> None:
        self.url = url.rstrip("/") + f"/v1/agents/{quote(host, safe='')}/heartbeat"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def heartbeat(
        self, beat: Heartbeat, extra_load: dict[str, Any] | None = None
    ) -> tuple[HeartbeatAnswer, list[AgentSpec]]:
        """(the answer, its instances with any ``source`` the controller sent)."""
        body = beat.model_dump()
        body["load"].update(extra_load or {})
        try:
            res = self.session.post(self.url, json=body, timeout=TIMEOUT)
        except requests.RequestException as err:
            raise Unreachable(f"{self.url}: {type(err).__name__}: {err}") from err
        if res.status_code == 401:
            raise Unreachable(f"{self.url}: 401 unauthorized; pass the controller's token with --token-file")
        if res.status_code == 404:
            raise Unreachable(f"{self.url}: 404; the deployed site has no host of this name (check --host)")
        if res.status_code != 200:
            raise Unreachable(f"{self.url}: HTTP {res.status_code}: {res.text[:200]}")
        try:
            raw = res.json()
            answer = HeartbeatAnswer.model_validate(raw)
            specs = [AgentSpec.model_validate(s) for s in raw.get("instances", [])]
        except ValueError as err:
            raise Unreachable(f"{self.url}: the answer is not a heartbeat answer: {err}") from err
        return answer, specs
