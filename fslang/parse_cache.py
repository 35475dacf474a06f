"""Statement shapes: parse each token shape once with Lark, replay the rest.

A site repeats a few statement shapes thousands of times (`policy NAME from
NAME match dst net PREFIX4 and tcp via NAME >> NAME`), and the Lark LALR
parse costs most of the time of parsing a large site.  The statement is
scanned with the grammar's own terminals (the order and keyword handling of
Lark's standard lexer); the tuple of token types is the shape.  The first
statement of a shape is parsed by Lark; when every token its tree keeps lies
exactly on a scanned token of the same type, the tree becomes a template
whose leaves point at token indices, and later statements of that shape get
the same tree with their own tokens.  The parser's states depend only on the
token types, and the contextual lexer picks, among the terminals a state
accepts, the first that the full scan would pick, so the replayed tree is
the one Lark would build.  Statements whose shape fails to parse, or whose
tree does not line up with the scan, always go to Lark (so every diagnostic
comes from Lark as before).

A policy's shape multiplies its match's shape by its pipeline's (a site of
10,000 policies with chains of their own has a thousand and more), so a
policy statement is also kept as two halves split at its ``via``: the part
before it (name, sources, match) and the ``via`` subtree.  A new statement
whose halves were both seen, in any statements, is the two joined under
``policy_stmt``.  That is the tree Lark builds: the match is reduced at the
lookahead ``via`` whatever follows, and after ``via`` the parser is in one
state (LALR merges the states of the items ``action: "via" . pipeline``)
whatever came before, so each half's tree depends only on its own tokens.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Tree

MAX_SHAPES = 4096
Template = None | tuple  # ("T", index, type) | ("R", data, children) | None (placeholder)


@lru_cache(maxsize=4)
def _scanner(parser: Lark) -> tuple[re.Pattern[str], dict[str, str], frozenset[str]]:
    """One alternation of every terminal in the standard lexer's order;
    keywords that NAME also matches are found by NAME and retyped."""
    terms = list(parser.terminals)
    name_re = next(t for t in terms if t.name == "NAME").pattern.to_regexp()
    keywords = {
        t.pattern.value: t.name for t in terms if t.pattern.type == "str" and re.fullmatch(name_re, t.pattern.value)
    }
    rest = [t for t in terms if not (t.pattern.type == "str" and t.pattern.value in keywords)]
    rest.sort(key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
    regex = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in rest))
    return regex, keywords, frozenset(parser.lexer_conf.ignore)


# Tokens that only one terminal can start with, found without trying the
# whole alternation: blanks, comments, words not followed by `:` (no address
# or port reference), decimal numbers not followed by anything that would
# make them a size, rate, address or range, and plain punctuation.
# Possessive quantifiers keep a word or number from matching a shorter prefix.
_FAST = re.compile(
    r"(?P<ws>[ \t\f\r\n]++)|(?P<comment>#[^\n]*+)|(?P<word>[A-Za-z_][A-Za-z0-9_-]*+)(?!:)"
    r"|(?P<int>[0-9]++)(?![0-9A-Za-z_.:%/])|(?P<punct>>>|->|[,(){}=*])"
)


@lru_cache(maxsize=4)
def _punct(parser: Lark) -> dict[str, str]:
    return {t.pattern.value: t.name for t in parser.terminals if t.pattern.type == "str"}


def scan(parser: Lark, text: str) -> list[tuple[str, str, int, int]] | None:
    """(type, text, start, end) of every token, or None where nothing matches."""
    regex, keywords, ignore = _scanner(parser)
    punct = _punct(parser)
    out: list[tuple[str, str, int, int]] = []
    pos, n = 0, len(text)
    match, fast = regex.match, _FAST.match
    while pos < n:
        f = fast(text, pos)
        if f is not None:
            group, value, end = f.lastgroup, f.group(), f.end()
            if group == "word":
                out.append((keywords.get(value, "NAME"), value, pos, end))
            elif group == "int":
                out.append(("INT", value, pos, end))
            elif group == "punct":
                out.append((punct[value], value, pos, end))
            pos = end
            continue
        m = match(text, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "NAME":
            kind = keywords.get(value, "NAME")
        if kind not in ignore:
            out.append((kind, value, pos, m.end()))
        pos = m.end()
    return out


_shapes: dict[tuple[str, ...], Replay | bool] = {}


class Replay:
    """A statement shape's tree as post-order build steps with each node's
    span worked out from the token indices (tokens never overlap, so the
    first/last token below a node gives its span, as the builder computes)."""

    __slots__ = ("ops", "tokens", "resolved")

    def __init__(
        self, ops: list[tuple], tokens: list[tuple[str, str, int, int]] | None = None, resolved: list | None = None
    ) -> None:
        self.ops = ops
        self.tokens = tokens
        # [builder, steps]: the steps with each node's handler looked up on that builder, shared by
        # every statement of the shape (one builder per file: looked up once per shape, not per node)
        self.resolved: list[Any] = resolved if resolved is not None else [None, None]

    def bind(self, tokens: list[tuple[str, str, int, int]]) -> Replay:
        return Replay(self.ops, tokens, self.resolved)

    def _steps(self, builder: Any) -> list[tuple]:
        """The build steps as uniform 5-tuples: (0, token index, type, 0, 0),
        (1, 0, 0, 0, 0) for a placeholder, (2, handler, children, first, last)
        for a node, (3, leaf, token index, 0, 0) for a node over one token
        whose builder makes it from the token's text and span alone; a node
        whose builder passes its one child on (``builder.passing``) has none."""
        handlers = builder._handlers
        leaves: dict[str, Any] = getattr(builder, "leaves", {})
        passing: frozenset[str] = getattr(builder, "passing", frozenset())
        steps: list[tuple] = []
        for op in self.ops:
            kind = op[0]
            if kind == 0:
                steps.append((0, op[1], op[2], 0, 0))
            elif kind == 1:
                steps.append((1, 0, 0, 0, 0))
            else:
                _, data, n, first, last = op
                if n == 1 and data in passing:
                    continue  # its value is its one child's, already on the stack
                leaf = leaves.get(data)
                if leaf is not None and n == 1 and steps and steps[-1][0] == 0 and first == last == steps[-1][1]:
                    steps[-1] = (3, leaf, first, 0, 0)
                    continue
                handler = handlers.get(data)
                if handler is None:
                    handler = handlers[data] = getattr(builder, "r_" + data, builder.default)
                steps.append((2, handler, n, first, last))
        return steps

    def run(self, builder: Any, tok_class: Any, span_class: Any) -> Any:
        """What ``builder.build`` returns for the tree Lark would give."""
        tokens = self.tokens
        assert tokens is not None, "bind the statement's tokens first"
        resolved = self.resolved
        steps: list[tuple] = resolved[1]
        if resolved[0] is not builder:
            steps = self._steps(builder)
            resolved[0], resolved[1] = builder, steps
        offset = builder.offset
        values: list[Any] = []
        push = values.append
        for kind, a, b, first, last in steps:
            if kind == 0:  # token
                _, text, s, e = tokens[a]
                push(tok_class(b, text, span_class(offset + s, offset + e)))
            elif kind == 3:  # a node over one token, made from its text and span
                _, text, s, e = tokens[b]
                push(a(text, span_class(offset + s, offset + e)))
            elif kind == 1:  # placeholder
                push(None)
            else:
                start = offset + tokens[first][2] if first >= 0 else offset
                end = offset + tokens[last][3] if last >= 0 else offset if last == -1 else -1
                if b:
                    kids = values[-b:]
                    del values[-b:]
                    push(a(span_class(start, end if end > start else start), *kids))
                else:
                    push(a(span_class(start, end if end > start else start)))
        return values[0]


Result = tuple[int, "int | None", int]  # a node's (depth, start, end): see _walk
Half = tuple[list[tuple], list[Result]]  # a policy half's build steps and its top nodes' results
_heads: dict[tuple[str, ...], Half] = {}  # policy statements' token types before `via` -> that half
_vias: dict[tuple[str, ...], Half] = {}  # ... from `via` on -> the via subtree (token indices from 0)


def parse_statement(parser: Lark, chunk: str, max_depth: int) -> Tree | Replay:
    """Lark's tree for ``chunk`` (start symbol ``statement``), or a replay of
    the shape's template bound to this chunk's tokens.  Raises what Lark raises."""
    tokens = scan(parser, chunk)
    if tokens is None:
        return parser.parse(chunk, start="statement")
    shape = tuple(t[0] for t in tokens)
    template = _shapes.get(shape)
    if template is None:
        cut = _via_at(shape)
        joined = _join(shape, cut, max_depth) if cut else None
        if joined is not None:
            if len(_shapes) < MAX_SHAPES:
                _shapes[shape] = joined
            return joined.bind(tokens)
        tree = parser.parse(chunk, start="statement")
        if len(_shapes) < MAX_SHAPES:
            _shapes[shape] = _compile(tree, tokens, max_depth)
        if cut:
            _learn_halves(tree, tokens, shape, cut, max_depth)
        return tree
    if template is False:
        return parser.parse(chunk, start="statement")
    return template.bind(tokens)  # type: ignore[union-attr]


def _via_at(shape: tuple[str, ...]) -> int:
    """Where a policy statement's ``via`` is (0: not a policy, or no ``via``)."""
    if not shape or shape[0] != "POLICY":
        return 0
    try:
        return shape.index("VIA")
    except ValueError:
        return 0


