"""Timing code against other code on a shared, noisy machine: the one measurement method of
``fastinit kernels``, ``fastinit bench`` and the lab's sweeps.

The speed of this kind of machine drifts by tens of percent within seconds, so a ratio is only
meaningful between times taken close together. The method:

1. **Warm-up.** Every callable runs once untimed (compilation, caches, thread pools), then twice
   more to estimate its cost. Calls shorter than ``short`` seconds are repeated within one
   sample (the sample is their mean), since a microsecond call cannot be timed alone.
2. **Alternating rounds.** Each round times every pair (a, b) whose ratio is wanted, the two
   right after each other, in an order that rotates from round to round, so neither side always
   runs first and a drift in the machine's speed hits both alike. A side's sample may be the
   best of a few back-to-back timings (``best_of``): another process can only add time, never
   take it away. ``pause`` seconds of sleep go before each sample of a long call: an OpenMP
   runtime keeps its threads spinning for a while after a parallel region, and that spinning
   would slow the next library's call.
3. **A ratio per round, and its confidence interval.** The ratio a/b is taken within each round;
   its summary is the median over rounds with a distribution-free 95% confidence interval from
   the order statistics (no assumption of normal noise: one stalled round moves nothing).
4. **Stop when it is known.** Rounds go on until every deciding pair's interval lies within
   ``precision`` of its median (after at least ``MIN_ROUNDS``, the fewest whose order
   statistics give a 95% interval) or the time ``budget`` runs out.
5. **Say when the machine was busy.** The share of the CPUs that other processes competing
   with this one used during the rounds (from ``/proc``; background work niced far below us
   does not count, see :class:`CpuWatch`) above :data:`BUSY_SHARE` marks the
   measurement ``busy``: kernels that use every core lose their threads to the other work
   unequally (a parallel kernel waits at each barrier for its slowest thread), so a busy
   machine shifts ratios in ways no interval shows, and a verdict should not be drawn from it.
   An interval that never got tight is warned about too.

:func:`in_words` turns a time ratio with its interval into "1.59x faster (1.52-1.66x)",
"1.28x slower (...)" or "no clear difference (...)" when the interval contains 1.

:func:`paired`, :func:`ratio_summary` and :func:`geomean` are the fixed-round building blocks
(also used on their own by :mod:`fastinit.lab.layers`).
"""
import dataclasses
import math
import os
import statistics
import time

__all__ = ["paired", "ratio_summary", "geomean", "ratio_interval", "measure", "Measurement",
           "in_words", "json_safe", "CpuWatch", "MIN_ROUNDS", "CONFIDENCE", "BUSY_SHARE",
           "best", "median"]

#: Confidence level of every interval this module reports.
CONFIDENCE = 0.95
#: The fewest rounds whose order statistics give a 95% interval for the median: with 6 ratios
#: [lowest, highest] covers it with probability 1 - 2 / 2^6 = 96.9% (5 give only 93.8%).
MIN_ROUNDS = 6
#: Other processes using more than this share of all CPUs while timing means "busy".
BUSY_SHARE = 0.25


def _once(fn, calls):
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def best(fn, calls):
    """The fastest of ``calls`` calls of ``fn`` (seconds); no warm-up (the benchmark scripts'
    single-library timer)."""
    fastest = float("inf")
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - t)
    return fastest


def median(fn, reps=5):
    """The median of ``reps`` calls of ``fn`` after one warm-up call (seconds)."""
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _calibrate(fns, min_sample, short):
    """Warm every callable up; return {name: calls per sample}."""
    calls = {}
    for name, fn in fns.items():
        fn()  # compilation, caches, thread pools
        est = min(_once(fn, 1), _once(fn, 1))
        calls[name] = max(1, math.ceil(min_sample / max(est, 1e-7))) if est < short else 1
    return calls


def _pct(x, near):
    """x as a percentage with the fewest decimals (up to 2) that tell it from ``near``."""
    for d in (0, 1):
        if f"{x:.{d}%}" != f"{near:.{d}%}":
            return f"{x:.{d}%}"
    return f"{x:.2%}"


def paired(fns, rounds=7, pause=0.005, min_sample=2e-3, short=2e-4):
    """{name: [seconds per call, one per round]} for the callables in ``fns`` (a dict).

    Each callable is called once first (warm-up: compilation, caches, thread pools); calls
    that take less than ``short`` seconds are timed ``ceil(min_sample / t)`` at a time and
    without pauses. Every round runs every callable once, in an order rotated by one each
    round."""
    names = list(fns)
    calls = _calibrate(fns, min_sample, short)
    quick = all(calls[n] > 1 for n in names)
    times = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if not quick and pause:
                time.sleep(pause)
            times[name].append(_once(fns[name], calls[name]))
    return times


def ratio_summary(num, den):
    """(median, lowest, highest) of the per-round ratios num[i] / den[i]."""
    ratios = sorted(a / b for a, b in zip(num, den))
    return statistics.median(ratios), ratios[0], ratios[-1]


