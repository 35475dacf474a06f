"""`fsc compile` and `fsc trace` end to end: the output layout of the CLI
contract, byte-identical output, golden files of the OpenFlow rules and
placement of every example, `--previous` stability, trace JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fslang.incremental import CACHE
from tests.conftest import EXAMPLES, ROOT

FSC = [sys.executable, "-m", "fslang.cli"]
GOLDEN = ROOT / "tests" / "golden" / "compile"
UPDATE = os.environ.get("FSC_UPDATE_GOLDEN") == "1"


def fsc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(FSC + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def compile_to(example: Path, out: Path) -> subprocess.CompletedProcess:
    res = fsc("compile", str(example), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_compile_layout_and_golden(example: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    compile_to(example, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "placement.json" in files and "plan.json" in files
    plan = json.loads((out / "plan.json").read_text())
    assert plan["version"] == 1 and set(plan["files"]) == set(files) - {"plan.json", ".fsc-output", CACHE}
    for sw in plan["switches"]:
        assert f"openflow/{sw}.ofctl" in files and f"openflow/{sw}.json" in files
    gold = GOLDEN / example.stem
    for rel in (
        "placement.json",
        "plan.json",
        *[f for f in files if f.startswith("openflow/") and f.endswith(".ofctl")],
    ):
        text = (out / rel).read_text()
        target = gold / rel
        if UPDATE:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        assert target.exists(), f"no golden file {target}: run with FSC_UPDATE_GOLDEN=1 and review the diff"
        assert text == target.read_text(), f"{rel} differs from its golden file (FSC_UPDATE_GOLDEN=1 to accept)"


def test_compile_twice_is_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    compile_to(ROOT / "examples" / "campus.fs", a)
    compile_to(ROOT / "examples" / "campus.fs", b)
    for p in a.rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (b / p.relative_to(a)).read_bytes(), p


def test_previous_keeps_placement(tmp_path: Path) -> None:
    first = tmp_path / "first"
    compile_to(ROOT / "examples" / "campus.fs", first)
    again = fsc(
        "compile", str(ROOT / "examples" / "campus.fs"), "-o", str(tmp_path / "second"), "--previous", str(first)
    )
    assert again.returncode == 0, again.stderr
    assert "moved" not in again.stdout
    assert (first / "placement.json").read_text() == (tmp_path / "second" / "placement.json").read_text()


def test_failed_compile_writes_nothing_and_keeps_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    compile_to(ROOT / "examples" / "vpn_gateway.fs", out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = tmp_path / "bad.fs"
    bad.write_text((ROOT / "examples" / "vpn_gateway.fs").read_text().replace("cores 4", "cores 1"))
    res = fsc("compile", str(bad), "-o", str(out))
    assert res.returncode == 1 and "E070" in res.stderr and "Traceback" not in res.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_trace_json_contract() -> None:
    res = fsc(
        "trace",
        str(ROOT / "examples" / "campus.fs"),
        "from internet tcp 192.0.2.7:40000 -> 10.0.1.20:80",
        "--format",
        "json",
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) >= {"policy", "hops", "modules", "copies", "exit", "dropped"}
    assert doc["policy"] == "web_in" and doc["modules"][0] == "fw" and doc["modules"][1].startswith("ids#")
    assert doc["exit"]["edge"] == "dmz" and not doc["dropped"]
    assert doc["hops"][0] == {**doc["hops"][0], "switch": "core", "in_port": 47}
    assert "vlan_vid" not in doc["exit"]["headers"]


def test_trace_bad_packet_is_a_usage_error() -> None:
    res = fsc("trace", str(ROOT / "examples" / "campus.fs"), "from internet tcp 192.0.2.7 to 10.0.1.20")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "from EDGE" in res.stderr
