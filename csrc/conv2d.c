/* 2-D convolution, the general engine: forward, backward data and backward weights for any
 * stride, padding, dilation and groups, as products on the GEMM's register tile
 * (gemm_tile.h) fed by blocks of the patch matrix built on the fly (no full im2col).
 *
 * x (N, C, H, W), w (K, Cg, R, S), y (N, K, OH, OW); G groups, Cg = C/G, Kg = K/G. Per group
 * the convolution is the product  Y_g (Kg x N*OH*OW) = W_g (Kg x T) @ X_g (T x N*OH*OW)  with
 * T = Cg*R*S taps and X_g the patch matrix: X_g[t, j] = x[n, g*Cg + c, oy*sh + r*dh - pt,
 * ox*sw + s*dw - pl] for tap t = (c*R + r)*S + s and pixel j = (n*OH + oy)*OW + ox (zero in
 * the padding). Pixels run across images, so small maps (7x7) still fill the tile's vectors.
 *
 *   forward   per chunk of pixels, per block of taps: the block of X_g is built (im2col of
 *             the block only), then panels of packed weights (FI_MR output channels) run the
 *             tile over it; the chunk of Y goes to y with the bias.
 *   dx        dX_g = W_g^T dY_g, added back into dx (col2im, the adjoint of building X_g):
 *             per chunk of pixels and block of taps, the tile computes the block of dX_g from
 *             the chunk of dy and it is added into dx. Threads own whole images (or input
 *             channels), so no two add into the same place.
 *   dw        dW_g^T (T x Kg) = X_g dY_g^T, reducing over the pixels: per chunk, dy
 *             transposed and blocks of X_g, the tile reducing over the chunk. Threads split
 *             the pixels (a partial dW each, added in a fixed order: the result does not
 *             depend on the thread count) or, for large dW, the taps.
 *
 * The blocking (pixels per chunk nc, taps per block, the parallel split) comes from the
 * planner (fastinit/ops/conv.py), which says why; the kernels execute it. Per-thread scratch
 * is a few blocks: it depends on the channels and the blocking, never on the stride or the
 * image size. Vector paths: AVX-512, AVX2+FMA, portable, chosen at run time.
 */
#include <stdlib.h>
#include <string.h>
#include "fastinit.h"
#include "dispatch.h"
#include "scratch.h"

/* A convolution and its plan, with the sizes the kernels derive from it */
typedef struct {
    int64_t N, C, H, W, K, R, S, sh, sw, pt, pl, dh, dw, G, OH, OW;
    int64_t Cg, Kg, T, RS, P, J, HW;
    int64_t nc, kc, tb, chunks, parts, imgs, split;
    int threads, bits;
} fi_cv;

static fi_cv fi_cv_make(const fi_conv_plan *p) {
    fi_cv q = {p->n, p->c, p->h, p->w, p->k, p->r, p->s, p->sh, p->sw, p->pt, p->pl, p->dh,
               p->dw, p->groups, p->oh, p->ow};
    q.Cg = q.C / q.G;
    q.Kg = q.K / q.G;
    q.RS = q.R * q.S;
    q.T = q.Cg * q.RS;
    q.P = q.OH * q.OW;
    q.J = q.N * q.P;
    q.HW = q.H * q.W;
    q.nc = p->nc > 0 ? p->nc : 1;
    q.kc = p->kc > 0 ? p->kc : 1;
    q.tb = p->tb > 0 ? p->tb : 1;
    q.chunks = p->chunks > 0 ? p->chunks : 1;
    q.parts = p->parts > 0 ? p->parts : 1;
    q.imgs = p->imgs > 0 ? p->imgs : 1;
    q.split = p->split;
    q.threads = p->threads > 0 ? (int)p->threads : 1;
    q.bits = p->bits == 64 ? 64 : 32;
    return q;
}

/* Row length of a block of n pixels (or channels): whole tiles of 32 values, and never a
 * multiple of 4 KB (rows that far apart share one set of the L1 cache) */