def _order_stat_rank(n, confidence):
    """The largest k such that [r_(k), r_(n+1-k)] (1-based, sorted) covers the median of n
    samples with probability >= ``confidence``; 0 when no k does (n too small)."""
    k, below = 0, 0.0   # below = P(Binomial(n, 1/2) < k + 1)
    while k < n // 2:
        below += math.comb(n, k) / 2.0 ** n
        if 1.0 - 2.0 * below < confidence:
            break
        k += 1
    return k


def ratio_interval(num, den, confidence=CONFIDENCE):
    """(median, low, high) of the per-round ratios num[i] / den[i]: the median and a
    distribution-free ``confidence`` interval for it (order statistics of the ratios).

    With too few rounds for any such interval (fewer than :data:`MIN_ROUNDS` at 95%), low and
    high are 0 and inf: nothing is known yet."""
    ratios = sorted(a / b for a, b in zip(num, den))
    if not ratios:
        return float("nan"), 0.0, float("inf")
    k = _order_stat_rank(len(ratios), confidence)
    med = statistics.median(ratios)
    if k == 0:
        return med, 0.0, float("inf")
    return med, ratios[k - 1], ratios[len(ratios) - k]


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def in_words(ratio, low, high, digits=2):
    """A time ratio (ours / theirs) and its interval in plain words:
    0.63 (0.60-0.66) -> "1.59x faster (1.52-1.67x)"; 1.28 (1.2-1.4) -> "1.28x slower (1.20-1.40x)";
    an interval containing 1 -> "no clear difference (0.97-1.05x the time)"."""
    f = f"{{:.{digits}f}}"
    if not (low <= high) or math.isnan(ratio):
        return "not measured"
    if math.isinf(high):
        return "not known (too few rounds for an interval)"
    if low <= 1.0 <= high:
        return f"no clear difference ({f.format(low)}-{f.format(high)}x the time)"
    if high < 1.0:
        return f"{f.format(1 / ratio)}x faster ({f.format(1 / high)}-{f.format(1 / low)}x)"
    return f"{f.format(ratio)}x slower ({f.format(low)}-{f.format(high)}x)"


class CpuWatch:
    """Share of the machine's CPU time that other processes *competing* with this one used
    between :meth:`start` and :meth:`stop`; None where ``/proc`` cannot tell (not Linux).

    Each process's CPU time (its own and its reaped children's) comes from ``/proc/PID/stat``.
    A process competes unless the scheduler would give it a CPU only when we do not want one:
    ``SCHED_IDLE`` processes and those niced :data:`COMPETE_NICE` or more above us do not count
    (a background build at ``nice 19`` barely slows a kernel at ``nice 0``). This process is
    left out, so a busy verdict never blames ourselves."""

    #: Processes this much nicer than us get a third of our CPU weight or less: they do not count.
    COMPETE_NICE = 5
    PROC = "/proc"

    def __init__(self):
        self.share = None
        self._start = None
        try:
            self._nice = os.getpriority(os.PRIO_PROCESS, 0)
        except (AttributeError, OSError):
            self._nice = 0

    def _competing(self):
        """{pid: CPU seconds so far} of the processes that compete with us, or None."""
        try:
            names = os.listdir(self.PROC)
        except OSError:
            return None
        me, hz, out = os.getpid(), os.sysconf("SC_CLK_TCK"), {}
        for name in names:
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(os.path.join(self.PROC, name, "stat")) as f:
                    data = f.read()
                rest = data[data.rindex(")") + 2:].split()   # field k of stat(5) is rest[k - 3]
                ticks = sum(int(rest[i]) for i in (11, 12, 13, 14))   # utime stime cutime cstime
                nice, policy = int(rest[16]), int(rest[38])
            except (OSError, ValueError, IndexError):
                continue           # gone meanwhile, or unreadable
            if policy == 5 or (policy in (0, 3) and nice >= self._nice + self.COMPETE_NICE):
                continue           # SCHED_IDLE, or niced far below us
            out[int(name)] = ticks / hz
        return out or None

    def start(self):
        self._start = (time.perf_counter(), self._competing())
        return self

    def stop(self):
        wall0, before = self._start
        after = self._competing()
        wall = time.perf_counter() - wall0
        if before is None or after is None or wall <= 0:
            self.share = None
        else:   # a process new since start() spent all its time in the window
            used = sum(t - before.get(pid, 0.0) for pid, t in after.items()
                       if t >= before.get(pid, 0.0))
            self.share = min(max(used / (wall * (os.cpu_count() or 1)), 0.0), 1.0)
        return self.share


