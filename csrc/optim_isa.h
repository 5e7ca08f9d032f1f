/* The SGD update of one (element type, ISA) instantiation: included by optim.c through
 * instances.h (FI_T, FI_ISA, FI_SFX, FI_ATTR). sgd_slices_<sfx> updates this thread's slice of
 * every array. */
#define FI_FN(name) FI_CAT(name, FI_SFX)

FI_ATTR static void FI_FN(sgd_range_)(FI_T *restrict p, const FI_T *restrict g, FI_T *restrict v,
                                      int64_t lo, int64_t hi, FI_T lr, FI_T m, FI_T wd) {
    if (v && wd != 0) {
        for (int64_t j = lo; j < hi; j++) {
            FI_T d = g[j] + wd * p[j];
            FI_T u = m * v[j] + d;
            v[j] = u;
            p[j] = p[j] - lr * u;
        }
    } else if (v) {
        for (int64_t j = lo; j < hi; j++) {
            FI_T u = m * v[j] + g[j];
            v[j] = u;
            p[j] = p[j] - lr * u;
        }
    } else if (wd != 0) {
        for (int64_t j = lo; j < hi; j++) p[j] = p[j] - lr * (g[j] + wd * p[j]);
    } else {
        for (int64_t j = lo; j < hi; j++) p[j] = p[j] - lr * g[j];
    }
}

FI_ATTR static void FI_FN(sgd_slices_)(void **p, void **g, void **v, const int64_t *sizes,
                                       int64_t count, int part, int parts, double lr, double m,
                                       double wd) {
    for (int64_t i = 0; i < count; i++) {
        int64_t n = sizes[i];
        int64_t step = (n / parts + OPT_ALIGN - 1) / OPT_ALIGN * OPT_ALIGN;
        int64_t lo = part * step, hi = part == parts - 1 ? n : lo + step;
        if (hi > n) hi = n;
        if (lo < hi)
            FI_FN(sgd_range_)((FI_T *)p[i], (const FI_T *)g[i], (FI_T *)(v && m != 0 ? v[i] : 0),
                              lo, hi, (FI_T)lr, (FI_T)m, (FI_T)wd);
    }
}

#undef FI_FN