static int64_t fi_cv_ld(int64_t n) {
    const int64_t ld = (n + 31) & ~(int64_t)31;
    return ld % 1024 ? ld : ld + 32;
}

/* tb taps in whole panels of mr (and one more panel: transposes spill past the last) */
static int64_t fi_cv_tpad(int64_t tb, int64_t mr) {
    return (tb + mr - 1) / mr * mr + mr;
}

/* taps of the largest part of the input channels (dx), in whole panels of mr */
static int64_t fi_cv_tmax(const fi_cv *q, int64_t mr) {
    const int64_t taps = (q->Cg + q->parts - 1) / q->parts * q->RS;
    return (taps + mr - 1) / mr * mr;
}


/* Scratch: the calling thread's buffer (scratch.h), reused call after call (a fresh
 * multi-megabyte buffer costs a page fault per 4 KB on first touch); every thread's blocks are
 * cut from it */
static void *fi_cv_scratch(size_t bytes) {
    return fi_scratch(FI_SCRATCH_CONV, bytes);
}

#define FI_BODY "conv2d_isa.h"
#include "instances.h"

/* ---- run-time path: fi_isa(), the one cap (FASTINIT_C_ISA, fi_isa_cap) ---- */
#define fi_conv_isa fi_isa

/* rows and columns (two vectors of `bits`-bit values) of the register tile on the current
 * path */
static int64_t fi_cv_mr(void) {
    const int isa = fi_conv_isa();
    return isa == FI_ISA_AVX512 ? 12 : isa == FI_ISA_AVX2 ? 6 : 4;
}
static int64_t fi_cv_nr(int bits) {
    const int isa = fi_conv_isa();
    return 2 * (isa == FI_ISA_AVX512 ? 512 : isa == FI_ISA_AVX2 ? 256 : 128) / bits;
}

/* The direct path's padded extent (Hp, Wp) and tap table tab[t] = offset of tap (c, r, s) in
 * the padded planes; NULL when out of memory (the caller frees it) */
static int64_t *fi_cv_taps(const fi_cv *q, int64_t *Hp, int64_t *Wp) {
    *Hp = (q->OH - 1) * q->sh + (q->R - 1) * q->dh + 1;
    *Wp = (q->OW - 1) * q->sw + (q->S - 1) * q->dw + 1;
    int64_t *tab = malloc((size_t)q->T * sizeof(int64_t));
    if (tab)
        for (int64_t t = 0; t < q->T; t++)
            tab[t] = ((t / q->RS) * *Hp + t / q->S % q->R * q->dh) * *Wp + t % q->S * q->dw;
    return tab;
}

/* FN##f32/f64##_<isa> ARGS for the plan's element type, on the current path */
#define FI_CV_CALL(q, FN, ARGS)                                                                \
    do {                                                                                       \
        if ((q).bits == 64) FI_ISA_CALL(fi_conv_isa(), FN, f64, ARGS);                        \
        else FI_ISA_CALL(fi_conv_isa(), FN, f32, ARGS);                                       \
    } while (0)

/* 1 when the n values at a (float or double) are all finite */
static int fi_cv_finite(const void *a, int64_t n, int bits) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += bits == 64 ? ((const double *)a)[i] * 0.0
                                                   : ((const float *)a)[i] * 0.0;
    return s == 0;
}

