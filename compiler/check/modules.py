"""Module definitions: catalogue type, parameters (validated by the type's
pydantic schema), kind and resources."""

from __future__ import annotations

import shlex
from typing import Any, cast

from pydantic import ValidationError

from compiler import ir
from compiler.check.catalogue import CATALOGUE, DEFAULT_RESOURCES, KINDS, ModuleType
from compiler.check.matchcomp import MatchCompiler
from compiler.check.platform import options
from compiler.check.symbols import Symbols, did_you_mean
from compiler.headerspace.space import HeaderSpace
from fslang import ast as A

MATCH_TYPES = A.MatchExpr.__args__


def _expects_match(model: Any, field: str) -> bool:
    """True when the schema field is a MatchParam (validated by `_is_match`)."""
    info = model.model_fields.get(field)
    return info is not None and "_is_match" in repr(info)


def _plain(value: Any, matches: MatchCompiler) -> Any:
    """An FSL value as the Python value a schema validates."""
    if isinstance(value, (A.RefVal, A.MRef, A.SetVal)):
        items = [_plain(v, matches) for v in matches.values(value)]
        return items[0] if len(items) == 1 and not isinstance(value, A.SetVal) else tuple(items)
    if isinstance(value, (A.IntVal, A.StringVal, A.BoolVal, A.MacVal)):
        return value.value
    if isinstance(value, A.AddrVal):
        return value.addr
    if isinstance(value, A.PrefixVal):
        return value.net
    return value  # SizeVal, RateVal, PercentVal, RangeVal, match expressions


def check_module(stmt: A.ModuleStmt, symbols: Symbols, matches: MatchCompiler) -> ir.Module | None:
    sink = symbols.sink
    name = stmt.name.text
    mtype = CATALOGUE.get(stmt.type.text)
    opts = options(stmt, symbols)
    if mtype is None:
        sink.error(
            "E0207",
            f"unknown module type `{stmt.type.text}`",
            stmt.type.span,
            hint=did_you_mean(stmt.type.text, list(CATALOGUE)) or "types: " + ", ".join(sorted(CATALOGUE)),
        )
        return None
    params, labels = _params(stmt, mtype, symbols, matches)
    kind = mtype.default_kind
    if "kind" in opts:
        kname: A.Name = opts["kind"].value
        if kname.text not in KINDS:
            sink.error(
                "E0111",
                f"unknown module kind `{kname.text}`",
                kname.span,
                hint=did_you_mean(kname.text, list(KINDS)) or "kinds are click, process, vm",
            )
        elif kname.text not in mtype.kinds:
            sink.error(
                "E0304",
                f"a `{mtype.name}` module cannot run as `{kname.text}`",
                kname.span,
                hint="it runs as " + ", ".join(mtype.kinds),
            )
        else:
            kind = kname.text
    cores, memory = DEFAULT_RESOURCES[kind]
    if "cores" in opts:  # cores, memory and replicas are in range: the parser bounds them
        cores = opts["cores"].value
    if "memory" in opts:
        memory = opts["memory"].value.bytes
    image = opts["image"].value.value if "image" in opts else None
    if kind == "vm" and not image:
        sink.error(
            "E0305", f"`vm` module `{name}` needs an `image`", stmt.name.span, hint=f'add `image "{name}.qcow2"`'
        )
    if kind != "vm" and image is not None:
        sink.warning(
            "W0302",
            f"`image` is ignored: `{name}` runs as `{kind}`, not `vm`",
            opts["image"].span,
            hint="remove the image or add `kind vm`",
        )
    replicas = 1  # `replicas` and `weights` are applied by the pipeline checker (one count per module)
    return ir.Module(
        name,
        mtype.name,
        cast(ir.ModuleKind, kind),  # checked against KINDS above
        cores,
        memory,
        replicas,
        tuple(params.items()),
        mtype.outputs_for(params),
        image,
        tuple(labels.items()),
        stmt.name.span,
    )


