"""The placement search state: a partial assignment with the counters that make a move's delta cheap.

Shared by the heuristic, its compound moves and the exhaustive search of tiny sites.
"""

from __future__ import annotations

from operator import truediv

from compiler.placement.model import Problem


class State:
    """A partial assignment with the counters that make a move's delta O(degree).
    ``lim_c`` is a host's usable cores (lowered to close a host for a while)."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        H = len(p.hosts)
        self.host_of = [-1] * len(p.insts)
        self.mod = [i.module for i in p.insts]
        self.ic = [p.modules[a].cores for a in self.mod]
        self.im = [p.modules[a].memory for a in self.mod]
        self.lim_c = [h.cores for h in p.hosts]
        self.used_c = [0] * H
        self.free_m = [h.memory for h in p.hosts]
        self.cap = [max(h.cores, 1) for h in p.hosts]
        self.spare = [1 if h.spare else 0 for h in p.hosts]
        self.cnt = [[0] * H for _ in p.modules]
        # pull[a][h]: sum of w * cnt[b][h] over a's neighbours b (kept by put/take: deltas read it in O(1))
        self.pull = [[0] * H for _ in p.modules]
        self.n_on = [0] * H
        self.frozen: set[int] = set()
        self.top: list[int] = []
        self._touched: list[int] = []  # hosts whose load changed since refresh_top
        self._third: tuple[float, int] = (0.0, 0)  # (load, -host) of the third in ``top``
        self._neg_hosts = [-h for h in range(H)]

    def free_c(self, h: int) -> int:
        return self.lim_c[h] - self.used_c[h]

    def fits(self, i: int, h: int) -> bool:
        return self.lim_c[h] - self.used_c[h] >= self.ic[i] and self.free_m[h] >= self.im[i]

    def frac(self, h: int) -> float:
        return self.used_c[h] / self.cap[h]

    def put(self, i: int, h: int) -> None:
        self.host_of[i] = h
        self.used_c[h] += self.ic[i]
        self.free_m[h] -= self.im[i]
        a = self.mod[i]
        self.cnt[a][h] += 1
        pull = self.pull
        for b, w in self.p.neighbours[a]:
            pull[b][h] += w
        self.n_on[h] += 1
        self._touched.append(h)

    def take(self, i: int) -> int:
        h = self.host_of[i]
        self.host_of[i] = -1
        self.used_c[h] -= self.ic[i]
        self.free_m[h] += self.im[i]
        a = self.mod[i]
        self.cnt[a][h] -= 1
        pull = self.pull
        for b, w in self.p.neighbours[a]:
            pull[b][h] -= w
        self.n_on[h] -= 1
        self._touched.append(h)
        return h

    def refresh_top(self) -> None:
        """The three fullest hosts, ties to the lower index.  Called after
        every move, so it is incremental: hosts neither in the old top nor
        touched since are unchanged and rank below the old third, so the old
        top and the touched hosts decide unless their third falls below it."""
        touched, self._touched = self._touched, []
        used, cap = self.used_c, self.cap
        if len(self.top) == 3 and len(touched) <= 8:
            cands = set(self.top)
            cands.update(touched)
            keys = sorted([(used[h] / cap[h], -h) for h in cands], reverse=True)
            if keys[2] >= self._third:
                self.top = [-k[1] for k in keys[:3]]
                self._third = keys[2]
                return
        keys = sorted(zip(map(truediv, used, cap), self._neg_hosts), reverse=True)[:3]
        self.top = [-k[1] for k in keys]
        self._third = keys[2] if len(keys) == 3 else (0.0, 0)

    def gain(self, a: int, h: int) -> int:
        return self.pull[a][h]

    def delta(self, i: int, h2: int) -> tuple[float, ...]:
        """Change of the objective (plus a smooth tie-break) if ``i`` moved to ``h2``;
        ``self.top`` must be current."""
        d = self.delta_under(i, h2, None)
        assert d is not None
        return d

    def delta_under(self, i: int, h2: int, bound: tuple[float, ...] | None) -> tuple[float, ...] | None:
        """:meth:`delta`, or None when it is surely above ``bound`` (its integer
        terms already are): the load terms are not worked out (most candidates
        of a search, two ``round`` calls each)."""
        h1, a, c = self.host_of[i], self.mod[i], self.ic[i]
        cnt = self.cnt
        ds = c * (self.spare[h2] - self.spare[h1])
        dr = cnt[a][h2] - cnt[a][h1] + 1
        dx = self.pull[a][h1] - self.pull[a][h2]
        dh = (self.n_on[h2] == 0) - (self.n_on[h1] == 1)
        head = self._head(ds, dr, dx, dh)
        if bound is not None and head > bound[: len(head)]:
            return None
        return head + self._load(h1, h2, c)

    def _head(self, ds: int, dr: int, dx: int, dh: int) -> tuple[int, ...]:
        """The integer terms of a delta, in the objective's order."""
        if self.p.mode == "pack":
            return (ds, dh, dr, dx) if self.p.fewest else (ds, dr, dh, dx)
        return (ds, dr, dx)

    def _load(self, h1: int, h2: int, c: int) -> tuple[float, ...]:
        """The load terms of a delta: ``c`` cores go from ``h1`` to ``h2``."""
        f1, f2 = self.frac(h1), self.frac(h2)
        g1, g2 = f1 - c / self.cap[h1], f2 + c / self.cap[h2]
        dsq = g1 * g1 + g2 * g2 - f1 * f1 - f2 * f2
        if self.p.mode == "pack":
            return (round(-dsq, 9),)
        cur = self.frac(self.top[0]) if self.top else 0.0
        other = next((self.frac(h) for h in self.top if h != h1 and h != h2), 0.0)
        return (round(max(other, g1, g2) - cur, 9), round(dsq, 9))

    def swap_delta(self, i: int, j: int, bound: tuple[float, ...] | None = None) -> tuple[float, ...] | None:
        """Like ``delta`` for exchanging the hosts of ``i`` and ``j`` (different modules)."""
        h1, h2, a, b = self.host_of[i], self.host_of[j], self.mod[i], self.mod[j]
        cnt, dc = self.cnt, self.ic[i] - self.ic[j]
        ds = dc * (self.spare[h2] - self.spare[h1])
        dr = cnt[a][h2] - cnt[a][h1] + 1 + cnt[b][h1] - cnt[b][h2] + 1
        pull = self.pull
        dx = pull[a][h1] - pull[a][h2] + pull[b][h2] - pull[b][h1] + 2 * self.p.pair_w.get((a, b), 0)
        head = self._head(ds, dr, dx, 0)
        if bound is not None and head > bound[: len(head)]:
            return None
        return head + self._load(h1, h2, dc)


def keep_previous(st: State, old: list[int]) -> None:
    """Put back, then freeze, every instance that still fits where it was."""
    p = st.p
    for i in sorted((i for i, h in enumerate(old) if h >= 0), key=lambda i: (st.spare[old[i]], p.insts[i].name)):
        h = old[i]
        if h in p.allowed_set[st.mod[i]] and st.fits(i, h):
            st.put(i, h)
            st.frozen.add(i)
