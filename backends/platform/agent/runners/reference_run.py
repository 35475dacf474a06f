"""Running a module's reference behaviour (``python -m backends.platform.agent.reference``)."""

from __future__ import annotations

from pathlib import Path

from backends.platform.agent.behaviour import module_name
from backends.platform.agent.runners.base import PYTHON, AgentSpec

ROOT = Path(__file__).resolve().parents[4]  # the checkout, for `-m backends.platform.agent.reference`


def reference_argv(spec: AgentSpec, iface: str, inst_dir: Path, module: str = "") -> list[str]:
    """The argument vector of the reference behaviour of ``spec``'s instance on ``iface``.

    Counters continue from the stats file of an earlier run (``--seed``); the
    program writes :func:`ready_file` once it reads the device (removed here first)."""
    stats = inst_dir / "stats.json"
    ready_file(inst_dir).unlink(missing_ok=True)
    argv = [
        PYTHON,
        "-m",
        "backends.platform.agent.reference",
        "--iface",
        iface,
        "--instance",
        spec.id,
        "--module",
        module or module_name(spec.id),
        "--stats",
        str(stats),
        "--seed",
        str(stats),
        "--ready",
        str(ready_file(inst_dir)),
    ]
    source = spec.site_source()
    if source:
        site = inst_dir / "site.fs"
        site.write_text(source, encoding="utf-8")
        argv += ["--site-source", str(site)]
    return argv


def ready_file(inst_dir: Path) -> Path:
    return inst_dir / "ready"


def reference_env() -> dict[str, str]:
    """PYTHONPATH so the child finds the project however the agent was started."""
    import os

    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(ROOT) + (":" + path if path else "")}
