"""Timing two or more callables against each other on a shared, noisy machine.

The speed of this kind of machine drifts by tens of percent within seconds, so a ratio is only
meaningful between times taken close together. :func:`paired` runs the callables in alternating
rounds (the order rotates from round to round, so neither always runs first), times each once per
round, and keeps every round's times; a ratio is then taken *per round* and summarised by its
median and range (:func:`ratio_summary`).

Calls shorter than ``min_sample`` seconds are repeated within one sample (the sample is the mean
of those calls), since a single microsecond call cannot be timed. ``pause`` seconds of sleep go
before each sample of a long call: an OpenMP runtime keeps its threads spinning for a while after a
parallel region, and that spinning would slow the next library's call. Short calls run without
the pause: after a pause both libraries' threads sleep, and every call would pay their wake-up.
"""
import math
import statistics
import time

__all__ = ["paired", "ratio_summary", "geomean", "best", "median"]


def _once(fn, calls):
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def best(fn, calls):
    """The fastest of ``calls`` calls of ``fn`` (seconds); no warm-up."""
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


def paired(fns, rounds=7, pause=0.005, min_sample=2e-3, short=2e-4):
    """{name: [seconds per call, one per round]} for the callables in ``fns`` (a dict).

    Each callable is called once first (warm-up: compilation, caches, thread pools); calls
    that take less than ``short`` seconds are timed ``ceil(min_sample / t)`` at a time and
    without pauses."""
    names = list(fns)
    est = {}
    for name in names:
        fns[name]()
        est[name] = min(_once(fns[name], 1), _once(fns[name], 1))
    calls = {n: max(1, math.ceil(min_sample / max(est[n], 1e-7))) if est[n] < short else 1
             for n in names}
    quick = all(est[n] < short for n in names)
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


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")