/* depthwise: pass 0 forward, 1 dx, 2 dw (see fi_dw_run_) */
static fi_status fi_conv2d_depthwise(void *out, const void *a, const void *b, const void *bias,
                               const fi_conv_plan *p, int pass) {
    if (pass == 1 && p->sh == 1 && p->sw == 1 && fi_cv_finite(b, p->c * p->r * p->s, p->bits)) {
        /* stride 1: dx is the correlation of dy, padded by (R-1)*dh - pt (top) and (S-1)*dw -
         * pl (left), with the kernels turned by 180 degrees - a forward pass, which reads
         * each tap where the scatter into dx reads and writes it. (Not with an inf or NaN
         * weight: it would meet the padding's zeros, NaN where the scatter adds nothing.) */
        fi_conv_plan f = *p;
        f.h = p->oh, f.w = p->ow, f.oh = p->h, f.ow = p->w;
        f.pt = (p->r - 1) * p->dh - p->pt, f.pl = (p->s - 1) * p->dw - p->pl;
        const int64_t RS = p->r * p->s, es = p->bits / 8;
        char *wf = malloc((size_t)(p->c * RS * es));
        if (!wf) return FI_ERR_NOMEM;
        for (int64_t i = 0; i < p->c * RS; i++)   /* w[c, t] -> wf[c, RS-1-t] */
            memcpy(wf + i * es, (const char *)b + (i - i % RS + RS - 1 - i % RS) * es, es);
        const int status = fi_conv2d_depthwise(out, a, wf, NULL, &f, 0);
        free(wf);
        return status;
    }
    const fi_cv q = fi_cv_make(p);
    const int64_t v = 64 / (q.bits / 8);   /* the widest vector's lanes: room for any path */
    const int64_t Hp = (q.OH - 1) * q.sh + (q.R - 1) * q.dh + 1;
    const int64_t Wp = (q.OW - 1) * q.sw + (q.S - 1) * q.dw + 1;
    const int64_t per = (Hp * Wp + q.P + (q.HW > q.P ? q.HW : q.P) + q.RS + 1) * v + 64;
    const int64_t nacc = pass == 2 ? q.parts * q.C * q.RS : 0;
    char *ws = fi_cv_scratch((size_t)(nacc + per * q.threads) * q.bits / 8);
    if (!ws) return FI_ERR_NOMEM;
    FI_CV_CALL(q, fi_dw_run_, (pass == 2 ? (void *)ws : out, a, b, bias, &q,
                               ws + nacc * q.bits / 8, per, pass));
    if (pass == 2) {   /* the parts' sums, in order */
        const size_t es = q.bits / 8;
        for (int64_t i = 0; i < q.C * q.RS; i++) {
            double s = 0;
            for (int64_t k = 0; k < q.parts; k++)
                s += es == 8 ? ((double *)ws)[k * q.C * q.RS + i] : ((float *)ws)[k * q.C * q.RS + i];
            if (es == 8) ((double *)out)[i] = s;
            else ((float *)out)[i] = (float)s;
        }
    }
    return FI_OK;
}

fi_status fi_conv2d_forward(void *y, const void *x, const void *w, const void *b,
                            const fi_conv_plan *p) {
    if (p->path == FI_CONV_DEPTHWISE) return fi_conv2d_depthwise(y, x, w, b, p, 0);
    const fi_cv q = fi_cv_make(p);
    if (p->path == FI_CONV_DIRECT) {
        int64_t Hp, Wp;
        const int64_t nr = fi_cv_nr(q.bits), npan = (q.Kg + nr - 1) / nr;
        int64_t *tab = fi_cv_taps(&q, &Hp, &Wp);
        const int64_t per = q.Cg * Hp * Wp + fi_cv_mr() * nr + 64;
        const int64_t wsize = (q.G * npan * q.T * nr + 15) & ~(int64_t)15;
        char *ws = tab ? fi_cv_scratch((size_t)(wsize + per * q.threads) * q.bits / 8) : NULL;
        if (ws) {
            FI_CV_CALL(q, fi_dp_pack_, (ws, w, &q));
            FI_CV_CALL(q, fi_dp_forward_, (y, x, ws, b, &q, tab, ws + wsize * q.bits / 8, per));
        }
        free(tab);
        return ws ? 0 : -1;
    }
    const int64_t mr = fi_cv_mr(), npan = (q.Kg + mr - 1) / mr, ldc = fi_cv_ld(q.nc);
    const int64_t per = (q.kc + (npan + q.parts - 1) / q.parts * mr) * ldc + 64;
    const int64_t wsize = (q.G * npan * q.T * mr + 15) & ~(int64_t)15;
    char *ws = fi_cv_scratch((size_t)(wsize + per * q.threads) * q.bits / 8);
    if (!ws) return FI_ERR_NOMEM;
    FI_CV_CALL(q, fi_cv_pack_w_, (ws, w, &q));
    FI_CV_CALL(q, fi_cv_forward_, (y, x, ws, b, &q, ws + wsize * q.bits / 8, per));
    return FI_OK;
}

