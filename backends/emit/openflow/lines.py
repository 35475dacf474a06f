"""A switch's flow entries as the lines of one or more formats, in file order:
by table, priority descending, match, and (for entries that agree on all
three) by the line itself.

Made for tables of tens of thousands of entries:

- one walk over the entries for all formats: each entry's field matches are
  read once, as plain ``(field, value, mask)`` tuples (reading the IR's
  objects, scattered over a large heap, is a good part of the cost);
- the sort key is never a rendering and never the IR's dataclasses (their
  generated ``__lt__``/``__hash__`` rebuild tuples on every call): a
  ``FieldMatch`` compares as its ``(field, value, mask)`` tuple and a
  ``Match`` as the tuple of those, so the flat key ``(table, -priority, field,
  value, mask, field, ...)`` orders exactly as the dataclasses do; only the
  rare runs of equal keys are settled by each format's text; entries that
  come in that order already (lowering's tables do) are only checked, each
  against the one before, and neither keyed nor sorted;
- what entries repeat is spelt once per walk, for all formats together: a
  field match (sites repeat eth_type, ip_proto, prefixes), the order of a list
  of field names (a site has a few dozen), an action list with its
  instructions (a few hundred).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from itertools import chain, starmap
from operator import itemgetter
from typing import Protocol

from compiler.flowir import Action, FlowEntry

SortKey = tuple["int | str | None", ...]
Ties = list[tuple[int, int]]


class LineFormat(Protocol):
    """How one format spells a flow entry, in parts a walk can cache."""

    #: what goes between two spelt field matches
    joiner: str

    def match_item(self, field: str, value: int, mask: int | None) -> str:
        """One field match (raises ``UnsupportedError``)."""

    def field_order(self, names: tuple[str, ...]) -> Sequence[int]:
        """Which field matches to write, in which order, given their names."""

    def actions(self, actions: tuple[Action, ...], goto: int | None, wm: tuple[int, int] | None) -> str:
        """Apply-actions with the instructions."""

    def line(self, e: FlowEntry, match: str, actions: str) -> str:
        """The entry's line from its spelt match and actions."""


def _cached(*fns: Callable[..., object]) -> Callable[..., tuple]:
    """The tuple of every ``fn(*args)``, cached for one walk (one and two
    formats, the usual cases, without a generator per miss: most field
    matches of a large table are misses, their metadata differ)."""
    if len(fns) == 1:
        (f0,) = fns
        return lru_cache(maxsize=None)(lambda *args: (f0(*args),))
    if len(fns) == 2:
        f0, f1 = fns
        return lru_cache(maxsize=None)(lambda *args: (f0(*args), f1(*args)))
    return lru_cache(maxsize=None)(lambda *args: tuple(fn(*args) for fn in fns))


def _picker(fmt: LineFormat, names: tuple[str, ...]) -> Callable[[Sequence[str]], Sequence[str]]:
    """What picks, from the spelt field matches, those ``fmt`` writes in its order."""
    positions = fmt.field_order(names)
    if len(positions) > 1:
        return itemgetter(*positions)  # in C
    return lambda spelt: [spelt[i] for i in positions]


def _follows(key: tuple, prev: tuple | None, pos: int, ties: Ties) -> bool:
    """Whether the entry at ``pos`` (its ``(table, -priority, fields)``
    key) comes in file order after the one before, extending ``ties`` when
    the two keys are equal.  That key orders as the flat one while no exact
    field (mask None) meets a masked one at the same place; that comparison
    raises, and the caller's sort decides."""
    try:
        if key == prev:
            if ties and ties[-1][1] == pos:
                ties[-1] = (ties[-1][0], pos + 1)
            else:
                ties.append((pos - 1, pos + 1))
        elif prev is not None and key < prev:
            return False
    except TypeError:
        return False
    return True


def _walk(entries: Sequence[FlowEntry], formats: Sequence[LineFormat]) -> tuple[Sequence[int], Ties, list[list[str]]]:
    """Positions of ``entries`` in file order, the runs of that order whose
    keys are equal (to settle by each format's text), and each format's lines
    (in ``entries``' order).

    Lowering hands over its tables in this order already (``lower._order``:
    the same key, ties by cookie), so the walk compares each entry's key with
    the one before as it goes; only entries out of order (other callers) get
    the flat sort keys and a sort."""
    if len(formats) == 2:
        return _walk2(entries, *formats)
    items = _cached(*[f.match_item for f in formats])
    pickers = _cached(*[partial(_picker, f) for f in formats])
    actions = _cached(*[f.actions for f in formats])
    joiners = [f.joiner for f in formats]
    no_match = ("",) * len(formats)
    columns: list[list[str]] = [[] for _ in formats]
    appenders = [(column.append, f.line) for column, f in zip(columns, formats)]
    ties: Ties = []
    prev: tuple | None = None
    in_order = True
    for pos, e in enumerate(entries):
        fields = e.match.fields  # (field, value, mask) named tuples
        if in_order:
            key = (e.table_id, -e.priority, fields)
            in_order = _follows(key, prev, pos, ties)
            prev = key
        if len(fields) > 1:
            spelt = zip(*starmap(items, fields))  # per format: its spelling of each field
            pick = pickers(tuple([f[0] for f in fields]))
            matches = [j.join(p(s)) for j, p, s in zip(joiners, pick, spelt)]
        else:
            matches = items(*fields[0]) if fields else no_match
        for (append, line), match, acts in zip(appenders, matches, actions(e.actions, e.goto_table, e.write_metadata)):
            append(line(e, match, acts))
    if in_order:
        return range(len(entries)), ties, columns
    keys = [_key(e) for e in entries]
    idx = sorted(range(len(keys)), key=keys.__getitem__)
    return idx, _ties(idx, keys), columns


