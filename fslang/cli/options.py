"""The arguments and options several `fsc` commands share, declared once as
``Annotated`` aliases (a command writes ``timeout: Timeout = 30.0``), so the
same option reads the same, with the same bounds, in every command's help."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class Format(str, Enum):
    text = "text"
    json = "json"


SiteFile = Annotated[Path, typer.Argument(help="the site file (.fs)")]
Optimal = Annotated[bool, typer.Option("--optimal", help="exact placement (small sites)")]
TextOrJson = Annotated[Format, typer.Option("--format", help="text or json")]
LabName = Annotated[str | None, typer.Option("--name", help="lab name (default: the only lab that is up)")]

# ---- the controller's clients (plan, apply, drain, undrain, status, rebalance)
ControllerUrl = Annotated[
    str | None,
    typer.Option("--controller", help="the controller's HTTP API (default: $FSC_CONTROLLER or http://127.0.0.1:8181)"),
]
TokenFile = Annotated[
    str | None,
    typer.Option("--token-file", help="file holding the controller's bearer token (default: $FSC_TOKEN_FILE)"),
]
Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for each answer of the controller")]
Document = Annotated[Format, typer.Option("--format", help="text or json (one JSON document)")]
Events = Annotated[
    Format,
    typer.Option("--format", help="text, or json (NDJSON: one progress event a line, the result last)"),
]
ReadyTimeout = Annotated[
    float,
    typer.Option(
        "--ready-timeout", min=0.1, max=3600, help="seconds to wait for hosts to report the new instances ready"
    ),
]
Grace = Annotated[
    float,
    typer.Option(
        "--grace", min=0.0, max=3600, help="seconds old connections may stay on the old instances at most (drains)"
    ),
]
Idle = Annotated[
    float,
    typer.Option("--idle", min=0.1, max=3600, help="old connections silent this many seconds count as ended (drains)"),
]
