"""``fastinit bench``: a quick performance dashboard, one line per op.

For each op, every fastinit backend (C, Numba) and its peers (NumPy/OpenBLAS where NumPy has
the op, PyTorch CPU when installed) run the same work in one process, timed by
:func:`fastinit.lab.timing.measure`: each (fastinit backend, peer) pair back to back in
alternating rounds until every time ratio's 95% interval is within the precision asked for or
the op's time budget runs out. A row shows each library's median time and, for the default
backend (or the one asked for), its time against each peer in words ("2.27x faster
(2.20-2.35x)", "no clear difference" when the interval contains 1). Every fastinit backend's
result is checked against the NumPy reference before anything is timed. The benchmark suite
(``pytest --benchmark``) measures more shapes.
"""
import json
import math
import os
import platform

import numpy as np

from . import timing

OPS = ("init", "matmul", "conv3x3", "conv5x5", "conv7x7", "batchnorm", "clip", "activations")
#: Ops that ``fastinit bench`` runs only when named: the layer sweep (fastinit.lab.layers).
EXTRA_OPS = ("layers",)
PEERS = ("numpy", "torch")


#: The variables :func:`quiet_env` sets, in the order the table's header names them.
QUIET_VARS = ("OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS")


def quiet_env(threads):
    """The variables a dashboard process needs that the caller has not set: {name: value}.
    Both are read when the libraries load, so ``fastinit bench`` starts itself again with them.
    - OPENBLAS_THREAD_TIMEOUT=4: OpenBLAS's idle threads otherwise keep yielding the CPU for
      2^28 cycles after each call (2^4 with it), and the next library's threads wait for them
      (an sgemm right after numpy's took several times its time alone).
    - OMP_NUM_THREADS: in one process PyTorch, Numba's omp layer and the C kernels share one
      libgomp (torch's, loaded under the same name); with no thread count in the environment,
      a conv of ours right after a torch call took over twice its time alone, with it as long
      as alone (GOMP_SPINCOUNT=0, or Numba's workqueue layer, avoid it too).
    ``threads`` is the dashboard's thread count, which :func:`run` gives torch too; OpenBLAS
    reads OMP_NUM_THREADS when OPENBLAS_NUM_THREADS is not set, so numpy runs on it as well
    (every library on the same count)."""
    want = dict(zip(QUIET_VARS, ("4", str(threads))))
    return {k: v for k, v in want.items() if k not in os.environ}


def _env_note():
    return " ".join(f"{k}={os.environ[k]}" for k in QUIET_VARS if k in os.environ)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _case_init(torch, fast):
    import fastinit as fi

    shape = (4096, 4096)
    gen = np.random.default_rng(0)
    buf = {b: np.empty(shape, np.float32) for b in fast + ["numpy"]}
    libs = {b: (lambda b=b: fi.rng.Stream(0).normal(out=buf[b], backend=b)) for b in fast}
    libs["numpy"] = lambda: gen.standard_normal(out=buf["numpy"], dtype=np.float32)
    if torch is not None:
        t = torch.empty(shape)
        libs["torch"] = lambda: torch.nn.init.kaiming_normal_(t)
    check = lambda b: np.array_equal(fi.rng.Stream(0).normal(1001, backend=b),
                                     fi.rng.Stream(0).normal(1001, backend="numpy"))
    return "normal fill 4096x4096 f32", libs, check


