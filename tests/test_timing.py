"""fastinit.lab.timing, the one measurement method: the order-statistic interval, the words, and
measure()'s stopping rules, busy warning and alternation - on a fake clock, so nothing here
depends on how fast or how loaded this machine is."""
import math
import os

import pytest

from fastinit.lab import timing


class FakeClock:
    """Stands in for the time module inside timing: callables advance it by what they 'cost'."""

    def __init__(self):
        self.t = 0.0
        self.log = []

    def perf_counter(self):
        return self.t

    def sleep(self, s):
        self.t += s

    def work(self, name, costs):
        """A callable that costs ``costs`` seconds a call, or costs(k) on its k-th call."""
        calls = [0]

        def fn():
            k = calls[0]
            calls[0] += 1
            self.log.append(name)
            self.t += costs(k) if callable(costs) else costs
        return fn


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(timing, "time", c)
    monkeypatch.setattr(timing.CpuWatch, "stop", lambda self: 0.0)  # a quiet machine
    return c


def test_order_statistic_interval_coverage():
    from scipy.stats import binom

    for n in range(1, 60):
        k = timing._order_stat_rank(n, 0.95)
        if k:
            # [r_(k), r_(n+1-k)] misses the median only if fewer than k samples fall on a side
            assert 1 - 2 * binom.cdf(k - 1, n, 0.5) >= 0.95
        if k + 1 <= n // 2:   # and k is the largest such rank
            assert 1 - 2 * binom.cdf(k, n, 0.5) < 0.95
    assert timing._order_stat_rank(5, 0.95) == 0 and timing._order_stat_rank(6, 0.95) == 1
    assert timing.MIN_ROUNDS == 6


def test_ratio_interval():
    med, lo, hi = timing.ratio_interval([1, 2, 3, 4, 5], [1, 1, 1, 1, 1])
    assert (med, lo, hi) == (3, 0.0, math.inf)  # five rounds: not enough for 95%
    med, lo, hi = timing.ratio_interval([2, 4, 6, 8, 10, 12], [2] * 6)
    assert (med, lo, hi) == (3.5, 1.0, 6.0)
    num = [1.0] * 30
    den = [2.0] * 14 + [100.0] + [1e-3] + [2.0] * 14    # two wild rounds move nothing
    med, lo, hi = timing.ratio_interval(num, den)
    assert med == lo == hi == 0.5


def test_in_words():
    assert timing.in_words(0.63, 0.6, 0.66) == "1.59x faster (1.52-1.67x)"
    assert timing.in_words(1.28, 1.2, 1.4) == "1.28x slower (1.20-1.40x)"
    assert timing.in_words(0.98, 0.95, 1.02) == "no clear difference (0.95-1.02x the time)"
    assert timing.in_words(0.5, 0.0, math.inf).startswith("not known")


def test_measure_converges_on_a_steady_ratio(clock):
    fns = {"a": clock.work("a", 0.010), "b": clock.work("b", 0.020)}
    m = timing.measure(fns, [("a", "b")], budget=100, precision=0.03)
    assert m.converged and m.rounds == timing.MIN_ROUNDS and not m.busy
    assert m.ratios[("a", "b")] == pytest.approx((0.5, 0.5, 0.5))
    assert m.warnings == []
    assert timing.in_words(*m.ratios[("a", "b")]) == "2.00x faster (2.00-2.00x)"
    assert m.median("a") == pytest.approx(0.010)


def test_measure_alternates_and_pairs_back_to_back(clock):
    fns = {n: clock.work(n, 0.01) for n in "abcd"}
    timing.measure(fns, [("a", "b"), ("c", "d")], budget=100, best_of=1, pause=0)
    timed = clock.log[3 * 4:]                    # after the warm-up (3 calls each)
    blocks = [tuple(timed[i:i + 2]) for i in range(0, len(timed), 2)]
    # round 0: pairs in order, a before b; round 1: pairs rotated, b before a
    assert blocks[:4] == [("a", "b"), ("c", "d"), ("d", "c"), ("b", "a")]


def test_measure_takes_the_best_of_each_sample(clock):
    # every third call of b is disturbed (descheduled): the best of three never is
    fns = {"a": clock.work("a", 0.010), "b": clock.work("b", lambda k: 0.5 if k % 3 == 0 else 0.01)}
    m = timing.measure(fns, [("a", "b")], budget=100, best_of=3)
    assert m.ratios[("a", "b")][0] == pytest.approx(1.0)