def _learn_halves(
    tree: Tree, tokens: list[tuple[str, str, int, int]], shape: tuple[str, ...], cut: int, depth: int
) -> None:
    """Keep both halves of a policy statement Lark parsed (when its tree lines up with the scan)."""
    if not isinstance(tree, Tree) or tree.data != "policy_stmt" or len(_heads) >= MAX_SHAPES:
        return
    via = tree.children[-1]
    if not isinstance(via, Tree) or via.data != "via":
        return
    at = {t[2]: i for i, t in enumerate(tokens)}
    head_ops: list[tuple] = []
    via_ops: list[tuple] = []
    try:
        head = [_walk(c, tokens, at, head_ops, depth) for c in tree.children[:-1]]
        tail = _walk(via, tokens, at, via_ops, depth)
    except (ValueError, RecursionError):
        return
    if any(op[0] == 0 and op[1] >= cut for op in head_ops) or any(op[0] == 0 and op[1] < cut for op in via_ops):
        return  # pragma: no cover - a token of one half in the other: the split is not where it seems
    _heads[shape[:cut]] = (head_ops, head)
    _vias[shape[cut:]] = ([_shifted(op, -cut) for op in via_ops], [_shifted_result(tail, -cut)])


def _join(shape: tuple[str, ...], cut: int, max_depth: int) -> Replay | None:
    """A policy statement's build steps from two halves seen before, or None."""
    head = _heads.get(shape[:cut])
    via = _vias.get(shape[cut:])
    if head is None or via is None:
        return None
    kids = [*head[1], _shifted_result(via[1][0], cut)]
    depth, start, end = _node(kids)
    if depth > max_depth:
        return None  # pragma: no cover - each half was part of a statement within the bound
    ops = [*head[0], *[_shifted(op, cut) for op in via[0]], (2, "policy_stmt", len(kids), start, end)]
    return Replay(ops)


