"""The random stream: Philox known answers, the documented mapping, Stream semantics,
and the distributions (Kolmogorov-Smirnov and moments) on every backend."""
import math

import numpy as np
import pytest
from scipy import stats

import fastinit as fi
from fastinit.reference import rng as ref
from fastinit.rng import Stream

# Random123 kat_vectors for philox4x32_10: (counter, key, expected output).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    out = ref.philox4x32_10(*counter, *key)
    assert tuple(int(v) for v in out) == expected


def test_uniform_float32_mapping_is_the_documented_one(backend):
    # Element i = word i%4 of block i//4; u = (x >> 8) * 2**-24; key = seed words; draw 0.
    seed = (7 << 32) | 123
    got = Stream(seed).uniform(9, backend=backend)
    words = []
    for j in range(3):
        words += [int(v) for v in ref.philox4x32_10(j, 0, 0, 0, 123, 7)]
    expect = np.array([(x >> 8) * 2.0 ** -24 for x in words[:9]], np.float32)
    np.testing.assert_array_equal(got, expect)


def test_uniform_float64_mapping_is_the_documented_one(backend):
    s = Stream(5)
    s.uniform(3)  # draw 0; the next is draw 1
    got = s.uniform(3, dtype=np.float64, backend=backend)
    expect = []
    for j in range(2):
        x = [int(v) for v in ref.philox4x32_10(j, 0, 1, 0, 5, 0)]
        expect += [((x[1] << 32 | x[0]) >> 11) * 2.0 ** -53, ((x[3] << 32 | x[2]) >> 11) * 2.0 ** -53]
    np.testing.assert_array_equal(got, np.array(expect[:3]))


def test_normal_float32_pairs_follow_box_muller(backend):
    z = Stream(11).normal(4, backend=backend).astype(np.float64)
    x = [int(v) for v in ref.philox4x32_10(0, 0, 0, 0, 11, 0)]
    for k in range(2):
        u1 = ((x[2 * k] >> 8) + 1) * 2.0 ** -24
        theta = 2 * math.pi * (x[2 * k + 1] >> 8) * 2.0 ** -24
        r = math.sqrt(-2 * math.log(u1))
        assert z[2 * k] == pytest.approx(r * math.cos(theta), abs=4e-6)
        assert z[2 * k + 1] == pytest.approx(r * math.sin(theta), abs=4e-6)


def test_float32_elementary_functions_are_accurate():
    x = np.linspace(2.0 ** -24, 1.0, 200001).astype(np.float32)
    err = np.abs(ref.ln_f32(x).astype(np.float64) - np.log(x.astype(np.float64)))
    assert np.all(err <= 2.0 * np.spacing(np.abs(np.log(x)).astype(np.float32) + np.float32(1e-30)))
    k = np.arange(0, 2 ** 24, 97)
    s, c = ref.sincos_2pi_f32(k)
    theta = 2 * np.pi * k / 2.0 ** 24
    assert np.max(np.abs(s - np.sin(theta))) < 2e-7
    assert np.max(np.abs(c - np.cos(theta))) < 2e-7


def test_quantile_functions_are_accurate():
    from scipy.special import ndtri

    p = np.logspace(-8, math.log10(0.5), 5000)
    z32 = ref.ndtri_pq_f32(p.astype(np.float32), (1 - p).astype(np.float32))
    assert np.max(np.abs(z32 - ndtri(p))) < 2e-5
    p = np.logspace(-300, math.log10(0.49), 5000)
    z64 = ref.ndtri_pq_f64(p, 1 - p)
    np.testing.assert_allclose(z64, ndtri(p), rtol=1e-13)
    z64 = ref.ndtri_pq_f64(1 - p, p)  # right tail, from q
    np.testing.assert_allclose(z64, -ndtri(p), rtol=1e-13)


