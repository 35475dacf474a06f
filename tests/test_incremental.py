"""A one-policy edit compiled with ``--previous`` gives, file for file, the
OpenFlow rules of a full compile of the edited site (both through the real
command line)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.compile_scale import edit_one
from benchmarks.gen_site import generate
from tests.test_compile_cli import fsc


def _openflow(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "openflow").iterdir())}


def test_edit_with_previous_matches_a_full_compile(tmp_path: Path) -> None:
    site = tmp_path / "a" / "synth.fs"
    edited = tmp_path / "b" / "synth.fs"  # same file name: same site and file names
    site.parent.mkdir()
    edited.parent.mkdir()
    text = generate(300, 12, 3, seed=4)
    site.write_text(text)
    edited.write_text(edit_one(text, 300))
    assert edited.read_text() != text
    for args in (
        (str(site), "-o", str(tmp_path / "before")),
        (str(edited), "-o", str(tmp_path / "full")),
        (str(edited), "-o", str(tmp_path / "incremental"), "--previous", str(tmp_path / "before")),
    ):
        r = fsc("compile", *args)
        assert r.returncode == 0, r.stderr
    full, incremental = _openflow(tmp_path / "full"), _openflow(tmp_path / "incremental")
    assert len(full) >= 6 and full == incremental
    assert _openflow(tmp_path / "before") != full  # the edit reached the rules
