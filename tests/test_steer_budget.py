"""E0803's term-pair bound (compiler/steering/steer.py, MAX_TERM_PAIRS) is a
budget of each unfolding (one policy, one direction), held by its Unfolder:
nothing of it is left over from an earlier policy or an earlier compile in
the same process (the controller recompiles in one process for its life)."""

from __future__ import annotations

import pytest

from compiler.check.frontend import run
from compiler.pipeline import compile_site
from compiler.steering import steer
from fslang import api

CASES = (
    "case { dscp 1: pass, dscp 2: pass, else: pass } >> case { src port 1: pass, src port 2: pass, else: pass }"
    " >> case { dst net 10.1.0.0/16: pass, dst net 10.2.0.0/16: pass, else: pass }"
)
SITE = f"""site s
switch sw dpid 0x1 ports 8
host h at sw:1 cores 4 memory 8GiB
edge out at sw:2 default
edge lan at sw:3 net 10.0.0.0/8
policy p from lan via {CASES}
policy q from out via {CASES}
"""


def pairs_of_one_policy() -> int:
    """The term pairs unfolding `p` costs (q's pipeline is the same)."""
    front = run("s.fs", SITE)
    assert front.site is not None, [d.message for d in front.diagnostics]
    c = compile_site(front.site)
    assert c.ok
    policy = next(p for p in front.site.policies if p.name == "p")
    u = steer.Unfolder(front.site, c.weights(), steer.Selectors(), False, "p")
    u.pipeline(policy.pipeline, [(steer.TRUE, steer.EXIT)])
    assert u.pairs_used > 0
    return u.pairs_used


def codes(text: str) -> set[str]:
    return {d.code for d in api.build("s.fs", text, render_files=False).diagnostics}


def test_each_compile_and_each_policy_gets_the_whole_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    need = pairs_of_one_policy()
    monkeypatch.setattr(steer, "MAX_TERM_PAIRS", need)  # exactly one policy's unfolding
    # two policies of one compile, then a second compile: each unfolding has its full budget
    distinct = SITE.replace("policy q from out via", "policy q from out match tcp via")
    assert "E0803" not in codes(distinct)
    assert "E0803" not in codes(distinct)
    # one pair fewer: the bound is exact, and holds in every compile
    monkeypatch.setattr(steer, "MAX_TERM_PAIRS", need - 1)
    assert "E0803" in codes(distinct)
    assert "E0803" in codes(distinct)


def test_a_refused_unfolding_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compile that ran out of its budget (E0803) costs the next one nothing."""
    need = pairs_of_one_policy()
    monkeypatch.setattr(steer, "MAX_TERM_PAIRS", need - 1)
    assert "E0803" in codes(SITE)
    monkeypatch.setattr(steer, "MAX_TERM_PAIRS", need)
    assert "E0803" not in codes(SITE)
