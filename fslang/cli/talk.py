"""How the platform commands talk to the controller: one API client, a refusal or a
failure as one line on standard error and its exit code, answers as JSON."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"fsc: {message}\n")
    return typer.Exit(code)


def _client(url: str | None, token_file: str | None, timeout: float) -> Any:
    from backends.platform.controller.client import DEFAULT_URL, ApiClient, ClientError, read_token

    try:
        return ApiClient(url or os.environ.get("FSC_CONTROLLER") or DEFAULT_URL, read_token(token_file), timeout)
    except ClientError as err:
        raise _fail(str(err), 2) from None


@contextmanager
def _talking() -> Iterator[None]:
    """A controller that refuses or answers nonsense: one line, exit 3 (2 for usage)."""
    from backends.platform.controller.client import ClientError

    try:
        yield
    except ClientError as err:
        raise _fail(str(err), 2 if err.usage else 3) from None


def _json(doc: Any) -> str:
    return json.dumps(doc.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"
