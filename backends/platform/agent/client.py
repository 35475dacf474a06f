"""The agent's side of ``POST /v1/agents/HOST/heartbeat`` (docs/platform.md),
through the one API client (:class:`backends.platform.controller.client.ApiClient`);
this module only turns its errors into what the agent's loop logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.platform.agent.runners.base import AgentSpec
from backends.platform.controller.client import ApiClient, ClientError
from backends.platform.controller.protocol import Heartbeat, HeartbeatAnswer

#: A heartbeat is small and frequent: a controller that takes longer is treated as away.
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
    """One host's heartbeats."""

    def __init__(self, url: str, host: str, token: str = "") -> None:
        self.host = host
        self.api = ApiClient(url, token, read_timeout=TIMEOUT, connect_timeout=TIMEOUT)
        self.url = f"{self.api.url}/v1/agents/{host}/heartbeat"

    def heartbeat(
        self, beat: Heartbeat, extra_load: dict[str, Any] | None = None
    ) -> tuple[HeartbeatAnswer, list[AgentSpec]]:
        """(the answer, its instances with any ``source`` the controller sent)."""
        if extra_load:
            beat = beat.model_copy(update={"load": beat.load.model_copy(update=extra_load)})
        try:
            answer = self.api.heartbeat(self.host, beat)
        except ClientError as err:
            why = {
                401: "401 unauthorized; pass the controller's token with --token-file",
                404: "404; the deployed site has no host of this name (check --host)",
            }.get(err.status or 0)
            raise Unreachable(f"{self.url}: {why}" if why else str(err)) from err
        return answer, [AgentSpec.model_validate(s.model_dump()) for s in answer.instances]