@dataclasses.dataclass
class Measurement:
    """What :func:`measure` found. ``times``: every sample of every callable (seconds per call);
    ``ratios``: {(a, b): (median, low, high)} of the time ratio a / b; ``others_cpu``: other
    processes' share of all CPUs while timing (None where unknown)."""

    times: dict
    ratios: dict
    rounds: int
    seconds: float
    converged: bool
    precision: float
    budget: float
    others_cpu: object
    busy: bool
    load: object
    warnings: list

    def median(self, name):
        return statistics.median(self.times[name])

    def as_dict(self):
        return dict(rounds=self.rounds, seconds=self.seconds, converged=self.converged,
                    precision=self.precision, budget_s=self.budget, confidence=CONFIDENCE,
                    others_cpu_share=self.others_cpu, busy=self.busy, load_average=self.load,
                    warnings=list(self.warnings))


def _width(med, low, high):
    """Half-width of an interval relative to its median (inf when unknown)."""
    if not (med > 0) or math.isinf(high) or low <= 0:
        return float("inf")
    return max(high / med - 1.0, 1.0 - low / med)


def measure(fns, pairs, budget=20.0, precision=0.03, min_rounds=MIN_ROUNDS, max_rounds=10_000,
            best_of=1, pause=0.005, min_sample=2e-3, short=2e-4, progress=None, decide=None):
    """Time the callables ``fns`` ({name: fn}) so that the time ratio of every pair in
    ``pairs`` ([(a, b)]: a / b) is known to ``precision`` (the 95% interval within
    +-precision of the median, after at least ``min_rounds`` rounds) or ``budget`` seconds of
    rounds have passed (the budget wins: with fewer than :data:`MIN_ROUNDS` rounds the
    intervals are (0, inf), "not known"). With no pairs, every callable is timed
    ``min_rounds`` times.
    A callable's sample in a round is the best of ``best_of`` timings taken back to back: being
    descheduled only ever adds time, so the least is the one least disturbed by other work.
    ``decide``: the pairs whose intervals decide when to stop (default: all of ``pairs``; the
    others are timed in the same rounds and reported with whatever interval they reach).
    ``progress(round, seconds, widest)`` is called after each round. Returns a
    :class:`Measurement` (its ``warnings`` say whether the machine was busy or the timings
    never settled)."""
    pairs = [tuple(p) for p in pairs]
    for a, b in pairs:
        if a not in fns or b not in fns:
            raise ValueError(f"pair {(a, b)} names a callable not in fns")
    decide = pairs if decide is None else [tuple(p) for p in decide]
    if any(p not in pairs for p in decide):
        raise ValueError("decide must be a subset of pairs")
    min_rounds = max(int(min_rounds), 1)
    calls = _calibrate(fns, min_sample, short)
    quick = {n: calls[n] > 1 for n in fns}
    # a round runs blocks: each pair back to back, or (no pairs) each callable alone
    blocks = pairs or [(n,) for n in fns]
    samples = {p: ([], []) for p in pairs}
    times = {n: [] for n in fns}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    watch = CpuWatch().start()
    t0 = time.perf_counter()
    rounds, converged, widest = 0, False, float("inf")
    while rounds < max_rounds:
        r = rounds
        order = blocks[r % len(blocks):] + blocks[:r % len(blocks)]
        for p in order:
            sides = range(len(p)) if r % 2 == 0 else range(len(p) - 1, -1, -1)
            for side in sides:
                name = p[side]
                t = float("inf")
                for _ in range(best_of):
                    if pause and not quick[name]:
                        time.sleep(pause)
                    t = min(t, _once(fns[name], calls[name]))
                times[name].append(t)
                if p in samples:
                    samples[p][side].append(t)
        rounds += 1
        elapsed = time.perf_counter() - t0
        widest = max((_width(*ratio_interval(*samples[p])) for p in decide), default=0.0)
        if progress is not None:
            progress(rounds, elapsed, widest)
        if rounds >= min_rounds and widest <= precision:
            converged = True
            break
        if elapsed >= budget:
            break
    seconds = time.perf_counter() - t0
    others = watch.stop()
    ratios = {p: ratio_interval(*samples[p]) for p in pairs}
    warnings = []
    ncpu = os.cpu_count() or 1
    busy = others is not None and others > BUSY_SHARE
    if busy:
        warnings.append(f"the machine was busy: other processes used {others:.0%} of its {ncpu} "
                        f"CPUs while timing, which slows kernels unequally; these times describe "
                        f"a loaded machine")
    if pairs and rounds < min_rounds:
        warnings.append(f"only {rounds} rounds fitted in the {budget:g} s budget ({min_rounds} "
                        f"are needed for a 95% interval): the time ratios are not known; give "
                        f"a longer --budget")
    elif decide and not converged:
        warnings.append(f"precision not reached: after {rounds} rounds ({seconds:.0f} s) the "
                        f"widest 95% interval that decides is +-{_pct(widest, precision)}, "
                        f"not the +-{precision:.0%} asked for; a longer --budget or a quieter "
                        f"machine narrows it")
    return Measurement(times=times, ratios=ratios, rounds=rounds, seconds=seconds,
                       converged=converged, precision=precision, budget=budget,
                       others_cpu=others, busy=busy, load=load, warnings=warnings)


def json_safe(value):
    """``value`` with every inf or NaN float replaced by None (JSON has neither): an unknown
    interval bound becomes null."""
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
