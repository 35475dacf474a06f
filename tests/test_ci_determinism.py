"""CI draws the same examples on every machine and every run: the ``ci``
Hypothesis profile is the default (tests/conftest.py), its draws do not depend
on PYTHONHASHSEED, a test that turns randomness back on is refused, and no
test uses the random module unseeded. ``explore`` (`make explore`) draws at
random, FSC_EXPLORE_SCALE (10) times as many."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import CI_EXAMPLES, ROOT

DRAWS = """
import os
from pathlib import Path

from hypothesis import given, settings, strategies as st

OUT = Path(os.environ["FSC_DRAWS"])


@given(st.frozensets(st.text("abc", max_size=3), max_size=4), st.integers(), st.randoms())
def test_draws(s, n, rnd):
    with OUT.open("a") as f:
        f.write(repr((sorted(s), n, rnd.random())) + "\\n")


@settings(max_examples=7)
@given(st.integers())
def test_own_budget(n):
    with OUT.with_suffix(".own").open("a") as f:
        f.write(f"{n}\\n")
"""


def run_draws(tmp: Path, name: str, *, hashseed: str = "0", profile: str | None = None, extra: str = "") -> Path:
    """Run DRAWS (plus ``extra``) under pytest with the suite's conftest; returns the draws file."""
    d = tmp / name
    d.mkdir()
    (d / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    (d / "test_draws.py").write_text(DRAWS + extra)
    out = d / "draws.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hashseed, "FSC_DRAWS": str(out)}
    env["FSC_EXPLORE_SCALE"] = "3"
    env.pop("HYPOTHESIS_PROFILE", None)
    if profile:
        env["HYPOTHESIS_PROFILE"] = profile
    cp = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(d)],
        cwd=d,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (d / "pytest.out").write_text(cp.stdout + cp.stderr)
    return out


def test_ci_is_the_default_profile() -> None:
    assert settings.get_current_profile_name() == os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if settings.get_current_profile_name() == "ci":
        s = settings.default
        assert s.derandomize and s.database is None and s.deadline is None and s.print_blob
        assert s.max_examples == CI_EXAMPLES


def test_ci_draws_do_not_depend_on_the_hash_seed_or_the_run(tmp_path: Path) -> None:
    a = run_draws(tmp_path, "a", hashseed="1")
    b = run_draws(tmp_path, "b", hashseed="2")
    assert "2 passed" in (tmp_path / "a" / "pytest.out").read_text(), (tmp_path / "a" / "pytest.out").read_text()
    draws = a.read_text().splitlines()
    assert len(draws) == CI_EXAMPLES and len(set(draws)) > CI_EXAMPLES // 2
    assert b.read_text() == a.read_text()
    assert len(a.with_suffix(".own").read_text().split()) == 7  # a test's own budget holds under ci


def test_explore_draws_at_random_and_more(tmp_path: Path) -> None:
    """(FSC_EXPLORE_SCALE is 3 here; `make explore` leaves the default, 10.)"""
    a = run_draws(tmp_path, "a", profile="explore")
    b = run_draws(tmp_path, "b", profile="explore")
    assert "2 passed" in (tmp_path / "a" / "pytest.out").read_text(), (tmp_path / "a" / "pytest.out").read_text()
    assert len(a.read_text().splitlines()) == 3 * CI_EXAMPLES
    assert len(a.with_suffix(".own").read_text().split()) == 21  # explicit budgets are scaled too
    assert a.read_text() != b.read_text()


def test_ci_refuses_a_test_that_turns_randomness_back_on_or_runs_long(tmp_path: Path) -> None:
    extra = (
        "\n\n@settings(derandomize=False)\n@given(st.integers())\ndef test_random(n):\n    pass\n"
        "\n\n@settings(max_examples=301)\n@given(st.integers())\ndef test_long(n):\n    pass\n"
        "\n\n@settings(database=None, max_examples=300)\n@given(st.integers())\ndef test_fine(n):\n    pass\n"
    )
    run_draws(tmp_path, "r", extra=extra)
    out = (tmp_path / "r" / "pytest.out").read_text()
    assert "set derandomize=False or a database" in out and "more than 300 examples" in out, out
    refused = out.split("(CI would be slow): ")[1].split(" (leave")[0].split(", ")
    assert refused == ["test_draws.py::test_random", "test_draws.py::test_long"], out


# ---- no unseeded randomness in the suite's own code -------------------------------------------

GLOBAL_RNG = {"random", "randint", "randrange", "choice", "choices", "shuffle", "sample", "uniform", "getrandbits"}


def unseeded(tree: ast.AST) -> list[tuple[int, str]]:
    """Uses of randomness that differ from run to run: the random module's
    global generator, ``random.Random()`` / ``random.seed()`` without a seed,
    os.urandom, secrets, uuid4, a true-random Hypothesis ``randoms()``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        name = node.func.attr
        if owner == "random" and (name in GLOBAL_RNG or (name in {"Random", "seed"} and not node.args)):
            found.append((node.lineno, f"random.{name}"))
        elif (owner, name) in {("os", "urandom"), ("uuid", "uuid4")} or owner == "secrets":
            found.append((node.lineno, f"{owner}.{name}"))
        elif name == "randoms" and any(
            k.arg == "use_true_random" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            for k in node.keywords
        ):
            found.append((node.lineno, "randoms(use_true_random=...)"))
    return found


def test_the_checker_sees_unseeded_randomness() -> None:
    src = "import random, os\nrandom.shuffle(x)\nr = random.Random()\nos.urandom(4)\nst.randoms(use_true_random=True)\n"
    assert [n for _, n in unseeded(ast.parse(src))] == [
        "random.shuffle",
        "random.Random",
        "os.urandom",
        "randoms(use_true_random=...)",
    ]
    assert unseeded(ast.parse("random.Random(7).shuffle(x)\nst.randoms(use_true_random=False)\n")) == []


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "tests").glob("*.py")))
def test_no_unseeded_randomness_in_tests(path: str) -> None:
    tree = ast.parse((ROOT / "tests" / path).read_text(), path)
    assert unseeded(tree) == [], f"{path}: seed it (random.Random(SEED)) or draw it with Hypothesis"


EXIT_QUIET = """
from fslang import api  # noqa: F401
import backends.emit.click.generate  # noqa: F401 (module-level header spaces)


def test_nothing_but_the_imports():
    pass
"""


def test_a_pytest_process_exits_without_errors(tmp_path: Path) -> None:
    """The exit's last garbage collection freed a CUDD manager before its
    diagrams: dd raised in its ``__dealloc__``, printed as a bare "Error in
    sys.excepthook" at the end of `make test`'s runs (compiler/headerspace/bdd.py)."""
    (tmp_path / "test_quiet.py").write_text(EXIT_QUIET)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={tmp_path}", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed" in p.stdout, p.stdout
    assert "Error in sys.excepthook" not in p.stdout + p.stderr, p.stderr
    assert "Exception ignored" not in p.stdout + p.stderr, p.stderr
