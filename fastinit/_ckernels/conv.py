"""C kernels of 2-D convolution: thin calls that follow the planner's :class:`Plan`
(:mod:`fastinit.ops.conv`): the general engine (csrc/conv2d.c) or Winograd (csrc/winograd.c,
:mod:`fastinit._ckernels.conv3x3`). Arrays arrive C-contiguous and checked.
"""
from .. import _c
from . import conv3x3 as _wino

_STRUCTS = {}
_PATHS = {}


def _paths():
    return {"implicit": _c.lib.FI_CONV_IMPLICIT, "depthwise": _c.lib.FI_CONV_DEPTHWISE,
            "direct": _c.lib.FI_CONV_DIRECT}


def isa():
    """The vector ISA the C kernels run on here (the planner's tile shape): fi_isa()'s."""
    return _c.cpu_features()


def _struct(geo, plan, bits, threads):
    """The fi_conv_plan of a call (cached per plan object: plans are cached by the planner)."""
    hit = _STRUCTS.get(id(plan))
    if hit is not None and hit[0] is plan and hit[1] == bits:
        return hit[2]
    if not _PATHS:
        _PATHS.update(_paths())
    N, C, H, W = geo.x_shape
    K, _, R, S = geo.w_shape
    b = plan.blocking
    st = _c.ffi.new("fi_conv_plan *", dict(
        n=N, c=C, h=H, w=W, k=K, r=R, s=S, sh=geo.stride[0], sw=geo.stride[1],
        pt=geo.padding[0][0], pl=geo.padding[1][0], dh=geo.dilation[0], dw=geo.dilation[1],
        groups=geo.groups, oh=geo.out_shape[2], ow=geo.out_shape[3],
        path=_PATHS.get(plan.path, _PATHS["implicit"]),   # (db alone: any path's geometry)
        nc=b.get("nc", 0),
        kc=b.get("kc", 0), tb=b.get("tb", 0), chunks=b.get("chunks", 0),
        parts=b.get("parts", 1), imgs=b.get("imgs", 1), split=b.get("split", 0),
        threads=threads, bits=bits))
    if len(_STRUCTS) > 1024:
        _STRUCTS.clear()
    _STRUCTS[id(plan)] = (plan, bits, st)
    return st


def _p(a):
    return _c.ffi.NULL if a is None else _c.ffi.from_buffer(a)


def _threads():
    return _c.lib.fi_get_num_threads()


def conv2d(y, x, w, b, geo, plan):
    if plan.path == "winograd":
        return _wino.conv2d(y, x, w, b, geo.padding)
    st = _struct(geo, plan, 8 * x.itemsize, _threads())
    _c.check(_c.lib.fi_conv2d_forward(_p(y), _p(x), _p(w), _p(b), st), "conv2d")
    return y


def conv2d_backward(dx, dw, db, dy, x, w, geo, plans):
    plan_dx, plan_dw = plans
    bits = 8 * dy.itemsize
    if dx is not None:
        if plan_dx.path == "winograd":
            _wino.backward_data(dx, dy, w, geo.padding)
        else:
            st = _struct(geo, plan_dx, bits, _threads())
            _c.check(_c.lib.fi_conv2d_backward_data(_p(dx), _p(dy), _p(w), st),
                     "conv2d_backward")
    if plan_dw is not None:
        if plan_dw.path == "winograd" and dw is not None:
            _wino.backward_weights(dw, db, dy, x, geo.padding)   # db rides along
            db = None
        elif dw is not None:
            st = _struct(geo, plan_dw, bits, _threads())
            _c.check(_c.lib.fi_conv2d_backward_weights(_p(dw), _p(dy), _p(x), st),
                     "conv2d_backward")
        if db is not None:
            _c.lib.fi_conv2d_bias_grad(_p(db), _p(dy), _struct(geo, plan_dw, bits, _threads()))
    return dx, dw, db
