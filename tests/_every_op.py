"""Every public op once, on one backend, at sizes where the kernels run in parallel (for the
fork and thread tests). ``every_op(backend)`` returns ``{name: result array}``."""
import numpy as np

import fastinit as fi

#: elements of the elementwise inputs: above every kernel's parallel threshold
N = 1 << 18


def _inputs(dtype=np.float32):
    r = np.random.default_rng(0)
    f = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return dict(v=f(N), dy=f(N), a=f(160, 150), b=f(150, 140), x4=f(2, 8, 32, 32),
                w4=f(8, 8, 3, 3), w5=f(8, 8, 5, 5), b8=f(8), dy4=f(2, 8, 32, 32),
                xp=f(4, 16, 64, 64), xb=f(8, 16, 48, 48), g16=f(16), lx=f(128, 300),
                lw=f(200, 300), lb=f(200), ldy=f(128, 200), logits=f(512, 100),
                labels=r.integers(0, 100, 512))


def every_op(backend):
    """{name: result} of every op on ``backend`` (fixed inputs, so two calls agree)."""
    d = _inputs()
    out = {}
    for name in ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "gelu", "identity"):
        out[name] = getattr(fi, name)(d["v"], backend=backend)
        out[name + "_backward"] = getattr(fi, name + "_backward")(d["dy"], d["v"],
                                                                  backend=backend)
    out["matmul"] = fi.matmul(d["a"], d["b"], backend=backend)
    out["linear"] = fi.linear(d["lx"], d["lw"], d["lb"], backend=backend)
    out["linear_backward"] = np.concatenate(
        [g.ravel() for g in fi.linear_backward(d["ldy"], d["lx"], d["lw"], backend=backend)])
    for w, tag in ((d["w4"], "3x3"), (d["w5"], "5x5")):
        out["conv2d_" + tag] = fi.conv2d(d["x4"], w, d["b8"], padding="same", backend=backend)
        out["conv2d_backward_" + tag] = np.concatenate(
            [g.ravel() for g in fi.conv2d_backward(d["dy4"], d["x4"], w, padding="same",
                                                   backend=backend)])
    y, saved = fi.batch_norm(d["xb"], d["g16"], d["g16"], backend=backend)
    out["batch_norm"] = y
    out["batch_norm_backward"] = fi.batch_norm_backward(y, d["xb"], d["g16"], saved,
                                                        backend=backend)[0]
    out["max_pool2d"] = fi.max_pool2d(d["xp"], 2, backend=backend)
    out["max_pool2d_backward"] = fi.max_pool2d_backward(out["max_pool2d"], d["xp"], 2,
                                                        backend=backend)
    out["avg_pool2d"] = fi.avg_pool2d(d["xp"], 2, backend=backend)
    out["avg_pool2d_backward"] = fi.avg_pool2d_backward(out["avg_pool2d"], d["xp"], 2,
                                                        backend=backend)
    loss, dlogits = fi.softmax_cross_entropy(d["logits"], d["labels"], backend=backend)
    out["softmax_cross_entropy"] = np.append(dlogits.ravel(), loss)
    loss, dpred = fi.mse(d["v"], d["dy"], backend=backend)
    out["mse"] = np.append(dpred, loss)
    g = [d["v"].copy(), d["dy"].copy()]
    out["clip_grad_norm_"] = np.append(np.concatenate(g), fi.clip_grad_norm_(g, 1.0,
                                                                           backend=backend))
    fi.clip_grad_value_(g, 1e-4, backend=backend)
    out["clip_grad_value_"] = np.concatenate(g)
    p, v = [d["v"].copy()], [np.zeros(N, np.float32)]
    fi.sgd_step_(p, [d["dy"]], 0.1, v, momentum=0.9, weight_decay=1e-4, backend=backend)
    out["sgd_step_"] = np.concatenate([p[0], v[0]])
    s = fi.rng.Stream(7)
    out["uniform"] = s.uniform(N, backend=backend)
    out["normal"] = s.normal(N, backend=backend)
    out["truncated_normal"] = s.trunc_normal(N, backend=backend)
    return out


def mismatches(got, want):
    """Names whose results differ beyond float32 rounding (thread counts may reorder sums)."""
    return [k for k in want if k not in got or got[k].shape != want[k].shape
            or not np.allclose(got[k], want[k], rtol=1e-4, atol=1e-5, equal_nan=True)]
