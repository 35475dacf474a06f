"""HTTP client of the controller API, for `fsc plan/apply/status` (and tests)."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

DEFAULT_URL = "http://127.0.0.1:8181"


class ClientError(RuntimeError):
    """The controller cannot be reached or refused; ``usage`` for caller mistakes."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


LAB_TOKENS = "/run/fsc-lab/*/controller/token"  # where `fsc lab up` keeps each lab controller's token


def read_token(token_file: str | None) -> str:
    """The bearer token: --token-file, else $FSC_TOKEN_FILE, else the token of
    the one lab running on this machine (so `fsc apply SITE --controller URL`
    works as the CLI contract writes it)."""
    path = token_file or os.environ.get("FSC_TOKEN_FILE")
    if not path:
        labs = sorted(glob.glob(LAB_TOKENS))
        path = labs[0] if len(labs) == 1 else None
    if not path:
        raise ClientError(
            "no token: pass --token-file FILE or set FSC_TOKEN_FILE "
            "(the controller prints where its token is, e.g. STATE/token)",
            usage=True,
        )
    try:
        token = Path(path).read_text().strip()
    except OSError as err:
        raise ClientError(f"cannot read the token file {path}: {err.strerror or err}", usage=True) from err
    if not token:
        raise ClientError(f"the token file {path} is empty", usage=True)
    return token


class Client:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(
                f"--controller {url!r} is not a URL; write it as http://HOST:PORT (e.g. http://127.0.0.1:8181)",
                usage=True,
            )
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _check(self, r: requests.Response) -> None:
        if r.status_code == 200:
            return
        try:
            msg = r.json().get("error", r.text)
        except ValueError:
            msg = r.text.strip()
        raise ClientError(f"the controller at {self.url} answered {r.status_code}: {msg}")

    def _request(
        self, method: str, path: str, body: Any = None, stream: bool = False, timeout: float | None = None
    ) -> requests.Response:
        try:
            r = self.session.request(method, self.url + path, json=body, stream=stream, timeout=timeout or self.timeout)
        except requests.ConnectionError as err:
            raise ClientError(
                f"cannot reach the controller at {self.url}: is `fsc controller` running there? ({type(err).__name__})"
            ) from err
        except requests.Timeout as err:
            raise ClientError(f"the controller at {self.url} did not answer in time") from err
        except requests.RequestException as err:
            raise ClientError(f"cannot talk to the controller at {self.url}: {err}") from err
        self._check(r)
        return r

    def _json(self, r: requests.Response) -> Any:
        try:
            return r.json()
        except ValueError as err:
            raise ClientError(f"{self.url} did not answer with JSON: is it an fsc controller?") from err

    def get(self, path: str) -> Any:
        return self._json(self._request("GET", path))

    def post(self, path: str, body: Any) -> Any:
        return self._json(self._request("POST", path, body))

    def stream(self, path: str, body: Any, timeout: float = 600.0) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line of the answer as it arrives."""
        r = self._request("POST", path, body, stream=True, timeout=timeout)
        try:
            for line in r.iter_lines():
                if line.strip():
                    yield json.loads(line)
        except ValueError as err:
            raise ClientError(f"{self.url} sent a progress line that is not JSON: {err}") from err
        except requests.RequestException as err:
            raise ClientError(f"the connection to the controller broke during the request: {err}") from err
