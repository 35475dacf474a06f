"""Writing an output directory without ever losing what is already there.

``fsc compile -o DIR`` writes DIR only when it is absent, empty, or an
earlier fsc output (it holds :data:`MARKER`, which lists the files fsc wrote).
Anything else is refused and left untouched: a folder of other files, a
regular file, a link (fsc never writes or deletes through a link).  An
earlier output that has gained files fsc did not write is replaced only with
``force``.  The new tree is built beside DIR and swapped in with renames, so
a failed or interrupted write leaves the old output whole.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

MARKER = ".fsc-output"


class OutputRefused(Exception):
    """DIR cannot or must not be written; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _inventory(d: Path) -> set[str]:
    """Every file and folder under ``d`` (relative, links not followed)."""
    out: set[str] = set()
    for root, dirs, files in os.walk(d, followlinks=False):
        rel = Path(root).relative_to(d)
        for name in dirs + files:
            out.add(str(rel / name) if str(rel) != "." else name)
    return out


def _earlier_output(d: Path) -> set[str] | None:
    """The files an earlier fsc output says it holds, or None if ``d`` is not one."""
    marker = d / MARKER
    try:
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return None
        doc = json.loads(marker.read_text(encoding="utf-8"))
        files = doc["files"]
        if doc.get("tool") != "fsc" or not isinstance(files, list):
            return None
        return {str(f) for f in files}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_target(out: Path, force: bool = False) -> bool:
    """Raise OutputRefused unless ``out`` may be written; True when it exists
    (and will be replaced)."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise OutputRefused(f"cannot look at {out}: {err.strerror or err}", "choose another -o folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputRefused(
            f"{out} is a link; fsc does not write through links", "give the real folder with -o, or a new folder name"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise OutputRefused(f"{out} exists and is not a folder", "give a new folder name with -o")
    present = _inventory(out)
    if not present:
        return True
    wrote = _earlier_output(out)
    if wrote is None:
        raise OutputRefused(
            f"{out} is not empty and is not an earlier fsc output; nothing in it was touched",
            "give a new or empty folder with -o (fsc only replaces its own earlier output)",
        )
    dirs = {str(Path(f).parent) for f in wrote} | {str(p) for f in wrote for p in Path(f).parents}
    extra = sorted(p for p in present - wrote - dirs - {MARKER, "."})
    if extra and not force:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise OutputRefused(
            f"{out} is an earlier fsc output, but holds files fsc did not write ({shown})",
            "move those files elsewhere, or pass --force to replace the whole folder",
        )
    return True


CHUNK = 1 << 20  # characters encoded and written at a time


def _write_text(path: Path, text: str) -> None:
    """``path.write_text(text, encoding="utf-8")``, a chunk at a time: a
    large switch's file is tens of megabytes, and encoding it whole makes a
    copy the system must map page by page (the same bytes either way: UTF-8
    spells each character on its own)."""
    with open(path, "w", encoding="utf-8") as f:
        for at in range(0, len(text), CHUNK):
            f.write(text[at : at + CHUNK])


def write(out: Path, files: dict[str, str], force: bool = False) -> None:
    """Write ``files`` (path -> text) as the folder ``out``; see the module doc."""
    out = Path(os.path.abspath(out))  # normalised, but links are not resolved
    exists = check_target(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise OutputRefused(
            f"cannot create {out}: {err.strerror or err}", "choose a folder you can write to with -o"
        ) from None
    old: Path | None = None
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_text(path, text)
        marker = {"tool": "fsc", "files": sorted(files)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an output folder is an ordinary one
        if exists:
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.rmdir(old)
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if old is not None:
                os.replace(old, out)  # put the earlier output back
                old = None
            raise
    except OSError as err:
        raise OutputRefused(
            f"cannot write {out}: {err.strerror or err}",
            "check the folder's permissions and free space; the earlier output is unchanged",
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