def _params(
    stmt: A.ModuleStmt, mtype: ModuleType, symbols: Symbols, matches: MatchCompiler
) -> tuple[dict[str, Any], dict[str, HeaderSpace]]:
    sink = symbols.sink
    given: dict[str, A.Param] = {}
    for p in stmt.params:
        if p.name.text in given:
            sink.error("E0307", f"parameter `{p.name.text}` is given twice", p.name.span, hint="keep one of them")
        elif p.name.text == "else" or p.name.text == "out":
            sink.error(
                "E0308",
                f"`{p.name.text}` cannot be a label: it is the name of a built-in output",
                p.name.span,
                hint="choose another label",
            )
        else:
            given[p.name.text] = p
    if mtype.params is None:  # classify: every parameter is a labelled match
        labels: dict[str, HeaderSpace] = {}
        if not given:
            sink.error(
                "E0308",
                f"a `{mtype.name}` module needs at least one `LABEL: MATCH`",
                stmt.type.span,
                hint=f"write `{mtype.name}(suspicious: tcp and dst port 22)`",
            )
        for label, p in given.items():
            if not isinstance(p.value, MATCH_TYPES):
                sink.error(
                    "E0303",
                    f"label `{label}` needs a match expression",
                    p.value.span,
                    hint="write a match such as `tcp and dst port 22`",
                )
                continue
            labels[label] = matches.compile_exact(p.value)
        return {k: v for k, v in labels.items()}, labels
    model = mtype.params
    values: dict[str, Any] = {}
    for pname, p in given.items():
        if pname in model.model_fields and _expects_match(model, pname):
            values[pname] = p.value
        else:
            values[pname] = _plain(p.value, matches)
    try:
        validated = model.model_validate(values)
    except ValidationError as err:
        allowed = ", ".join(f"`{f}`" for f in model.model_fields) or "none"
        for e in err.errors():
            loc = str(e["loc"][0]) if e["loc"] else ""
            span = given[loc].span if loc in given else stmt.type.span
            if e["type"] == "extra_forbidden":
                sink.error(
                    "E0301",
                    f"`{mtype.name}` has no parameter `{loc}`",
                    given[loc].name.span,
                    hint=(did_you_mean(loc, list(model.model_fields)) or "") + f" parameters: {allowed}",
                )
            elif e["type"] == "missing":
                sink.error(
                    "E0302", f"`{mtype.name}` needs parameter `{loc}`", stmt.type.span, hint=f"parameters: {allowed}"
                )
            elif loc is None:
                sink.error(
                    "E0302", str(e["msg"]).removeprefix("Value error, "), stmt.type.span, hint=f"parameters: {allowed}"
                )
            else:
                sink.error(
                    "E0303",
                    f"parameter `{loc}`: {_msg(e)}",
                    given[loc].value.span if hasattr(given[loc].value, "span") else span,
                )
        return {}, {}
    if mtype.name == "process":
        command = getattr(validated, "command", "")
        try:
            argv = shlex.split(command)
        except ValueError as err:
            sink.error(
                "E0309",
                f"`command` cannot be split into arguments: {err}",
                given["command"].value.span,
                hint="balance the quotes; fsc runs the command without a shell",
            )
        else:
            if not argv:
                sink.error(
                    "E0309",
                    "`command` names no program",
                    given["command"].value.span,
                    hint='write the program and its arguments, e.g. `command: "/usr/bin/mybox --port 1"`',
                )
    out: dict[str, Any] = {}
    for pname in given:
        v = getattr(validated, pname)
        out[pname] = matches.compile_exact(v) if isinstance(v, MATCH_TYPES) else v
    return out, {}


def _msg(e: Any) -> str:
    msg = str(e["msg"]).removeprefix("Value error, ")
    kind = e["type"]
    if kind in ("int_type", "string_type", "bool_type"):
        return {
            "int_type": "expected a number",
            "string_type": 'expected a string "..."',
            "bool_type": "expected true or false",
        }[kind]
    return msg.lower() if msg else kind