def _case_matmul(torch, fast):
    import fastinit as fi

    r = np.random.default_rng(0)
    a, b = (r.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    libs = {be: (lambda be=be: fi.matmul(a, b, backend=be)) for be in fast}
    libs["numpy"] = lambda: a @ b
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        libs["torch"] = lambda: ta @ tb
    ref = a.astype(np.float64) @ b
    check = lambda be: np.allclose(fi.matmul(a, b, backend=be), ref, rtol=1e-3, atol=1e-2)
    return "sgemm 1024^3", libs, check


def _case_conv(k):
    def case(torch, fast):
        import fastinit as fi

        r = np.random.default_rng(0)
        x = r.standard_normal((8, 64, 56, 56)).astype(np.float32)
        w = (r.standard_normal((64, 64, k, k)) * 0.05).astype(np.float32)

        def fwd_bwd(be):
            y = fi.conv2d(x, w, padding="same", backend=be)
            fi.conv2d_backward(y, x, w, padding="same", has_bias=False, need=("dx", "dw"),
                               backend=be)

        libs = {be: (lambda be=be: fwd_bwd(be)) for be in fast}
        if torch is not None:
            tx = torch.from_numpy(x).requires_grad_()
            tw = torch.from_numpy(w).requires_grad_()

            def torch_fwd_bwd():
                y = torch.nn.functional.conv2d(tx, tw, padding="same")
                y.backward(y.detach())
            libs["torch"] = torch_fwd_bwd
        xs, ws = x[:1, :8, :12, :12].copy(), w[:8, :8].copy()
        ref = fi.conv2d(xs, ws, padding="same", backend="numpy")
        check = lambda be: np.allclose(fi.conv2d(xs, ws, padding="same", backend=be), ref,
                                       rtol=1e-3, atol=1e-3)
        return f"conv2d {k}x{k} fwd+bwd N8 C64 56x56 K64", libs, check
    return case


def _case_batchnorm(torch, fast):
    import fastinit as fi

    r = np.random.default_rng(0)
    x = r.standard_normal((32, 64, 56, 56)).astype(np.float32)
    g, b = np.ones(64, np.float32), np.zeros(64, np.float32)

    def run(be):
        y, saved = fi.batch_norm(x, g, b, backend=be)
        fi.batch_norm_backward(y, x, g, saved, backend=be)

    libs = {be: (lambda be=be: run(be)) for be in fast}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        tg = torch.from_numpy(g).requires_grad_()
        tb = torch.from_numpy(b).requires_grad_()

        def torch_run():
            y = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True)
            y.backward(y.detach())
        libs["torch"] = torch_run
    xs = x[:4, :8, :7, :7].copy()
    ref = fi.batch_norm(xs, g[:8], b[:8], backend="numpy")[0]
    check = lambda be: np.allclose(fi.batch_norm(xs, g[:8], b[:8], backend=be)[0], ref,
                                   rtol=1e-4, atol=1e-4)
    return "batch norm train fwd+bwd 32x64x56x56", libs, check


RESNET18_SIZES = [9408, 64, 64] + [36864, 64, 64] * 4 + [73728, 128, 128, 147456, 128, 128,
                  8192, 128, 128, 147456, 128, 128, 147456, 128, 128] + \
                 [294912, 256, 256, 589824, 256, 256, 32768, 256, 256, 589824, 256, 256,
                  589824, 256, 256] + [1179648, 512, 512, 2359296, 512, 512, 131072, 512, 512,
                                       2359296, 512, 512, 2359296, 512, 512] + [512000, 1000]


def _case_clip(torch, fast):
    import fastinit as fi

    r = np.random.default_rng(0)
    grads = {lib: [r.standard_normal(n).astype(np.float32) for n in RESNET18_SIZES]
             for lib in fast + ["ref"]}
    libs = {be: (lambda be=be: fi.clip_grad_norm_(grads[be], 1e9, backend=be)) for be in fast}
    if torch is not None:
        params = []
        for n in RESNET18_SIZES:
            p = torch.zeros(n, requires_grad=True)
            p.grad = torch.randn(n)
            params.append(p)
        libs["torch"] = lambda: torch.nn.utils.clip_grad_norm_(params, 1e9)
    ref = fi.clip_grad_norm_([g.copy() for g in grads["ref"]], 1e9, backend="numpy")
    check = lambda be: abs(fi.clip_grad_norm_([g.copy() for g in grads["ref"]], 1e9,
                                              backend=be) / ref - 1) < 1e-6
    return f"clip_grad_norm_ ResNet-18 ({sum(RESNET18_SIZES) / 1e6:.1f} M floats)", libs, check


def _case_activations(torch, fast):
    import fastinit as fi

    r = np.random.default_rng(0)
    x = r.standard_normal(1 << 24).astype(np.float32)
    out = np.empty_like(x)
    libs = {be: (lambda be=be: fi.relu(x, out=out, backend=be)) for be in fast}
    libs["numpy"] = lambda: np.maximum(x, 0, out=out)
    if torch is not None:
        tx, to = torch.from_numpy(x), torch.from_numpy(out)
        libs["torch"] = lambda: torch.clamp(tx, min=0.0, out=to)
    check = lambda be: np.array_equal(fi.relu(x[:1000], backend=be), np.maximum(x[:1000], 0))
    return "relu 16 M floats", libs, check


