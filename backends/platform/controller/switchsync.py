"""Keeping switches equal to the committed site: push a phase and check the
switch holds what was sent (flow by flow, by per-table counts, or a full
read), reconcile a switch (on connect, before an apply) in two steps (flip
the ingress tables, then remove the rest), and trust per-table counts a full
check vouched for so an unchanged switch need not be read again."""

from __future__ import annotations

import logging
import time

from backends.platform.controller import drainrules
from backends.platform.controller.plan import (
    Tables,
    apply_ops,
    generation_of,
    ingress_tables,
    reconcile_ops,
    same_tables,
)

LOG = logging.getLogger("fsc.controller")

#: Seconds between flipping a switch back and removing a generation's rules
#: when reconciling (packets already inside finish).
RECONCILE_DRAIN = 0.2
#: A phase of at most this many flow mods is read back flow by flow (what it
#: touched), a larger one by reading the whole switch.
SCOPED_READ_BACK = 64


def table_counts_of(tables: Tables) -> dict[int, int]:
    """Flows per table of ``tables``, and groups under their pseudo-table
    (-1): what a switch's table and group stats report."""
    out: dict[int, int] = {}
    for table_id, _prio, _match in tables:
        out[table_id] = out.get(table_id, 0) + 1
    return out


class ApplyFailed(Exception):
    """A step of an apply failed; the message says which and why."""