fi_status fi_conv2d_backward_data(void *dx, const void *dy, const void *w, const fi_conv_plan *p) {
    if (p->path == FI_CONV_DEPTHWISE) return fi_conv2d_depthwise(dx, dy, w, NULL, p, 1);
    const fi_cv q = fi_cv_make(p);
    const int64_t mr = fi_cv_mr(), tpad = (q.tb + mr - 1) / mr * mr;   /* whole panels */
    const int64_t per = (q.Kg + tpad) * fi_cv_ld(q.nc) + 64;
    const int64_t wsize = (q.G * q.parts * fi_cv_tmax(&q, mr) * q.Kg + 15) & ~(int64_t)15;
    char *ws = fi_cv_scratch((size_t)(wsize + per * q.threads) * q.bits / 8);
    if (!ws) return FI_ERR_NOMEM;
    FI_CV_CALL(q, fi_cv_pack_wt_, (ws, w, &q));
    FI_CV_CALL(q, fi_cv_backward_data_, (dx, dy, ws, &q, ws + wsize * q.bits / 8, per));
    return FI_OK;
}

fi_status fi_conv2d_backward_weights(void *dw, const void *dy, const void *x,
                                     const fi_conv_plan *p) {
    if (p->path == FI_CONV_DEPTHWISE) return fi_conv2d_depthwise(dw, dy, x, NULL, p, 2);
    const fi_cv q = fi_cv_make(p);
    if (p->path == FI_CONV_DIRECT) {
        int64_t Hp, Wp;
        const int64_t ldk = fi_cv_ld(q.Kg), per_acc = q.G * q.T * ldk;
        int64_t *tab = fi_cv_taps(&q, &Hp, &Wp);
        const int64_t per = q.Cg * Hp * Wp + q.OW * ldk + 64;
        char *ws = tab ? fi_cv_scratch((size_t)(per_acc * q.parts + per * q.threads) *
                                       q.bits / 8) : NULL;
        if (ws) {
            FI_CV_CALL(q, fi_dp_weights_, (ws, per_acc, dy, x, &q, tab,
                                            ws + per_acc * q.parts * q.bits / 8, per));
            FI_CV_CALL(q, fi_cv_sum_dw_, (dw, ws, per_acc, q.parts, &q));
        }
        free(tab);
        return ws ? 0 : -1;
    }
    const int64_t tpad = fi_cv_tpad(q.tb, fi_cv_mr());
    const int64_t ldk = fi_cv_ld(q.Kg), per = q.nc * ldk + 2 * tpad * fi_cv_ld(q.nc) + 64;
    const int64_t per_acc = q.G * q.T * ldk, nacc = q.split == 0 ? q.parts : 1;
    char *ws = fi_cv_scratch((size_t)(per_acc * nacc + per * q.threads) * q.bits / 8);
    if (!ws) return FI_ERR_NOMEM;
    FI_CV_CALL(q, fi_cv_backward_weights_,
               (ws, per_acc, dy, x, &q, ws + per_acc * nacc * q.bits / 8, per));
    FI_CV_CALL(q, fi_cv_sum_dw_, (dw, ws, per_acc, nacc, &q));
    return FI_OK;
}

void fi_conv2d_bias_grad(void *db, const void *dy, const fi_conv_plan *p) {
    const fi_cv q = fi_cv_make(p);
    FI_CV_CALL(q, fi_cv_bias_grad_, (db, dy, &q));
}
