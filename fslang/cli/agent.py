"""`fsc` platform commands (agent); registered by :mod:`fslang.cli`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `fsc` app."""

    @app.command("agent")
    def agent(
        host: str = typer.Option(..., "--host", help="this host's name in the site (e.g. mh1)"),
        controller: str = typer.Option(..., "--controller", help="the controller's URL, e.g. http://10.0.0.1:6680"),
        token_file: Path | None = typer.Option(None, "--token-file", help="file holding the bearer token"),
        lab: bool = typer.Option(
            False,
            "--lab",
            help="no hypervisor: vm instances (and process instances whose "
            "program is missing) run their module's reference behaviour",
        ),
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="logs, configs, counters (default /var/lib/fsc-agent/HOST)"
        ),
        netns_prefix: str = typer.Option("fsvm-", "--netns-prefix", help="prefix of lab vm namespaces"),
        libvirt_uri: str = typer.Option(
            "qemu:///system", "--libvirt-uri", help="the libvirt connection vm instances run on (without --lab)"
        ),
    ) -> None:
        """The control module of one module host: runs the instances the controller wants, reports load."""
        from backends.platform.agent.main import run_agent

        raise typer.Exit(run_agent(host, controller, token_file, lab, state_dir, netns_prefix, libvirt_uri=libvirt_uri))
