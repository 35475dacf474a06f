"""Shared test helpers: the examples corpus and quick site loading; and the
Hypothesis profiles.

``ci`` (the default, what `make test` runs): derandomized (every run draws the
same examples, whatever the machine, the hash seed or the example database),
no deadline (a loaded 2-core machine is slow, not wrong), a bounded number of
examples per test and, on a failure, the blob that reproduces it.

``explore`` (`make explore`, or HYPOTHESIS_PROFILE=explore): random draws,
each test's example budget multiplied by FSC_EXPLORE_SCALE (default 10), and
the example database on, so a failure found once is replayed first next time.
Random exploration is its own command, never part of CI.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.fs"))

#: examples per test under ``ci`` for tests that do not set their own budget
CI_EXAMPLES = 50
#: the most a test may ask for under ``ci`` (more is what `make explore` is for)
CI_MAX_EXAMPLES = 300
#: how many times each test's budget ``explore`` runs
EXPLORE_SCALE = float(os.environ.get("FSC_EXPLORE_SCALE", "10"))

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=CI_EXAMPLES,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],  # it depends on the machine's load, not on the code
)
settings.register_profile(
    "explore",
    derandomize=False,
    deadline=None,
    max_examples=int(CI_EXAMPLES * EXPLORE_SCALE),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# Loaded on import, before any test module builds its settings (they inherit from
# the profile). This module is imported twice (as pytest's conftest and as
# tests.conftest); the second import must not undo `--hypothesis-profile`.
# Hypothesis itself loads a profile named "ci" when it sees a CI environment
# (CI, GITHUB_ACTIONS, ...), so "ci" here may be that one rather than a choice:
# HYPOTHESIS_PROFILE still wins over it.
if settings.get_current_profile_name() in ("default", "ci"):
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``ci``, refuse a Hypothesis test that turns derandomizing or the
    example database back on (its draws would differ between machines or
    runs) or asks for more than CI_MAX_EXAMPLES (the suite must stay quick).
    Under ``explore``, tests that fix their own ``max_examples`` get that
    budget times FSC_EXPLORE_SCALE too (a profile alone cannot raise an
    explicit per-test setting)."""
    profile = settings.get_current_profile_name()
    seen: set[int] = set()
    bad: list[str] = []
    for item in items:
        fn = getattr(item, "obj", None)
        if not getattr(fn, "is_hypothesis_test", False) or id(fn) in seen:
            continue
        seen.add(id(fn))
        own = fn._hypothesis_internal_use_settings  # type: ignore[union-attr]
        if profile == "ci" and (not own.derandomize or own.database is not None or own.max_examples > CI_MAX_EXAMPLES):
            bad.append(item.nodeid)
        elif profile == "explore" and own.max_examples != settings.default.max_examples:
            scaled = settings(own, max_examples=max(1, int(own.max_examples * EXPLORE_SCALE)))
            fn._hypothesis_internal_use_settings = scaled  # type: ignore[union-attr]
    if bad:
        raise pytest.UsageError(
            "these Hypothesis tests set derandomize=False or a database (CI would draw differently on "
            f"each machine) or more than {CI_MAX_EXAMPLES} examples (CI would be slow): "
            + ", ".join(bad)
            + " (leave randomness to the profiles in tests/conftest.py and long hunts to `make explore`)"
        )


def example_ids() -> list[str]:
    return [p.stem for p in EXAMPLES]


@pytest.fixture(params=EXAMPLES, ids=example_ids())
def example(request: pytest.FixtureRequest) -> Path:
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _private_client_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`fsc apply`'s client cache (fslang/cli/applycache.py) goes to a
    directory of this run, not the user's ~/.cache (CLI subprocesses inherit it)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(scope="module")
def h3_devices() -> Iterator[None]:
    """The agent tests share the h3 host, instance and device names (and each
    clean-up deletes every `fs-h3` device): one such module at a time across
    the xdist workers (`--dist loadscope` keeps a module on one worker)."""
    with open("/tmp/fsc-h3-devices.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