CASES = {"init": _case_init, "matmul": _case_matmul, "conv3x3": _case_conv(3),
         "conv5x5": _case_conv(5), "conv7x7": _case_conv(7), "batchnorm": _case_batchnorm,
         "clip": _case_clip, "activations": _case_activations}


def run(ops=OPS, budget=5.0, precision=0.03, backend=None, progress=None):
    """Measure ``ops``; returns {machine, backend, rows, warnings}: per op every library's
    median time and, for each fastinit backend, its time ratio against each peer (ours /
    theirs: below 1 fastinit is faster) with a 95% interval. ``backend``: the backend the
    summary speaks for (default: fastinit's default). ``progress(message)``: called as it goes.
    """
    import fastinit as fi

    unknown = [o for o in ops if o not in CASES]
    if unknown:
        raise ValueError(f"unknown op(s) {unknown}; choose from {', '.join(OPS)}")
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(fi.get_num_threads())
    fast = [n for n, why in fi.backends.available().items() if why is None and n != "numpy"]
    backend = fi.backends.current() if backend is None else backend
    if backend not in fast:
        raise ValueError(f"backend {backend!r} is not available to time: {fast}")
    rows, warnings = [], []
    for op in ops:
        label, libs, check = CASES[op](torch, fast)
        for be in fast:
            if not check(be):
                raise AssertionError(f"{op}: backend {be} disagrees with the reference")
        peers = [p for p in PEERS if p in libs]
        pairs = [(be, p) for be in fast for p in peers]

        def show(rounds, seconds, widest, label=label):
            if progress:
                w = "unknown" if math.isinf(widest) else f"+-{widest:.0%}"
                progress(f"{label}: round {rounds}, {seconds:.1f} s, widest interval {w}")

        if progress:
            progress(f"{label}: warming up")
        m = timing.measure(libs, pairs, budget=budget, precision=precision, progress=show,
                           decide=[(backend, p) for p in peers])
        ratios = {}
        for be in fast:
            ratios[be] = {}
            for p in peers:
                r, lo, hi = m.ratios[(be, p)]
                ratios[be][p] = dict(ratio=r, low=lo, high=hi, words=timing.in_words(r, lo, hi))
        rows.append(dict(op=op, label=label, seconds={lib: m.median(lib) for lib in libs},
                         ratios=ratios, measurement=m.as_dict()))
        warnings += [f"{label}: {w}" for w in m.warnings]
    return dict(machine=dict(python=platform.python_version(), processor=platform.processor(),
                             threads=fi.get_num_threads(), env=_env_note()),
                backend=backend, rows=rows, warnings=warnings,
                convention="time ratio = fastinit's time / the peer's: below 1 fastinit is "
                           "faster; intervals are 95%")


def format_table(result):
    libs = []
    for row in result["rows"]:
        for lib in row["seconds"]:
            if lib not in libs:
                libs.append(lib)
    be = result["backend"]
    label_w = max([len(r["label"]) for r in result["rows"]] + [2])
    head = f"{'op':{label_w}s}" + "".join(f"{lib:>10s}" for lib in libs) + \
        f"  {be} against each peer (95% interval)"
    env = result["machine"].get("env")
    lines = [f"median ms per call, {result['machine']['threads']} threads; fastinit backend "
             f"{be}" + (f"; {env}" if env else ""), head]
    for row in result["rows"]:
        cells = "".join(f"{row['seconds'][l] * 1e3:10.2f}" if l in row["seconds"] else
                        f"{'-':>10s}" for l in libs)
        words = "; ".join(f"vs {p}: {r['words']}" for p, r in row["ratios"][be].items())
        lines.append(f"{row['label']:{label_w}s}{cells}  {words}")
    lines.append("columns: median time of one call in ms; numba and c are fastinit's backends, "
                 "numpy is NumPy (OpenBLAS for sgemm), torch is PyTorch CPU")
    for w in result["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def to_json(result):
    return json.dumps(timing.json_safe(result), indent=2)
