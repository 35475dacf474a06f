"""A runner used directly (the interface the agent loop drives): the move hook.
A lab `vm` instance started with another host's exported state continues its
counters, answers real frames, exports its state again, and its stop and
unplumb leave no namespace or device behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends.emit.vm.generate import tap_name
from backends.platform.agent.runners import AgentSpec, Context, VmRunner
from backends.platform.wait import wait_until
from tests.test_agent_harness import (
    SITE,
    cleanup_devices,
    exchange,
    h3_links,
    h3_namespaces,
    site_files,
    spec,
    tcp_frame,
)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("h3_devices")]  # they share the h3 names and devices


def test_vm_lab_runner_carries_state_for_a_move(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, veth pairs): run it as root")
    cleanup_devices()
    files = site_files()
    s = AgentSpec.model_validate(spec("h3ids", "vm", {"vm/h3ids.xml": files["vm/h3ids.xml"]}, SITE))
    runner = VmRunner(Context(host="h3b", state_dir=tmp_path, lab=True, netns_prefix="h3vm-"))
    handle = None
    try:
        runner.plumb(s)
        moved_in = {"stats": {"packets_in": 42, "packets_out": 40, "dropped": 2, "outputs": {"out": 40}}}
        handle = runner.start(s, None, state=moved_in)
        assert "reference behaviour" in handle.message and "h3vm-h3b-h3ids" in handle.message
        # ready once its socket is bound; the moved-in counters show once its module is built
        wait_until(lambda: runner.poll(handle).packets == 42, 10, "the moved-in counters")
        assert runner.poll(handle).alive
        assert exchange(tap_name("h3ids"), 0x807, tcp_frame(443)) == 0x807
        exported = wait_until(  # the program writes its counters at most every 0.2 s
            lambda: (e := runner.export_state(handle))["stats"].get("packets_in", 0) >= 43 and e,
            10,
            "the frame in the exported counters",
        )
        assert exported["id"] == "h3ids" and exported["digest"] == s.digest
        assert exported["stats"]["packets_in"] == 43 and exported["stats"]["outputs"] == {"out": 41}
    finally:
        if handle is not None:
            runner.stop(handle)
        runner.unplumb(s)
        leftovers = (h3_namespaces(), h3_links())
        cleanup_devices()
    assert leftovers == ([], [])
    assert handle is not None and handle.proc is not None and handle.proc.poll() is not None
