"""The os-ken application: holds the switches' OpenFlow connections, pushes
flow operations as bundles, reads tables back.

os-ken 4.2 runs its "native" hub (plain threads), so the methods here block
the calling thread (the apply thread, an HTTP handler) while os-ken's receive
threads deliver replies into :class:`_Pending` slots keyed by xid.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

from backends.platform.controller.flowcodec import bundle_add_bytes, flow_mod_bytes, raw_flow_stats_replies
from backends.platform.controller.flows import Flow, flow_from_stats, flow_mod
from backends.platform.controller.groups import GROUP_TABLE, group_from_desc, is_group
from backends.platform.controller.plan import Op, Tables

LOG = logging.getLogger("fsc.controller.openflow")

#: Our xids start high so they never meet os-ken's own (echo requests count up from 0).
_XID_BASE = 0x40000000


class _NoBundles(Exception):
    """The switch refused to open a bundle (no bundle support)."""


class SwitchError(RuntimeError):
    """A switch refused, timed out or is not connected; the message says which rule."""


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    replies: list[Any] = field(default_factory=list)
    lost: bool = False  # the switch disconnected before the last reply


class FscOpenFlow(app_manager.OSKenApp):
    """Switch connections by dpid; blocking push/read for the apply thread."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datapaths: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._xids = itertools.count(_XID_BASE)
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._errors: dict[int, list[Any]] = {}  # dpid -> errors not claimed yet
        self.no_bundles: set[int] = set()
        self._epochs: dict[int, int] = {}  # dpid -> connections seen (see epoch())
        self._connections = itertools.count(1)
        self.on_connect: Callable[[int], None] | None = None
        raw_flow_stats_replies()  # tables of 10,000s of rules are read back often: split, not decoded

    # -- connection events --------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            with self._lock:
                self.datapaths[dp.id] = dp
                self._epochs[dp.id] = next(self._connections)
            LOG.info("switch %#x connected from %s", dp.id, dp.address)
            if self.on_connect is not None:
                threading.Thread(target=self.on_connect, args=(dp.id,), daemon=True, name=f"connect-{dp.id:#x}").start()
        elif ev.state == DEAD_DISPATCHER:
            with self._lock:
                stale = self.datapaths.get(dp.id) is not dp
                if stale:
                    return  # an older connection of a switch that has reconnected
                del self.datapaths[dp.id]
                waiting = [slot for (dpid, _), slot in self._pending.items() if dpid == dp.id]
            for slot in waiting:  # no reply will come: fail now, not at the timeout
                slot.lost = True
                slot.done.set()
            LOG.info("switch %#x disconnected", dp.id)

    def _deliver(self, dpid: int, msg: Any, final: bool) -> None:
        with self._lock:
            slot = self._pending.get((dpid, msg.xid))
        if slot is None:
            return
        slot.replies.append(msg)
        if final:
            slot.done.set()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        self._deliver(ev.msg.datapath.id, ev.msg, True)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        self._deliver(msg.datapath.id, msg, not (msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def _group_desc_reply(self, ev: Any) -> None:
        msg = ev.msg
        self._deliver(msg.datapath.id, msg, not (msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPGroupStatsReply, MAIN_DISPATCHER)
    def _group_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        self._deliver(msg.datapath.id, msg, not (msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPTableStatsReply, MAIN_DISPATCHER)
    def _table_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        self._deliver(msg.datapath.id, msg, not (msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        with self._lock:
            self._errors.setdefault(msg.datapath.id, []).append(msg)
        LOG.warning("switch %#x: error type=%d code=%d xid=%#x", msg.datapath.id, msg.type, msg.code, msg.xid)

    @set_ev_cls(ofp_event.EventOFPExperimenter, MAIN_DISPATCHER)
    def _experimenter(self, ev: Any) -> None:
        pass  # bundle control replies; the barrier after the commit is what we wait for

    # -- blocking operations -------------------------------------------------
    def connected(self) -> list[int]:
        with self._lock:
            return sorted(self.datapaths)

    def epoch(self, dpid: int) -> int | None:
        """Which connection of ``dpid`` is the current one (None: not connected):
        another number after a reconnect, when the switch may have lost or kept
        anything, so what was verified on an earlier connection no longer counts."""
        with self._lock:
            return self._epochs.get(dpid) if dpid in self.datapaths else None

    def _dp(self, dpid: int) -> Any:
        with self._lock:
            dp = self.datapaths.get(dpid)
        if dp is None:
            raise SwitchError(f"switch {dpid:#x} is not connected")
        return dp

    def _send(self, dp: Any, msg: Any) -> int:
        xid = next(self._xids) & 0xFFFFFFFF
        msg.set_xid(xid)
        if not dp.send_msg(msg):
            raise SwitchError(f"switch {dp.id:#x}: the connection is closed")
        return xid

    def _wait(self, dpid: int, xid: int, slot: _Pending, timeout: float, what: str) -> list[Any]:
        try:
            if not slot.done.wait(timeout):
                raise SwitchError(f"switch {dpid:#x}: no answer to {what} within {timeout:.0f}s")
            if slot.lost:
                raise SwitchError(f"switch {dpid:#x}: disconnected while waiting for the answer to {what}")
            return slot.replies
        finally:
            with self._lock:
                self._pending.pop((dpid, xid), None)

    def _claim_errors(self, dpid: int, xids: dict[int, Flow | None], open_xid: int = -1) -> list[str]:
        with self._lock:
            errs = self._errors.get(dpid, [])
            mine = [e for e in errs if e.xid in xids]
            self._errors[dpid] = [e for e in errs if e.xid not in xids]
        if any(e.xid == open_xid and e.type == ofproto_v1_3.OFPET_BAD_REQUEST for e in mine):
            raise _NoBundles()
        out = []
        for e in mine:
            flow = xids.get(e.xid)
            what = f"rule {flow.describe()}" if flow is not None else "the bundle"
            out.append(f"switch {dpid:#x} refused {what}: OpenFlow error type {e.type} code {e.code}")
        return out

    def push(self, dpid: int, ops: list[Op], bundle: bool = True, timeout: float = 30.0) -> None:
        """Send ``ops`` (one atomic bundle when ``bundle`` and the switch has
        bundles, else plain flow mods), then a barrier; raise
        :class:`SwitchError` naming every refused rule."""
        if not ops:
            return
        if bundle and dpid not in self.no_bundles:
            try:
                self._push(dpid, ops, True, timeout)
                return
            except _NoBundles:
                LOG.warning("switch %#x does not take OpenFlow bundles; sending plain flow mods", dpid)
                self.no_bundles.add(dpid)
        self._push(dpid, ops, False, timeout)

    def _push(self, dpid: int, ops: list[Op], bundle: bool, timeout: float) -> None:
        t_start = time.perf_counter()
        dp = self._dp(dpid)
        ofp, parser = dp.ofproto, dp.ofproto_parser
        xids: dict[int, Flow | None] = {}
        bundle_id = next(self._xids) & 0xFFFFFFFF
        flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        open_xid = -1
        if bundle:
            open_xid = self._send(dp, parser.ONFBundleCtrlMsg(dp, bundle_id, ofp.ONF_BCT_OPEN_REQUEST, flags, []))
            xids[open_xid] = None
        # every flow mod encoded from the flow's wire form and sent as one buffer
        chunks = []
        for cmd, flow in ops:
            xid = next(self._xids) & 0xFFFFFFFF
            if cmd in ("add", "delete"):
                fm = flow_mod_bytes(flow, cmd, xid)
                chunks.append(bundle_add_bytes(fm, bundle_id, flags, xid) if bundle else fm)
            else:
                msg = flow_mod(dp, flow, cmd)
                if bundle:
                    msg = parser.ONFBundleAddMsg(dp, bundle_id, flags, msg, [])
                msg.set_xid(xid)
                msg.serialize()
                chunks.append(bytes(msg.buf))
            xids[xid] = flow
        if not dp.send(b"".join(chunks)):
            raise SwitchError(f"switch {dp.id:#x}: the connection is closed")
        if bundle:
            xids[self._send(dp, parser.ONFBundleCtrlMsg(dp, bundle_id, ofp.ONF_BCT_COMMIT_REQUEST, flags, []))] = None
        self._request(dpid, parser.OFPBarrierRequest(dp), timeout, "a barrier")
        LOG.debug("switch %#x: %d flow mods pushed in %.3fs", dpid, len(ops), time.perf_counter() - t_start)
        errors = self._claim_errors(dpid, xids, open_xid)
        if errors:
            raise SwitchError("; ".join(errors[:10]) + (f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""))

    def read_flows(self, dpid: int, flows: list[Flow], timeout: float = 30.0) -> Tables:
        """The switch's flows with the keys of ``flows`` (absent keys: not on
        the switch): one flow-stats request per flow, all sent at once; each
        matches non-strictly (the flow and any more specific one), and only
        the exact keys are kept."""
        dp = self._dp(dpid)
        ofp, parser = dp.ofproto, dp.ofproto_parser
        wanted = {f.key for f in flows}
        groups: Tables = {}
        if any(is_group(f) for f in flows):
            groups = {k: g for k, g in self.read_groups(dpid, timeout).items() if k in wanted}
            flows = [f for f in flows if not is_group(f)]
        slots = []
        chunks = []
        for f in {f.key: f for f in flows}.values():
            req = parser.OFPFlowStatsRequest(dp, 0, f.table_id, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, f.match)
            xid = next(self._xids) & 0xFFFFFFFF
            req.set_xid(xid)
            req.serialize()
            slot = _Pending()
            with self._lock:
                self._pending[(dpid, xid)] = slot
            slots.append((xid, slot))
            chunks.append(bytes(req.buf))
        if not dp.send(b"".join(chunks)):
            for xid, _ in slots:
                with self._lock:
                    self._pending.pop((dpid, xid), None)
            raise SwitchError(f"switch {dpid:#x}: the connection is closed")
        out: Tables = dict(groups)
        for xid, slot in slots:
            for reply in self._wait(dpid, xid, slot, timeout, "a flow-stats request"):
                for st in reply.body:
                    fl = flow_from_stats(st)
                    if fl.key in wanted:
                        out[fl.key] = fl
        return out

    def _request(self, dpid: int, req: Any, timeout: float, what: str) -> list[Any]:
        """Send one request to switch ``dpid`` and wait for all its replies
        (``what`` names it in a timeout's message)."""
        return self._wait(dpid, *self._ask(dpid, req), timeout, what)

    def _ask(self, dpid: int, req: Any) -> tuple[int, _Pending]:
        """Send one request; its replies are waited for with :meth:`_wait`
        (several requests in flight at once: one round trip)."""
        slot = _Pending()
        xid = next(self._xids) & 0xFFFFFFFF
        req.set_xid(xid)
        with self._lock:
            self._pending[(dpid, xid)] = slot
        if not self._dp(dpid).send_msg(req):
            with self._lock:
                self._pending.pop((dpid, xid), None)
            raise SwitchError(f"switch {dpid:#x}: the connection is closed")
        return xid, slot

    def read_groups(self, dpid: int, timeout: float = 30.0) -> Tables:
        """Every group of the switch (a group-desc request), by key."""
        dp = self._dp(dpid)
        req = dp.ofproto_parser.OFPGroupDescStatsRequest(dp, 0)
        out: Tables = {}
        for reply in self._request(dpid, req, timeout, "a group-desc request"):
            for st in reply.body:
                g = group_from_desc(st)
                out[g.key] = g
        return out

    def table_counts(self, dpid: int, timeout: float = 30.0) -> dict[int, int]:
        """Flows per table (tables holding none left out), from one table-stats
        request, and the number of groups under ``GROUP_TABLE`` (none: left
        out), from one group-stats request sent with it: what a full read
        would count, at the cost of two small replies."""
        dp = self._dp(dpid)
        parser = dp.ofproto_parser
        tables = self._ask(dpid, parser.OFPTableStatsRequest(dp, 0))
        groups = self._ask(dpid, parser.OFPGroupStatsRequest(dp, 0, dp.ofproto.OFPG_ALL))
        out: dict[int, int] = {}
        for reply in self._wait(dpid, *tables, timeout, "a table-stats request"):
            for st in reply.body:
                if st.active_count:
                    out[st.table_id] = out.get(st.table_id, 0) + st.active_count
        n_groups = sum(len(reply.body) for reply in self._wait(dpid, *groups, timeout, "a group-stats request"))
        if n_groups:
            out[GROUP_TABLE] = n_groups
        return out

    def read_tables(self, dpid: int, timeout: float = 30.0, table: int | None = None) -> Tables:
        """Every flow of every table (or of ``table`` only), by key; each with its
        stats; with every table, the groups too."""
        dp = self._dp(dpid)
        ofp, parser = dp.ofproto, dp.ofproto_parser
        which = ofp.OFPTT_ALL if table is None else table
        req = parser.OFPFlowStatsRequest(dp, 0, which, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch())
        t0 = time.perf_counter()
        replies = self._request(dpid, req, timeout, "a flow-stats request")
        t1 = time.perf_counter()
        out: Tables = {}
        for reply in replies:
            for st in reply.body:
                f = flow_from_stats(st)
                out[f.key] = f
        if table is None:
            out.update(self.read_groups(dpid, timeout))
        LOG.debug(
            "switch %#x: read %d flows in %.3fs (+%.3fs to key)", dpid, len(out), t1 - t0, time.perf_counter() - t1
        )
        return out