def _walk2(
    entries: Sequence[FlowEntry], fmt0: LineFormat, fmt1: LineFormat
) -> tuple[Sequence[int], Ties, list[list[str]]]:
    """:func:`_walk` for two formats (a switch's ``.ofctl`` and ``.json``),
    unrolled: a one-field match (most of a large SELECT table: a decision
    list's metadata and bucket) is looked up in a plain dict by its field
    match; an entry whose action list is the very tuple of the entry before
    (the bucket entries of one choice share it) reuses its spelling, with
    no lookup (an action's generated ``__hash__`` is Python)."""
    items = _cached(fmt0.match_item, fmt1.match_item)
    pickers = _cached(partial(_picker, fmt0), partial(_picker, fmt1))
    actions = _cached(fmt0.actions, fmt1.actions)
    one: dict[tuple, tuple[str, str]] = {}
    one_get = one.get
    item0, item1 = fmt0.match_item, fmt1.match_item
    join0, join1 = fmt0.joiner, fmt1.joiner
    line0, line1 = fmt0.line, fmt1.line
    col0: list[str] = []
    col1: list[str] = []
    add0, add1 = col0.append, col1.append
    ties: Ties = []
    prev: tuple | None = None
    in_order = True
    last_acts: tuple | None = None
    last_goto: int | None = None
    last_wm: tuple[int, int] | None = None
    spelt_acts: tuple[str, str] = ("", "")
    for pos, e in enumerate(entries):
        fields = e.match.fields
        if in_order:
            key = (e.table_id, -e.priority, fields)
            in_order = _follows(key, prev, pos, ties)
            prev = key
        if len(fields) == 1:
            f = fields[0]
            spelt = one_get(f)
            if spelt is None:
                spelt = one[f] = (item0(*f), item1(*f))
            m0, m1 = spelt
        elif fields:
            s0, s1 = zip(*starmap(items, fields))
            p0, p1 = pickers(tuple([f[0] for f in fields]))
            m0, m1 = join0.join(p0(s0)), join1.join(p1(s1))
        else:
            m0 = m1 = ""
        acts, goto, wm = e.actions, e.goto_table, e.write_metadata
        if acts is not last_acts or goto != last_goto or wm != last_wm:
            spelt_acts = actions(acts, goto, wm)
            last_acts, last_goto, last_wm = acts, goto, wm
        add0(line0(e, m0, spelt_acts[0]))
        add1(line1(e, m1, spelt_acts[1]))
    if in_order:
        return range(len(entries)), ties, [col0, col1]
    keys = [_key(e) for e in entries]
    idx = sorted(range(len(keys)), key=keys.__getitem__)
    return idx, _ties(idx, keys), [col0, col1]


def _key(e: FlowEntry) -> SortKey:
    """The flat sort key: one object, not one per field; an exact match
    (mask None) sorts before every masked one."""
    return (
        e.table_id,
        -e.priority,
        *chain.from_iterable((f, v, -1 if m is None else m) for f, v, m in e.match.fields),
    )


def _ties(idx: Sequence[int], keys: list[SortKey]) -> Ties:
    """The (start, stop) runs of file order whose keys are equal."""
    ordered = [keys[i] for i in idx]
    ties: Ties = []
    for pos in [p for p in range(1, len(ordered)) if ordered[p] == ordered[p - 1]]:
        if ties and ties[-1][1] == pos:
            ties[-1] = (ties[-1][0], pos + 1)
        else:
            ties.append((pos - 1, pos + 1))
    return ties


def render_lines(entries: Sequence[FlowEntry], *formats: LineFormat) -> list[list[str]]:
    """Each format's lines of ``entries``, in file order."""
    idx, ties, columns = _walk(entries, formats)
    out = []
    for column in columns:
        lines = column if isinstance(idx, range) else [column[i] for i in idx]
        for a, b in ties:
            lines[a:b] = sorted(lines[a:b])
        out.append(lines)
    return out


def ordered_entries(entries: Sequence[FlowEntry], fmt: LineFormat) -> list[tuple[FlowEntry, str]]:
    """(entry, line) pairs in file order, for callers that need the entries too."""
    idx, ties, (column,) = _walk(entries, [fmt])
    pairs = [(entries[i], column[i]) for i in idx]
    for a, b in ties:
        pairs[a:b] = sorted(pairs[a:b], key=itemgetter(1))
    return pairs