def _shifted(op: tuple, by: int) -> tuple:
    """A build step with its token indices moved by ``by`` (offsets -1/-2 stay)."""
    if op[0] == 0:
        return (0, op[1] + by, op[2])
    if op[0] == 2:
        _, data, n, first, last = op
        return (2, data, n, first + by if first >= 0 else first, last + by if last >= 0 else last)
    return op


def _shifted_result(res: Result, by: int) -> Result:
    depth, start, end = res
    return depth, (start + by if start is not None and start >= 0 else start), (end + by if end >= 0 else end)


def _node(kids: list[Result]) -> Result:
    """A node's result from its children's: depth one more than the deepest;
    its span from the first and last token below it."""
    depth = 1 + max((k[0] for k in kids), default=0)
    starts = [k[1] for k in kids if k[1] is not None]
    start = -1 if not starts or -1 in starts else min(starts)
    ends = [k[2] for k in kids]
    tok_ends = [e for e in ends if e >= 0]
    end = max(tok_ends) if tok_ends else -1 if (not ends or -1 in ends) else -2
    return depth, start, end


def _walk(
    node: Any, tokens: list[tuple[str, str, int, int]], at: dict[int, int], ops: list[tuple], max_depth: int
) -> Result:
    """Append ``node``'s build steps to ``ops``; its result is (depth, start,
    end) in symbols: start None (a placeholder, left out), -1 (the statement
    offset, below every token) or a token index; end -2 (none: -1), -1 (the
    offset) or a token index.  Tokens do not overlap, so min/max over
    positions are min/max over indices.  Raises ValueError when a kept token
    does not coincide with a scanned one or the tree is too deep."""
    if node is None:
        ops.append((1,))
        return 0, None, -2
    if isinstance(node, Token):
        i = at.get(node.start_pos or 0)
        if i is None or tokens[i][3] != node.end_pos or tokens[i][0] != node.type:
            raise ValueError("token mismatch")
        ops.append((0, i, node.type))
        return 0, i, i
    kids = [_walk(c, tokens, at, ops, max_depth) for c in node.children]
    res = _node(kids)
    if res[0] > max_depth:
        raise ValueError("too deep")
    ops.append((2, node.data, len(node.children), res[1], res[2]))
    return res


def _compile(tree: Tree, tokens: list[tuple[str, str, int, int]], max_depth: int) -> Replay | bool:
    """Build steps for ``tree``; False when a kept token does not coincide
    with a scanned one or the tree is deeper than the builder allows (then
    the builder's own walk reports it)."""
    at = {t[2]: i for i, t in enumerate(tokens)}
    ops: list[tuple] = []
    try:
        _walk(tree, tokens, at, ops, max_depth)
    except (ValueError, RecursionError):
        return False
    return Replay(ops)
