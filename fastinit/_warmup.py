"""Exercise every kernel of a backend once per dtype and size class, so Numba compiles (or
loads from its cache) everything before real work starts. Used by ``fastinit warmup``."""
import time

import numpy as np

from . import _config


def _exercises():
    """(name, fn(dtype, backend)) pairs: one small and one parallel-sized call per op."""
    import fastinit as fi
    from .rng import Stream

    sizes = (37, _config.PARALLEL_MIN_ELEMENTS + 4099)

    def rng_ops(dtype, backend):
        s = Stream(0)
        for n in sizes:
            s.uniform(n, dtype=dtype, backend=backend)
            s.normal(n, dtype=dtype, backend=backend)
            s.trunc_normal(n, dtype=dtype, backend=backend)

    yield "rng", rng_ops

    def init_ops(dtype, backend):
        fi.init.kaiming_normal((64, 32, 3, 3), seed=0, dtype=dtype, backend=backend)
        fi.init.xavier_uniform((256, 128), seed=0, dtype=dtype, backend=backend)
        fi.init.trunc_normal((256, 128), std=0.02, seed=0, dtype=dtype, backend=backend)
        fi.init.orthogonal((16, 8), seed=0, dtype=dtype, backend=backend)

    yield "init", init_ops

    r = np.random.default_rng(0)

    def dense(dtype, backend):
        for n in (5, 160, 300):  # small-product path, then the packed path
            a = r.standard_normal((n, n)).astype(dtype)
            fi.matmul(a, a, backend=backend)
            y = fi.linear(a, a, a[0], backend=backend)
            fi.linear_backward(y, a, a, backend=backend)
    yield "dense", dense

    def conv(dtype, backend):
        # every path the planner has: the general engine (narrow rows), the direct path
        # (a first layer with rows of 24), Winograd (C=K=32: 3x3, 5x5, 7x7), depthwise
        # (stride 1 and 2), a strided layer; on 12x12 and 24x24 images
        cases = [(4, 6, k, 1, 1) for k in (1, 3, 5)] + [(32, 32, k, 1, 1) for k in (3, 5, 7)]
        cases += [(3, 16, 3, 1, 1), (8, 8, 3, 1, 8), (8, 8, 3, 2, 8), (4, 6, 3, 2, 1)]
        for c, kout, k, stride, groups in cases:
            for size in (12, 24):
                x = r.standard_normal((2, c, size, size)).astype(dtype)
                w = r.standard_normal((kout, c // groups, k, k)).astype(dtype)
                y = fi.conv2d(x, w, stride=stride, padding="same", groups=groups,
                              backend=backend)
                fi.conv2d_backward(y, x, w, stride=stride, padding="same", groups=groups,
                                   backend=backend)
    yield "conv2d", conv

    def bn(dtype, backend):
        for shape in ((8, 3), (4, 3, 5, 5), (8, 8, 32, 32), (8, 16, 32, 32)):
            x = r.standard_normal(shape).astype(dtype)
            g = np.ones(shape[1], dtype)
            y, saved = fi.batch_norm(x, g, g * 0, backend=backend)
            fi.batch_norm_backward(y, x, g, saved, backend=backend)
    yield "batch_norm", bn

    def clip(dtype, backend):
        for n in sizes:
            g = [r.standard_normal(n).astype(dtype)]
            fi.clip_grad_norm_(g, 1.0, backend=backend)
            fi.clip_grad_value_(g, 0.5, backend=backend)
    yield "clip", clip

    def pool(dtype, backend):
        # the 2x2 and k x k fast paths, the generic (padded, overlapping) one; serial and
        # threaded sizes
        for shape in ((2, 3, 8, 8), (4, 32, 64, 64)):
            x = r.standard_normal(shape).astype(dtype)
            for k, s, p in ((2, 2, 0), (3, 3, 0), (3, 2, 1)):
                y = fi.max_pool2d(x, k, s, p, backend=backend)
                fi.max_pool2d_backward(y, x, k, s, p, backend=backend)
                y = fi.avg_pool2d(x, k, s, p, backend=backend)
                fi.avg_pool2d_backward(y, x, k, s, p, backend=backend)
    yield "pool", pool

    def sgd(dtype, backend):
        for n in sizes:
            p, g, v = (r.standard_normal(n).astype(dtype) for _ in range(3))
            fi.sgd_step_([p], [g], 0.1, [v], 0.9, 1e-4, backend=backend)
            fi.sgd_step_([p], [g], 0.1, backend=backend)
    yield "sgd", sgd

    acts = ("relu", "leaky_relu", "tanh", "sigmoid", "elu", "gelu")

    def activations(dtype, backend):
        for n in sizes:
            x = r.standard_normal(n).astype(dtype)
            for a in acts:
                getattr(fi, a)(x, backend=backend)
                getattr(fi, a + "_backward")(x, x, backend=backend)
    yield "activations", activations

    def loss(dtype, backend):
        logits = r.standard_normal((16, 10)).astype(dtype)
        fi.softmax_cross_entropy(logits, np.arange(16) % 10, backend=backend)
    yield "loss", loss


def run(backend="numba", progress=None):
    """Run every exercise on ``backend``; yields (name, seconds) after each. ``progress``, when
    given, is called with a message before each exercise starts (a cold one can take a minute)."""
    for name, fn in _exercises():
        if progress:
            progress(f"  {name} ...")
        t0 = time.perf_counter()
        for dtype in (np.float32, np.float64):
            fn(dtype, backend)
        yield name, time.perf_counter() - t0
