"""NumPy reference of 2-D convolution: im2col + matmul, written to be read. The oracle.

Shapes (PyTorch's layout): x (N, C, H, W), w (K, C/groups, R, S), b (K,) or None,
y (N, K, OH, OW). The wrapper (:mod:`fastinit.ops.conv`) has checked every argument and passes
them normalised: ``stride = (sh, sw)``, ``padding = ((top, bottom), (left, right))``,
``dilation = (dh, dw)``, ``groups`` an int; outputs are C-contiguous arrays filled in place.

    y[n, k, oy, ox] = b[k] + sum_{c, r, s} w[k, c, r, s]
                                         * xp[n, g*Cg + c, oy*sh + r*dh, ox*sw + s*dw]

where ``xp`` is x zero-padded and ``g = k // (K/groups)`` is the group of output channel k.

im2col gathers, for every output pixel, the Cg*R*S input values it sees: a matrix
``cols (Cg*R*S, OH*OW)`` per image and group, so the convolution is the product
``w_g (Kg, Cg*R*S) @ cols``. The backward passes are the same product turned around:
``dw_g = sum_n dy_g @ cols.T`` and ``dcols = w_g.T @ dy_g``, which col2im adds back onto the
padded input's positions (a position seen by several taps collects all their contributions).
The im2col matrix is R*S times the size of the image: fine for an oracle, ruinous for speed
(the fast kernels never build it; see fastinit/_numba/conv.py).
"""
import numpy as np


def output_size(size, pad, kernel, stride, dilation):
    """Output length along one axis: floor((size + pads - dilation*(kernel-1) - 1) / stride) + 1."""
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def _padded(x, padding):
    (pt, pb), (pl, pr) = padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))


def _im2col(xp, kernel, stride, dilation, out):
    """cols (N, C, R, S, OH, OW): cols[n, c, r, s, oy, ox] = xp[n, c, oy*sh + r*dh, ox*sw + s*dw]
    (a copy: a strided view would do for the product, but the copy reads more plainly)."""
    (R, S), (sh, sw), (dh, dw), (OH, OW) = kernel, stride, dilation, out
    N, C = xp.shape[:2]
    cols = np.empty((N, C, R, S, OH, OW), xp.dtype)
    for r in range(R):
        for s in range(S):
            cols[:, :, r, s] = xp[:, :, r * dh:r * dh + sh * (OH - 1) + 1:sh,
                                  s * dw:s * dw + sw * (OW - 1) + 1:sw]
    return cols


def _col2im(dcols, padded_shape, stride, dilation):
    """The adjoint of _im2col: dxp (N, C, Hp, Wp) collects dcols (N, C, R, S, OH, OW)."""
    N, C, R, S, OH, OW = dcols.shape
    (sh, sw), (dh, dw) = stride, dilation
    dxp = np.zeros(padded_shape, dcols.dtype)
    for r in range(R):
        for s in range(S):
            dxp[:, :, r * dh:r * dh + sh * (OH - 1) + 1:sh,
                s * dw:s * dw + sw * (OW - 1) + 1:sw] += dcols[:, :, r, s]
    return dxp


def isa():
    """The reference runs no vector kernels of its own (the planner gives it its own plan)."""
    return "portable"


def conv2d(y, x, w, b, geo, plan=None):
    """Fill y (N, K, OH, OW) from x, w and b (``geo`` is ``fastinit.ops.conv.Geometry``)."""
    stride, padding, dilation, groups = geo.stride, geo.padding, geo.dilation, geo.groups
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    OH, OW = y.shape[2:]
    Kg = K // groups
    cols = _im2col(_padded(x, padding), (R, S), stride, dilation, (OH, OW))
    cols = cols.reshape(N, groups, Cg * R * S, OH * OW)
    wmat = w.reshape(groups, Kg, Cg * R * S)
    out = y.reshape(N, groups, Kg, OH * OW)
    for g in range(groups):
        np.matmul(wmat[g], cols[:, g], out=out[:, g])   # (Kg, CRS) @ (N, CRS, P)
    if b is not None:
        y += b.reshape(1, K, 1, 1)
    return y


def conv2d_backward(dx, dw, db, dy, x, w, geo, plans=None):
    """Fill whichever of dx (like x), dw (like w), db (K,) is not None."""
    stride, padding, dilation, groups = geo.stride, geo.padding, geo.dilation, geo.groups
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    OH, OW = dy.shape[2:]
    Kg = K // groups
    dyg = dy.reshape(N, groups, Kg, OH * OW)
    wmat = w.reshape(groups, Kg, Cg * R * S)
    if dw is not None:
        cols = _im2col(_padded(x, padding), (R, S), stride, dilation, (OH, OW))
        cols = cols.reshape(N, groups, Cg * R * S, OH * OW)
        dwg = dw.reshape(groups, Kg, Cg * R * S)
        for g in range(groups):
            # sum over images of dy_g (Kg, P) @ cols_g.T (P, CRS)
            dwg[g] = np.einsum("nkp,ncp->kc", dyg[:, g], cols[:, g], optimize=True)
    if dx is not None:
        dcols = np.empty((N, groups, Cg * R * S, OH * OW), dy.dtype)
        for g in range(groups):
            np.matmul(wmat[g].T, dyg[:, g], out=dcols[:, g])   # (CRS, Kg) @ (N, Kg, P)
        (pt, pb), (pl, pr) = padding
        dxp = _col2im(dcols.reshape(N, C, R, S, OH, OW), (N, C, H + pt + pb, W + pl + pr),
                      stride, dilation)
        dx[...] = dxp[:, :, pt:pt + H, pl:pl + W]
    if db is not None:
        db[...] = dy.sum(axis=(0, 2, 3), dtype=np.float64)
    return dx, dw, db
