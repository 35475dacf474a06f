"""The examples corpus: every site checks clean (no errors, no warnings)."""

from __future__ import annotations

import subprocess
import sys

from fslang.api import load
from tests.conftest import EXAMPLES, ROOT


def test_corpus_has_the_scenarios() -> None:
    names = {p.stem for p in EXAMPLES}
    assert len(names) >= 6
    assert {
        "campus",
        "ids_farm",
        "vpn_gateway",
        "ids_prefilter",
        "hetero",
        "legacy_box",
        "trial_copy",
        "two_switch",
        "ipv6",
        "dual_stack_std",
    } <= names


def test_example_checks_clean(example) -> None:
    result = load(example)
    assert result.site is not None, [f"{d.code} {d.message}" for d in result.diagnostics]
    assert result.diagnostics == [], [f"{d.code} {d.message}" for d in result.diagnostics]


def test_fsc_check_cli_exit_codes(tmp_path) -> None:
    fsc = [sys.executable, "-m", "fslang.cli"]
    ok = subprocess.run(fsc + ["check", str(ROOT / "examples" / "vpn_gateway.fs")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.fs"
    bad.write_text("site s\nswitch sw dpid 1\nedge e at sw:1 default\npolicy p via idz\n")
    out = subprocess.run(fsc + ["check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{bad}:4:14: error[E0203]: unknown module `idz`" in out.stderr
    assert "Traceback" not in out.stderr
    usage = subprocess.run(fsc + ["check"], capture_output=True, text=True)
    assert usage.returncode == 2
