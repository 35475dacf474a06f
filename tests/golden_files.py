"""Golden-file comparison shared by the artifact tests: one directory per
example, one file per emitted artifact; FSC_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

UPDATE = os.environ.get("FSC_UPDATE_GOLDEN") == "1"


def check_golden(files: dict[str, str], gold: Path, suffix: str, stem: str) -> None:
    """``files`` (output path -> text) must equal the ``*suffix`` files in ``gold``, by base name."""
    if UPDATE:
        if gold.exists():
            shutil.rmtree(gold)
        for rel, text in files.items():
            target = gold / Path(rel).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
    have = sorted(p.name for p in gold.glob(f"*{suffix}")) if gold.exists() else []
    assert have == sorted(Path(rel).name for rel in files), (
        f"golden files of {stem} differ in number or name (FSC_UPDATE_GOLDEN=1 to accept)"
    )
    for rel, text in files.items():
        assert text.encode("utf-8") == (gold / Path(rel).name).read_bytes(), (
            f"{stem}/{rel} differs from its golden file (FSC_UPDATE_GOLDEN=1 to accept)"
        )