class SwitchSync:
    """Part of :class:`~backends.platform.controller.service.Controller`: its
    traffic with the switches (``self.of``), each one under its own lock."""

    def _epoch(self, dpid: int) -> int | None:
        epoch = getattr(self.of, "epoch", None)
        return epoch(dpid) if epoch is not None else None

    def _counts(self, dpid: int) -> dict[int, int] | None:
        """The switch's flows per table (None: the switch object cannot tell)."""
        counts = getattr(self.of, "table_counts", None)
        return counts(dpid) if counts is not None else None

    def _trust(self, dpid: int, tables: Tables) -> None:
        """The switch was checked to hold ``tables`` (on this connection): keep
        its per-table counts as they are now (they may include flows the
        switch adds by itself, hidden or not, which a full read does not
        compare), to know later without reading that nothing was added or
        deleted since."""
        epoch = self._epoch(dpid)
        if epoch is None:
            return
        try:
            counts = self._counts(dpid)
        except Exception as err:  # the next apply reads the switch instead
            LOG.debug("switch %#x: no table stats (%s)", dpid, err)
            return
        if counts is not None and self._epoch(dpid) == epoch:
            self._verified[dpid] = (epoch, tables, counts)

    def _unchanged(self, dpid: int, want: Tables) -> bool:
        """True when the switch is known to hold ``want`` without reading it:
        a full check on this connection found exactly ``want`` there, and its
        per-table flow counts and its number of groups are still what they
        were (a rule or group added or deleted behind the controller's back
        changes them). An empty ``want``
        needs only the counts (an empty switch holds nothing else)."""
        trusted = self._verified.get(dpid)
        epoch = self._epoch(dpid)
        counts = self._counts(dpid)
        if counts is None:
            return False
        if not want and not counts:
            return True
        return trusted is not None and trusted[0] == epoch and trusted[1] is want and trusted[2] == counts

    def _verify_mode(self, ops: list, before: Tables | None) -> str:
        """How a phase is checked: ``rules`` (flow by flow what it touched: a
        small phase), ``counts`` (per-table flow counts: a phase of deletes
        only, every one of a rule that was there), or ``full`` (the whole switch)."""
        simple = all(c in ("add", "delete") for c, _ in ops)
        if len(ops) <= SCOPED_READ_BACK and simple and getattr(self.of, "read_flows", None) is not None:
            return "rules"
        if before is not None and all(c == "delete" for c, _ in ops):
            return "counts"
        return "full"

    def _push_verified(
        self, name: str, dpid: int, ops: list, expected: Tables, mode: str | None = None, before: Tables | None = None
    ) -> None:
        """Push one phase to one switch as a bundle, then check the switch holds
        ``expected``: by ``mode`` (see :meth:`_verify_mode`; ``counts`` is also
        used for an install whose rules the flip's full read checks).
        ``before``: what the switch held before (what ``counts`` compares the
        change of the counts with: flows the switch keeps by itself stay out)."""
        if not ops:
            return  # nothing sent: the last check still holds
        self._verified.pop(dpid, None)
        mode = mode or self._verify_mode(ops, before)
        t0 = time.perf_counter()
        pre = self._counts(dpid) if mode == "counts" and before is not None else None
        self.of.push(dpid, ops)
        t1 = time.perf_counter()
        read = t1
        if mode == "rules":
            keys = {f.key for _, f in ops}
            got = self.of.read_flows(dpid, [f for _, f in ops])
            read = time.perf_counter()
            diffs = same_tables({k: f for k, f in expected.items() if k in keys}, got)
        elif pre is not None and before is not None and (post := self._counts(dpid)) is not None:
            was, now = table_counts_of(before), table_counts_of(expected)
            diffs = []
            for t in sorted(set(pre) | set(post) | set(was) | set(now)):
                want = pre.get(t, 0) + now.get(t, 0) - was.get(t, 0)
                if post.get(t, 0) != want:
                    diffs.append(f"table {t} holds {post.get(t, 0)} rules, not {want}")
        else:
            tables = drainrules.without_pins(self.of.read_tables(dpid))
            read = time.perf_counter()
            diffs = same_tables(expected, tables)
        t2 = time.perf_counter()
        LOG.info(
            "switch %s: %d flow mods pushed in %.3fs, checked by %s in %.3fs (read %.3fs, compare %.3fs)",
            name, len(ops), t1 - t0, mode, t2 - t1, read - t1, t2 - read,
        )  # fmt: skip
        if diffs:
            more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
            raise ApplyFailed(f"switch {name} ({dpid:#x}) does not hold what was sent: " + "; ".join(diffs[:5]) + more)

    def _reconcile_step(
        self, name: str, dpid: int, desired: Tables, ingress: frozenset[int] | None, actual: Tables | None = None
    ) -> tuple[int, Tables | None]:
        """One reconcile step on one switch: with ``ingress``, only the ingress
        tables (extra rules elsewhere stay); without, everything. Verified.
        ``actual``: the tables just read (none sent since). Returns the
        operations sent and, when none were, the tables read."""
        with self._lock_for(dpid):
            self._verified.pop(dpid, None)
            if actual is None:
                actual = self.of.read_tables(dpid)
            pins = self.drain is not None  # a drain's pins stay; left over from an old one, they go
            keep = (lambda f: f.table_id not in ingress) if ingress is not None else (lambda f: False)
            ops = reconcile_ops(actual, desired, keep=lambda f: keep(f) or (pins and drainrules.is_pin(f)))
            if not ops:
                if ingress is None and not pins:
                    self._trust(dpid, desired)
                return 0, actual
            self.of.push(dpid, ops)
            got = drainrules.without_pins(self.of.read_tables(dpid))
            want = drainrules.without_pins(apply_ops(actual, ops))
            diffs = same_tables(want, got)
            if diffs:
                raise ApplyFailed(f"switch {name} ({dpid:#x}) could not be reconciled: {diffs[0]}")
            if ingress is None and not pins and not same_tables(desired, got):
                self._trust(dpid, desired)
            return len(ops), None

    def _reconcile(self, targets: list[tuple[str, int, Tables]], ingress: frozenset[int], cheap: bool = False) -> int:
        """Bring switches to their desired tables: first flip every ingress
        table, after a short drain remove what is left. A switch that fails
        does not stop the others (it is reconciled again when it reconnects).
        With ``cheap``, a switch known to hold its tables (:meth:`_unchanged`)
        is not read. Returns the operations sent."""
        errors: list[str] = []
        done: list[tuple[str, int, Tables, Tables | None]] = []
        n = 0
        for name, dpid, want in targets:
            try:
                if cheap and self.drain is None and self._unchanged(dpid, want):
                    LOG.info("switch %s (%#x): per-table flow counts as last verified; not read", name, dpid)
                    continue
                k, read = self._reconcile_step(name, dpid, want, ingress)
                n += k
                done.append((name, dpid, want, read))
            except Exception as err:
                errors.append(f"{name}: {err}")
        if n:
            time.sleep(RECONCILE_DRAIN)
        for name, dpid, want, read in done:
            try:
                n += self._reconcile_step(name, dpid, want, None, read)[0]
            except Exception as err:
                errors.append(f"{name}: {err}")
        if errors:
            raise ApplyFailed("; ".join(errors))
        return n

    def on_connect(self, dpid: int) -> None:
        """Reconcile a (re)connecting switch to the committed site."""
        with self._apply_lock:
            files = self._deployed_files()
            tables = self._deployed_tables()
            name = next((n for n, (d, _) in tables.items() if d == dpid), None)
            if name is None:
                LOG.warning(
                    "switch %#x connected, but the deployed site has no switch with that dpid (switches: %s)",
                    dpid,
                    ", ".join(f"{n}={d:#x}" for n, (d, _) in tables.items()) or "none",
                )
                return
            try:
                n = self._reconcile([(name, dpid, self._switch_expected(name))], ingress_tables(files))
                LOG.info(
                    "switch %s (%#x) reconciled to generation %d with %d operations",
                    name,
                    dpid,
                    generation_of(files),
                    n,
                )
            except Exception as err:  # a switch that goes away mid-reconcile is retried on its next connect
                LOG.error("switch %s (%#x): reconcile failed: %s", name, dpid, err)