def test_stream_advances_once_per_draw_and_children_are_independent():
    s = Stream(3)
    a = s.normal(10)
    b = s.normal(10)
    assert s.position == 2 and not np.array_equal(a, b)
    t = Stream(3)
    np.testing.assert_array_equal(t.normal(10), a)
    kids = Stream(3).spawn(2)
    more = Stream(3)
    more.spawn(2)
    third = more.spawn(1)[0]
    assert kids[0].key != kids[1].key != third.key
    assert Stream(3).child(1).key == kids[1].key
    draws = [k.uniform(1000) for k in kids + [third, Stream(3)]]
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            assert abs(np.corrcoef(draws[i], draws[j])[0, 1]) < 0.15


def test_size_does_not_change_the_prefix(backend):
    # Element i depends only on (key, draw, i): a longer draw extends a shorter one.
    short = Stream(9).normal(5, backend=backend)
    long = Stream(9).normal(100001, backend=backend)
    np.testing.assert_array_equal(short, long[:5])


N_KS = 200_000


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_uniform_distribution(backend, dt):
    x = Stream(21).uniform(N_KS, -1.5, 2.5, dtype=dt, backend=backend)
    assert x.min() >= -1.5 and x.max() < 2.5
    assert stats.kstest(x, stats.uniform(-1.5, 4.0).cdf).pvalue > 1e-4
    assert abs(x.mean() - 0.5) < 5 * 4 / math.sqrt(12 * N_KS)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_normal_distribution(backend, dt):
    x = Stream(22).normal(N_KS, 1.0, 3.0, dtype=dt, backend=backend).astype(np.float64)
    assert stats.kstest(x, stats.norm(1.0, 3.0).cdf).pvalue > 1e-4
    assert abs(x.mean() - 1.0) < 5 * 3.0 / math.sqrt(N_KS)
    assert abs(x.std() / 3.0 - 1) < 5 * math.sqrt(2.0 / N_KS)
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24.0 / N_KS)


@pytest.mark.parametrize("a,b", [(-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0), (-math.inf, 1.0),
                                 (2.0, math.inf), (-7.0, -6.0)])
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_truncated_normal_distribution(backend, a, b, dt):
    x = Stream(23).trunc_normal(N_KS // 2, 0.5, 2.0, a, b, dtype=dt, backend=backend)
    lo, hi = 0.5 + 2.0 * a, 0.5 + 2.0 * b
    assert x.min() >= np.asarray(lo, dt) and x.max() <= np.asarray(hi, dt)
    dist = stats.truncnorm(a, b, loc=0.5, scale=2.0)
    assert stats.kstest(x.astype(np.float64), dist.cdf).pvalue > 1e-4
    assert abs(x.mean() - dist.mean()) < 6 * dist.std() / math.sqrt(x.size)


def test_draw_arguments_are_checked():
    s = Stream(0)
    with pytest.raises(ValueError, match="std"):
        s.normal(3, std=-1.0)
    with pytest.raises(ValueError, match="low"):
        s.uniform(3, 2.0, 1.0)
    with pytest.raises(ValueError, match="a_std < b_std"):
        s.trunc_normal(3, a_std=1.0, b_std=-1.0)
    with pytest.raises(ValueError, match="float64"):
        s.trunc_normal(3, a_std=30.0, b_std=31.0)
    with pytest.raises(TypeError, match="dtype"):
        s.normal(3, dtype=np.int32)
    with pytest.raises(ValueError, match="shape"):
        s.normal((2, -1))
    with pytest.raises(TypeError, match="seed"):
        Stream(1.5)
    with pytest.raises(ValueError, match="seed"):
        Stream(-1)
    with pytest.raises(ValueError, match="seed"):
        Stream(2 ** 64)
    with pytest.raises(ValueError, match="hidden global"):
        fi.rng.as_stream(None, None)


def test_out_argument_fills_in_place_including_non_contiguous():
    base = np.zeros((6, 8), np.float32)
    view = base[:, ::2]
    got = Stream(4).normal(out=view)
    assert got is view
    np.testing.assert_array_equal(view, Stream(4).normal((6, 4)))
    assert np.all(base[:, 1::2] == 0)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        Stream(0).normal(out=ro)
