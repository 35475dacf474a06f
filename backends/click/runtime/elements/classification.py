"""Classification: Classifier (byte patterns on the packet data),
IPClassifier and IPFilter (Click's tcpdump-like language on the IP header).
Patterns are compiled to Python functions when the configuration is loaded
(``backends.click.runtime.ipfilter``)."""

from __future__ import annotations

import re

from backends.click.runtime.args import ConfigError
from backends.click.runtime.elements.base import Element, element
from backends.click.runtime.ipfilter.classifier import compile_classifier
from backends.click.runtime.ipfilter.codegen import compile_rules
from backends.click.runtime.packet import Packet


def _fn_name(name: str) -> str:
    return "f_" + re.sub(r"\W", "_", name)


class _Classifying(Element):
    """Sends each packet to the output its compiled function picks (-1: dropped)."""

    def push(self, port: int, p: Packet) -> None:
        k = self.match(p)
        if k >= 0:
            f = self.out[k]
            if f is not None:
                f(p)
                return
        self.drops += 1

    def check_outputs(self, targets: list[int]) -> None:
        for t in targets:
            if t >= self.noutputs:
                raise ConfigError(f"output {t} out of range (the element has {self.noutputs} outputs)")


@element
class Classifier(_Classifying):
    """Classifier(PATTERN, ...): output K for the first pattern K that matches
    (``OFF/VALUE[%MASK]`` clauses on the packet data, ``!``, ``?``, ``-``); no match: dropped."""

    class_name = "Classifier"

    def configure(self, args: tuple[str, ...]) -> None:
        if not args:
            raise ConfigError("no patterns")
        self.match = compile_classifier([a.strip() for a in args], _fn_name(self.name))
        self.check_outputs(list(range(len(args))))


@element
class IPClassifier(_Classifying):
    """IPClassifier(PATTERN, ...): output K for the first pattern K that
    matches the packet's IP header (IPFilter syntax); no match: dropped."""

    class_name = "IPClassifier"

    def configure(self, args: tuple[str, ...]) -> None:
        if not args:
            raise ConfigError("no patterns")
        targets = list(range(len(args)))
        self.check_outputs(targets)
        self.match = compile_rules(list(args), targets, _fn_name(self.name))


@element
class IPFilter(_Classifying):
    """IPFilter(ACTION PATTERN, ...): the first rule whose PATTERN matches
    decides; ACTION ``allow`` (output 0), ``drop`` / ``deny`` (dropped) or an
    output number.  A packet no rule matches is dropped."""

    class_name = "IPFilter"

    def configure(self, args: tuple[str, ...]) -> None:
        pats, targets = [], []
        for k, arg in enumerate(args):
            words = arg.strip().split(None, 1)
            if not words:
                raise ConfigError(f"rule {k}: empty")
            action = words[0]
            if action == "allow":
                t = 0
            elif action in ("drop", "deny"):
                t = -1
            elif re.fullmatch(r"\d+", action):
                t = int(action)
            else:
                raise ConfigError(f"rule {k}: action {action!r} (expected allow, drop, deny or an output number)")
            if len(words) < 2:
                raise ConfigError(f"rule {k}: no pattern after {action!r}")
            pats.append(words[1])
            targets.append(t)
        self.check_outputs(targets)
        self.match = compile_rules(pats, targets, _fn_name(self.name))
