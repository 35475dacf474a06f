"""AST -> FSL text.  The inverse of the parser up to spans and layout: the
round-trip property tests print random ASTs and parse them back."""

from __future__ import annotations

from typing import Any

from fslang import ast as A
from fslang.values import escape_string, format_mac


def value(v: Any) -> str:
    match v:
        case A.IntVal():
            return str(v.value)
        case A.RangeVal():
            return f"{v.lo}..{v.hi}"
        case A.SizeVal() | A.RateVal() | A.PercentVal():
            return v.text
        case A.AddrVal():
            return str(v.addr)
        case A.PrefixVal():
            return str(v.net)
        case A.MacVal():
            return format_mac(v.value)
        case A.StringVal():
            return escape_string(v.value)
        case A.BoolVal():
            return "true" if v.value else "false"
        case A.RefVal():
            return v.name.text
        case A.SetVal():
            return "{" + ", ".join(value(i) for i in v.items) + "}"
    raise TypeError(f"not a value: {v!r}")


_PREC = {A.MOr: 1, A.MAnd: 2, A.MNot: 3}


def match(e: Any, outer: int = 0) -> str:
    prec = _PREC.get(type(e), 4)
    match e:
        case A.MOr():
            text = " or ".join(match(i, 1) for i in e.items)
        case A.MAnd():
            text = " and ".join(match(i, 2) for i in e.items)
        case A.MNot():
            text = "not " + match(e.expr, 3)
        case A.MProto():
            text = e.proto
        case A.MProtoNum():
            text = f"proto {e.number}"
        case A.MHost() | A.MNet() | A.MPort():
            word = {A.MHost: "host", A.MNet: "net", A.MPort: "port"}[type(e)]
            text = (f"{e.dir} " if e.dir else "") + f"{word} {value(e.value)}"
        case A.MVlan():
            text = f"vlan {e.vid}"
        case A.MEther():
            text = "ether " + (f"{e.dir} " if e.dir else "") + value(e.value)
        case A.MDscp():
            text = f"dscp {e.value}"
        case A.MRef():
            text = e.name.text
        case _:
            raise TypeError(f"not a match: {e!r}")
    # same-precedence nesting needs parentheses too (a and (b and c) is not flattened by the parser)
    return f"({text})" if prec < outer or (prec == outer and prec in (1, 2)) else text


def pipeline(p: Any, nested: bool = False) -> str:
    match p:
        case A.PSerial():
            text = " >> ".join(pipeline(s, True) for s in p.stages)
            return f"({text})" if nested else text
        case A.PUse():
            text = p.name.text
            if p.replicas is not None:
                text += f" * {p.replicas.value}" + (f"..{p.upto.value}" if p.upto is not None else "")
                text += (" weights " + ", ".join(str(w.value) for w in p.weights)) if p.weights else ""
                text += f" by {p.by}" if p.by else ""
            if p.branches is not None:
                text += (
                    " { "
                    + ", ".join(f"{b.label.text if b.label else 'else'}: {pipeline(b.pipeline)}" for b in p.branches)
                    + " }"
                )
            return text
        case A.PCase():
            return (
                "case { "
                + ", ".join(
                    f"{match(a.guard) if a.guard is not None else 'else'}: {pipeline(a.pipeline)}" for a in p.arms
                )
                + " }"
            )
        case A.PCopy():
            return f"copy {p.percent.text} to {pipeline(p.target, True)}"
        case A.PPass():
            return "pass"
        case A.PDrop():
            return "drop"
    raise TypeError(f"not a pipeline: {p!r}")


def _opts(options: tuple[A.Option, ...]) -> str:
    out = []
    for o in options:
        v = o.value
        if v is True:
            out.append(o.key)
        elif isinstance(v, tuple):
            out.append(f"{o.key} " + ", ".join(x.text if isinstance(x, A.Name) else value(x) for x in v))
        elif isinstance(v, A.Name):
            out.append(f"{o.key} {v.text}")
        elif isinstance(v, (A.SizeVal, A.StringVal)):
            out.append(f"{o.key} {value(v)}")
        elif isinstance(v, A.RangeVal):
            out.append(f"{o.key} {v.lo}..{v.hi}")
        elif o.key == "dpid":
            out.append(f"dpid {v:#x}")
        else:
            out.append(f"{o.key} {v}")
    return "".join(" " + x for x in out)


def _port(p: A.PortRef | A.PortSpec) -> str:
    if isinstance(p, A.PortSpec) and p.hi is not None:
        return f"{p.switch.text}:{p.lo}..{p.hi}"
    return f"{p.switch.text}:{p.port if isinstance(p, A.PortRef) else p.lo}"


def statement(s: Any) -> str:
    match s:
        case A.SiteStmt():
            return f"site {s.name.text}"
        case A.SwitchStmt():
            return f"switch {s.name.text}{_opts(s.options)}"
        case A.LinkStmt():
            return f"link {_port(s.a)} {_port(s.b)}"
        case A.HostStmt():
            return f"host {s.name.text} at {', '.join(_port(p) for p in s.at)}{_opts(s.options)}"
        case A.EdgeStmt():
            return f"edge {s.name.text} at {', '.join(_port(p) for p in s.at)}{_opts(s.options)}"
        case A.BoxStmt():
            return f"box {s.name.text} at {_port(s.in_port)} -> {_port(s.out_port)}"
        case A.SetStmt():
            return f"set {s.name.text} = {value(s.value)}"
        case A.ClassStmt():
            return f"class {s.name.text} = {match(s.match)}"
        case A.ModuleStmt():
            params = ", ".join(f"{p.name.text}: {_param(p.value)}" for p in s.params)
            return f"module {s.name.text} = {s.type.text}({params}){_opts(s.options)}"
        case A.PolicyStmt():
            text = f"policy {s.name.text}"
            if s.sources:
                text += " from " + ", ".join(n.text for n in s.sources)
            if s.match is not None:
                text += " match " + match(s.match)
            if s.pipeline is None:
                return text + " drop"
            return text + " via " + pipeline(s.pipeline) + (" symmetric" if s.symmetric else "")
        case A.PinStmt():
            return f"pin {s.module.text} to {s.host.text}"
        case A.AvoidStmt():
            return f"avoid {s.module.text} on {s.host.text}"
        case A.PlacementStmt():
            return f"placement {s.mode}"
        case A.DefaultStmt():
            return f"default {s.action}"
    raise TypeError(f"not a statement: {s!r}")


def _param(v: Any) -> str:
    return match(v) if isinstance(v, A.MatchExpr.__args__) else value(v)


def program(p: A.Program) -> str:
    return "".join(statement(s) + "\n" for s in p.statements)
