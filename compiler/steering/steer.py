"""Steering: every policy's pipeline unfolded into the concrete paths the
platform carries out, and the tags that say where a packet is on its path.

Everything the *switch* decides (which replica, whether a `copy` takes the
flow, which `case` arm) is a function of the headers seen at ingress, so it
is decided there: one *combo* per set of decisions, with the constraint
(flow-hash buckets and header space) under which it applies.  What a
*module* decides (its output) is decided on the host, which maps
(tag, output) to the next tag.  Dispatches are interned by structure, so
policies with the same pipeline share tags.

The tag is an outer VLAN tag pushed at ingress and popped before exit: IP
headers stay matchable at every hop and a customer's own VLAN tag rides
inside untouched.  VID 1..4094 name dispatches; PCP bit 2 is reserved for
the version of a consistent update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from compiler import ir
from compiler.headerspace.matchset import MatchSet
from compiler.headerspace.space import HeaderSpace
from compiler.steering import flowhash
from compiler.steering.tags import EXIT_TAG, FIRST_TAG, FLOOD_TAG, MAX_VLAN_TAG, Encoding, generation_tag

ALL_BUCKETS = frozenset(range(flowhash.BUCKETS))
_T = TypeVar("_T")
# Decisions a switch takes where it classifies a packet (case arms, replica
# shares, copy shares, the continuations of every output of a module) multiply
# along a pipeline; one decision list holds at most this many choices (E0803).
# The examples need at most 8; the bound keeps a pathological pipeline from
# costing minutes and hundreds of thousands of entries.
MAX_CHOICES = 1024
# The header condition of one choice (a product of case arms, `by src`/`by
# dst` shares and module outputs) holds at most this many cubes and
# exclusions (the examples need at most 60): sequential port-range cases
# under address-hashed replicas multiplied into 100,000s of cubes and ran out
# of memory in a fuzzed 0.3 KB site.  Past it: E0803 as well.
MAX_TERMS = 4096
# ... and all the intersections of one policy's unfolding together at most
# this many term pairs (thousands of moderate products took 40 s otherwise).
MAX_TERM_PAIRS = 2_000_000


class TooManyChoices(Exception):
    """A pipeline whose decisions multiply past MAX_CHOICES at one point, or
    one choice whose header condition passes MAX_TERMS."""


# ---- dispatches: what happens to a packet handed to the switch ------------
def _cached_hash(obj: object, key: tuple) -> int:
    """The dataclass's own hash of ``key``, computed once: dispatches nest
    (a chain is a tree of visits) and are dictionary keys everywhere."""
    h = obj.__dict__.get("_hash")
    if h is None:
        h = hash(key)
        object.__setattr__(obj, "_hash", h)
    return h


@dataclass(frozen=True)
class Exit:
    """Leave by destination (pop the tag, then the exit table)."""


@dataclass(frozen=True)
class Dropped:
    pass


@dataclass(frozen=True)
class Visit:
    """Send to a module instance; its outputs lead to the next dispatches."""

    instance: str
    module: str
    next: tuple[tuple[str, Dispatch], ...]  # output label -> dispatch; missing = consumed (sink)
    reverse: bool = False  # the reply direction: the module judges the flow as its forward packet

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")  # before building the key: hashed millions of times, computed once
        if h is None:
            h = _cached_hash(self, (self.instance, self.module, self.next, self.reverse))
        return h


@dataclass(frozen=True)
class BoxVisit:
    """Send to an appliance; the packet comes back untagged and is
    recognised by its headers (entry ``occurrence``)."""

    box: str
    occurrence: int


@dataclass(frozen=True)
class Fork:
    """`copy`: a copy takes ``copy``, the original goes on with ``main``."""

    copy: Dispatch
    main: Dispatch

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")
        if h is None:
            h = _cached_hash(self, (self.copy, self.main))
        return h


Dispatch = Exit | Dropped | Visit | BoxVisit | Fork
EXIT, DROPPED = Exit(), Dropped()


@dataclass(frozen=True)
class Constraint:
    """When a combo applies: flow-hash buckets and a header space (which
    carries `case` arms and `by src`/`by dst` address bits)."""

    buckets: frozenset[int] = ALL_BUCKETS
    space: MatchSet | None = None  # None = everything
    #: the `by src` / `by dst` shares ``space`` holds (address hash buckets), and whether it holds
    #: anything else (a `case` guard): an unguarded list is spelt one hash at a time (lowering)
    src: frozenset[int] = ALL_BUCKETS
    dst: frozenset[int] = ALL_BUCKETS
    guarded: bool = False

    def pairs(self, other: Constraint) -> int:
        """The term pairs ``self & other`` intersects (what MAX_TERM_PAIRS counts)."""
        if other.space is None or self.space is None:
            return 0
        return len(self.space.terms) * len(other.space.terms)

    def __and__(self, other: Constraint) -> Constraint:
        if other.space is None or self.space is None:
            space = self.space if other.space is None else other.space
        else:
            if self.pairs(other) > 16 * MAX_TERMS:
                raise TooManyChoices()
            space = self.space & other.space
            if len(space.terms) + sum(len(t.excluded) for t in space.terms) > MAX_TERMS:
                raise TooManyChoices()
        return Constraint(
            _meet(self.buckets, other.buckets),
            space,
            _meet(self.src, other.src),
            _meet(self.dst, other.dst),
            self.guarded or other.guarded,
        )

    def satisfiable(self) -> bool:
        return bool(self.buckets) and (self.space is None or not self.space.is_empty())


def _meet(a: frozenset[int], b: frozenset[int]) -> frozenset[int]:
    # most constraints take every bucket: no set intersection for them (the same set either way)
    return b if a is b or a is ALL_BUCKETS else a if b is ALL_BUCKETS else a & b


TRUE = Constraint()
Combos = list[tuple[Constraint, Dispatch]]
"""Ordered: a packet takes the first combo whose constraint it meets.  Every
list a pipeline unfolds to covers every packet, so products taken in
lexicographic order keep first-match right (an earlier stage's choice first)."""
UseMemo = dict[tuple[str, str, bool, int], tuple[Combos, Combos, int]]
"""(module, hash_by, reverse, id of the continuations) -> (those
continuations, the stage's combos, the term pairs unfolding it intersected)."""


@lru_cache(maxsize=256)
def copy_chosen(percent: float) -> frozenset[int]:
    """The buckets a `copy P%` takes (the same set for every copy of P%)."""
    return frozenset(b for b in range(flowhash.BUCKETS) if flowhash.copies(b, percent))


@lru_cache(maxsize=4096)
def addr_bucket_space(by: str, buckets: frozenset[int]) -> MatchSet:
    """Packets whose `src`/`dst` hash is in ``buckets``: low address bits."""
    out = HeaderSpace.empty()
    v4 = HeaderSpace.field_eq("eth_type", 0x0800)
    v6 = HeaderSpace.field_eq("eth_type", 0x86DD)
    for b in sorted(buckets):
        out = out | (v4 & HeaderSpace.field_masked(f"ipv4_{by}", b, flowhash.MASK))
        out = out | (v6 & HeaderSpace.field_masked(f"ipv6_{by}", b, flowhash.MASK))
    if 0 in buckets:
        out = out | (HeaderSpace.all() - (v4 | v6))
    return MatchSet.of(out)


@dataclass
class Entry:
    """A place where the switch classifies a packet: a policy's ingress, or
    the return from a box (``box`` set)."""

    id: int
    policy: str
    direction: ir.Direction
    combos: Combos
    box: str | None = None


@dataclass
class Unfolder:
    """Unfolds pipelines in continuation-passing style (right to left)."""

    site: ir.Site
    weights: dict[str, int]
    selectors: Selectors
    reverse: bool = False
    policy: str = ""
    entries: list[Entry] = field(default_factory=list)
    in_copy: int = 0  # a copy's own path keeps its written order (it ends in its sink)
    pairs_used: int = 0  # term pairs this unfolding intersected so far (at most MAX_TERM_PAIRS)
    # shared by the Unfolders of one plan: modules by name, and module stages already unfolded
    # (UseMemo); both are filled on first use when not given
    modules: dict[str, ir.Module] = field(default_factory=dict)
    memo: UseMemo = field(default_factory=dict)
    copy_end: Combos = field(default_factory=lambda: [(TRUE, DROPPED)])  # where a copy's path ends

    def meet(self, *constraints: Constraint) -> Constraint:
        """The conjunction of ``constraints``, its term pairs counted against
        this unfolding's budget (one Unfolder per policy and direction, so no
        compile or policy spends another's)."""
        out = constraints[0]
        for c in constraints[1:]:
            if c is TRUE or out is TRUE:  # x & TRUE is x (no pairs): most stages choose nothing
                out = out if c is TRUE else c
                continue
            self.pairs_used += out.pairs(c)
            if self.pairs_used > MAX_TERM_PAIRS:
                raise TooManyChoices()
            out = out & c
        return out

    def pipeline(self, p: ir.Pipeline, conts: Combos) -> Combos:
        out: Combos = getattr(self, "u_" + type(p).__name__)(p, conts)
        return _bounded(out)

    def u_Pass(self, p: ir.Pass, conts: Combos) -> Combos:
        return conts

    def u_Drop(self, p: ir.Drop, conts: Combos) -> Combos:
        return [(TRUE, DROPPED)]

    def u_Serial(self, p: ir.Serial, conts: Combos) -> Combos:
        stages = reversed(p.stages) if self.reverse and not self.in_copy else p.stages
        for stage in reversed(list(stages)):
            conts = self.pipeline(stage, conts)
        return conts

    def u_Copy(self, p: ir.Copy, conts: Combos) -> Combos:
        chosen = copy_chosen(p.percent)
        self.in_copy += 1
        copy_paths = self.pipeline(p.target, self.copy_end)
        self.in_copy -= 1
        out: Combos = []
        for c, d in conts:
            for cc, cd in copy_paths:
                k = self.meet(c, cc, Constraint(chosen))
                if k.satisfiable():
                    out.append((k, Fork(cd, d) if not isinstance(cd, Dropped) else d))
                    _bounded(out)
            k = self.meet(c, Constraint(ALL_BUCKETS - chosen))
            if k.satisfiable():
                out.append((k, d))
        return out

    def u_Case(self, p: ir.Case, conts: Combos) -> Combos:
        """Arms in written order, each with its own guard only: combos are
        ordered (the switch gives earlier combos higher priority), so a later
        arm needs no "minus the earlier guards" and `else` no complement."""
        out: Combos = []
        has_else = False
        for guard, body in p.arms:
            has_else = guard is None
            arm = TRUE if guard is None else Constraint(space=guard, guarded=True)
            for c, d in self.pipeline(body, conts):
                k = self.meet(c, arm)
                if k.satisfiable():
                    out.append((k, d))
                    _bounded(out)
            if has_else:
                break
        if not has_else:
            out.extend(conts)
        return out

    def u_Use(self, p: ir.Use, conts: Combos) -> Combos:
        if p.is_box:
            entry = self._entry(conts, box=p.target)
            return [(TRUE, BoxVisit(p.target, entry.id))]
        if p.branches is not None:
            return self._use(p, conts)
        # A module stage without branches unfolds to the same combos for the
        # same continuations (the same list object: a memoised later stage
        # returns it), whatever policy it is in: a site where every policy
        # has a chain of its own repeats each (stage, rest of chain) many
        # times.  The term pairs it intersected are counted again on a hit.
        key = (p.target, p.hash_by, self.reverse, id(conts))
        hit = self.memo.get(key)
        if hit is not None:
            self.pairs_used += hit[2]
            if self.pairs_used > MAX_TERM_PAIRS:
                raise TooManyChoices()
            return hit[1]
        before = self.pairs_used
        out = self._use(p, conts)
        self.memo[key] = (conts, out, self.pairs_used - before)  # conts kept: its id stays its own
        return out

    def _use(self, p: ir.Use, conts: Combos) -> Combos:
        module = self.modules.get(p.target)
        if module is None:
            module = self.modules[p.target] = self.site.module(p.target)
        instances = module.instance_names()
        by = flowhash.reverse_by(p.hash_by) if self.reverse else p.hash_by
        out: Combos = []
        per_output = self._outputs(module, p, conts)
        shares = flowhash.bucket_sets([self.weights.get(i, 1) for i in instances])
        for inst, share in zip(instances, shares):
            pick = TRUE
            if len(instances) > 1:
                if by == "flow":
                    pick = Constraint(share)
                else:
                    space = addr_bucket_space(by, share)
                    pick = Constraint(space=space, src=share) if by == "src" else Constraint(space=space, dst=share)
            for c, nexts in per_output:
                k = self.meet(c, pick)
                if k.satisfiable():
                    out.append((k, Visit(inst, module.name, nexts, self.reverse)))
                    _bounded(out)
        return out

    def _outputs(self, module: ir.Module, p: ir.Use, conts: Combos) -> list[tuple[Constraint, tuple]]:
        """The product of each output's continuation combos."""
        if module.is_sink:
            return [(TRUE, ())]
        branches = dict(p.branches or ())
        results: list[tuple[Constraint, tuple]] = [(TRUE, ())]
        cache: dict[int, Combos] = {}
        for out in module.outputs:
            body = branches.get(out, branches.get(None)) if p.branches is not None else None
            if body is None:
                combos = conts
            else:
                key = id(body)
                if key not in cache:
                    cache[key] = self.pipeline(body, conts)
                combos = cache[key]
            nxt = []
            for c, acc in results:
                for c2, d in combos:
                    k = self.meet(c, c2)
                    if k.satisfiable():
                        nxt.append((k, acc + ((out, d),)))
                        _bounded(nxt)
            results = nxt
        return results

    def _entry(self, combos: Combos, box: str | None = None) -> Entry:
        entry = Entry(self.selectors.intern(combos), self.policy, "reverse" if self.reverse else "forward", combos, box)
        self.entries.append(entry)
        return entry


class Selectors:
    """Decision lists shared by structure: two entries (of one policy or of
    two) whose combos are equal get one id, so the switch holds their SELECT
    rules once (a site reuses a few chains for many policies)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[tuple[Constraint, Dispatch], ...], int] = {}
        self.combos: list[Combos] = []

    def intern(self, combos: Combos) -> int:
        key = tuple(combos)
        sid = self.ids.get(key)
        if sid is None:
            sid = self.ids[key] = len(self.combos)
            self.combos.append(combos)
        return sid


@dataclass
class SteeringPlan:
    entries: list[Entry]  # per policy and direction: the ingress entry, then its box returns
    ingress: list[tuple[ir.Policy, str, Entry]]  # (policy, direction, entry) in first-match order
    tags: dict[Dispatch, int]  # interned dispatches sent over the wire -> tag value (generation folded in)
    generation: int = 0  # 0 or 1: folded into every tag, entry and cookie
    selectors: list[Combos] = field(default_factory=list)  # by entry id (shared by equal decision lists)
    labelled: frozenset[Dispatch] = frozenset()  # dispatches whose tag travels as an MPLS label (steering.tags)
    vlan_overflow: int = 0  # dispatches that must be VLAN ids beyond the VLAN space (E0802)
    too_many_choices: tuple[str, ...] = ()  # policies whose decisions multiply past MAX_CHOICES (E0803)

    def is_label(self, d: Dispatch) -> bool:
        return d in self.labelled

    def tag(self, d: Dispatch) -> int:
        return self.tags[d]

    @property
    def exit_tag(self) -> int:  # exit and flood are VLAN ids whatever the dispatch tags are
        return generation_tag(EXIT_TAG, self.generation)

    @property
    def flood_tag(self) -> int:
        return generation_tag(FLOOD_TAG, self.generation)


def _bounded(out: list[_T]) -> list[_T]:
    if len(out) > MAX_CHOICES:
        raise TooManyChoices()
    return out


def plan(site: ir.Site, weights: dict[str, int], generation: int = 0) -> SteeringPlan:
    """Unfold every policy (and the reverse of symmetric ones); tags of
    ``generation``.  A pipeline is unfolded once per direction however many
    policies use it."""
    entries: list[Entry] = []
    ingress: list[tuple[ir.Policy, str, Entry]] = []
    selectors = Selectors()
    memo: dict[tuple[ir.Pipeline, bool], tuple[Combos, list[Entry]]] = {}
    modules = {m.name: m for m in site.modules}
    uses: UseMemo = {}
    # the continuations unfoldings start from: one list each for the plan, so memo keys (by id) meet
    pipeline_end: Combos = [(TRUE, EXIT)]
    copy_end: Combos = [(TRUE, DROPPED)]
    too_many: list[ir.Policy] = []
    for policy in site.policies:
        for reverse in (False, True) if policy.symmetric else (False,):
            direction: ir.Direction = "reverse" if reverse else "forward"
            hit = memo.get((policy.pipeline, reverse))
            if hit is None:
                u = Unfolder(
                    site, weights, selectors, reverse, policy.name, modules=modules, memo=uses, copy_end=copy_end
                )
                try:
                    hit = (u.pipeline(policy.pipeline, pipeline_end), u.entries)
                except TooManyChoices:
                    too_many.append(policy)
                    hit = ([(TRUE, DROPPED)], [])
                memo[(policy.pipeline, reverse)] = hit
            combos, boxes = hit
            entry = Entry(selectors.intern(combos), policy.name, direction, combos)
            entries.append(entry)
            entries.extend(Entry(b.id, policy.name, direction, b.combos, b.box) for b in boxes)
            ingress.append((policy, direction, entry))
    found: dict[Dispatch, None] = {}
    for combos in selectors.combos:
        for _, d in combos:
            _collect(d, found)
    labelled: frozenset[Dispatch] = frozenset()
    if len(found) + FIRST_TAG - 1 > MAX_VLAN_TAG:
        keep = _untagged_by_switch(found)
        labelled = frozenset(d for d in found if d not in keep)
    tags: dict[Dispatch, int] = {}
    counters = {False: FIRST_TAG, True: FIRST_TAG}
    for d in found:
        label = d in labelled
        tags[d] = generation_tag(counters[label], generation, Encoding.MPLS if label else Encoding.VLAN)
        counters[label] += 1
    overflow = max(0, counters[False] - 1 - MAX_VLAN_TAG)
    return SteeringPlan(
        entries, ingress, tags, generation, selectors.combos, labelled, overflow, tuple(p.name for p in too_many)
    )


def _untagged_by_switch(found: dict[Dispatch, None]) -> set[Dispatch]:
    """The dispatches that must travel as VLAN ids: a box visit (the switch
    takes the tag off before the box), a fork whose legs lead to the exit
    table or a box, and every dispatch a fork sets in the same actions as
    one of those (a fork's legs are tagged alike)."""
    index = {d: i for i, d in enumerate(found)}  # union-find over ints: a dispatch's hash walks its whole tree
    parent = list(range(len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving: the components, not the roots, are the answer
            i = parent[i]
        return i

    needs: list[int] = []
    for d, i in index.items():
        if isinstance(d, BoxVisit):
            needs.append(i)
        if isinstance(d, Fork):
            legs = _legs(d)
            if any(isinstance(leg, (Exit, BoxVisit)) for leg in legs):
                needs.append(i)
            for leg in legs:
                if isinstance(leg, (Visit, BoxVisit, Fork)):
                    a, b = root(i), root(index[leg])
                    if a != b:
                        parent[b] = a
    vlan_roots = {root(i) for i in needs}
    return {d for d, i in index.items() if root(i) in vlan_roots}


def _legs(f: Fork) -> list[Dispatch]:
    """Every dispatch a fork's actions set, nested forks included."""
    out: list[Dispatch] = []
    for part in (f.copy, f.main):
        out.append(part)
        if isinstance(part, Fork):
            out += _legs(part)
    return out


def _collect(d: Dispatch, found: dict[Dispatch, None]) -> None:
    """Every dispatch that travels tagged (to a host, a box, a fork), each
    after the ones it leads to (so numbering is stable)."""
    if isinstance(d, (Exit, Dropped)) or d in found:
        return
    if isinstance(d, Visit):
        for _, nxt in d.next:
            _collect(nxt, found)
    elif isinstance(d, Fork):
        _collect(d.copy, found)
        _collect(d.main, found)
    found[d] = None