def test_measure_stops_at_the_budget_and_says_so(clock):
    # a ratio that swings between 0.5 and 2 never gets a +-3% interval
    fns = {"a": clock.work("a", lambda k: 0.01 if (k // 3) % 2 else 0.04),
           "b": clock.work("b", 0.02)}
    m = timing.measure(fns, [("a", "b")], budget=3.0, best_of=1, precision=0.03)
    assert not m.converged and m.rounds > timing.MIN_ROUNDS and 3.0 <= m.seconds < 3.2
    assert any("precision not reached" in w for w in m.warnings)
    med, lo, hi = m.ratios[("a", "b")]
    assert lo < 1 < hi and timing.in_words(med, lo, hi).startswith("no clear difference")


def test_measure_with_too_little_budget_knows_no_ratio(clock):
    fns = {"a": clock.work("a", 0.5), "b": clock.work("b", 0.5)}
    m = timing.measure(fns, [("a", "b")], budget=2.0, best_of=1)
    assert m.rounds < timing.MIN_ROUNDS
    assert m.ratios[("a", "b")][2] == math.inf
    assert any("only" in w and "--budget" in w for w in m.warnings)


def test_measure_warns_when_the_machine_is_busy(clock, monkeypatch):
    monkeypatch.setattr(timing.CpuWatch, "stop", lambda self: 0.6)
    fns = {"a": clock.work("a", 0.01), "b": clock.work("b", 0.01)}
    m = timing.measure(fns, [("a", "b")], budget=100)
    assert m.busy and "busy" in m.warnings[0] and "60%" in m.warnings[0]
    assert m.as_dict()["busy"] is True


def test_measure_without_pairs_times_each_callable(clock):
    fns = {"a": clock.work("a", 0.01), "b": clock.work("b", 0.03)}
    m = timing.measure(fns, [], budget=100)
    assert m.converged and len(m.times["a"]) == timing.MIN_ROUNDS and m.ratios == {}
    with pytest.raises(ValueError, match="not in fns"):
        timing.measure(fns, [("a", "z")])


def test_short_calls_are_batched(clock):
    fns = {"a": clock.work("a", 1e-5), "b": clock.work("b", 2e-5)}
    m = timing.measure(fns, [("a", "b")], budget=100, min_sample=1e-3)
    assert m.median("a") == pytest.approx(1e-5) and m.ratios[("a", "b")][0] == pytest.approx(0.5)
    assert clock.log.count("a") > 100 * timing.MIN_ROUNDS   # ceil(1e-3 / 1e-5) calls a sample


def test_paired_and_ratio_summary_still_serve_the_layer_sweep(clock):
    fns = {"ours": clock.work("ours", 0.01), "torch": clock.work("torch", 0.03)}
    times = timing.paired(fns, rounds=5)
    assert [len(v) for v in times.values()] == [5, 5]
    assert timing.ratio_summary(times["torch"], times["ours"]) == pytest.approx((3, 3, 3))
    assert timing.geomean([1, 4]) == pytest.approx(2)


def test_cpu_watch_measures_a_share():
    w = timing.CpuWatch().start()
    sum(i * i for i in range(200_000))
    share = w.stop()
    assert share is None or 0.0 <= share <= 1.0


def _stat(pid, comm, ticks, nice, policy):
    """A /proc/PID/stat line: utime = ticks, stime = cutime = cstime = 0."""
    fields = ["S"] + ["0"] * 40                 # fields 3..43
    fields[14 - 3] = str(ticks)
    fields[19 - 3] = str(nice)
    fields[41 - 3] = str(policy)
    return f"{pid} ({comm}) " + " ".join(fields) + "\n"


def test_cpu_watch_counts_only_competing_processes(tmp_path, monkeypatch):
    hz = os.sysconf("SC_CLK_TCK")
    procs = {101: ("build job", 0, 0), 102: ("idle job", 0, 5), 103: ("nice 19", 19, 0),
             104: ("batch", 2, 3)}

    def write(ticks):
        for pid, (comm, nice, policy) in procs.items():
            d = tmp_path / str(pid)
            d.mkdir(exist_ok=True)
            (d / "stat").write_text(_stat(pid, comm, ticks[pid], nice, policy))

    monkeypatch.setattr(timing.CpuWatch, "PROC", str(tmp_path))
    monkeypatch.setattr(timing.os, "getpriority", lambda *a: 0, raising=False)
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    write({101: 0, 102: 0, 103: 0, 104: 0})
    w = timing.CpuWatch().start()
    clock.t += 10.0                                   # 10 s of wall time, 20 CPU-seconds
    write({101: 5 * hz, 102: 10 * hz, 103: 10 * hz, 104: 3 * hz})
    (tmp_path / "105").mkdir()                        # started during the window
    (tmp_path / "105" / "stat").write_text(_stat(105, "new (x)", 2 * hz, 0, 0))
    # counted: the build job (5 s), the batch job at nice 2 (3 s) and the new one (2 s)
    assert w.stop() == pytest.approx(10 / 20)


def test_json_safe():
    assert timing.json_safe({"a": [1.0, math.inf], "b": (math.nan,)}) == {"a": [1.0, None],
                                                                           "b": [None]}


def test_only_the_deciding_pairs_decide(clock):
    fns = {"a": clock.work("a", 0.01), "b": clock.work("b", 0.02),
           "c": clock.work("c", lambda k: 0.01 if (k // 3) % 2 else 0.04)}
    m = timing.measure(fns, [("a", "b"), ("c", "b")], budget=100, best_of=1,
                       decide=[("a", "b")])
    assert m.converged and m.rounds == timing.MIN_ROUNDS and m.warnings == []
    with pytest.raises(ValueError, match="subset"):
        timing.measure(fns, [("a", "b")], decide=[("c", "b")])
