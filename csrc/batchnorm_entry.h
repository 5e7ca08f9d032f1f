/* The batch-norm entry points of one element type: included twice by batchnorm.c with FI_T
 * (float, double) and FI_TS (its name suffix: f32, f64), which this header undefines at its
 * end. Each describes its call in a bn_args and runs the build fi_isa() names. */
#define BE_FN(name) FI_CAT(name, FI_TS)

fi_status BE_FN(fi_batch_norm_forward_train_)(FI_T *y, double *mean, double *var, double *invstd,
                                              const FI_T *x, const FI_T *gamma, const FI_T *beta,
                                              double eps, int64_t n, int64_t c, int64_t s) {
    bn_args a = {.kind = BN_TRAIN, .out = y, .mean = mean, .var = var, .invstd = invstd,
                 .x = x, .gamma = gamma, .beta = beta, .eps = eps, .n = n, .c = c, .s = s};
    return FI_ISA_PICK(fi_isa(), bn_run_, FI_TS)(&a);
}

fi_status BE_FN(fi_batch_norm_forward_eval_)(FI_T *y, double *invstd, const FI_T *x,
                                             const FI_T *gamma, const FI_T *beta,
                                             const double *mean, const double *var, double eps,
                                             int64_t n, int64_t c, int64_t s) {
    bn_args a = {.kind = BN_EVAL, .out = y, .mean = (double *)mean, .var = (double *)var,
                 .invstd = invstd, .x = x, .gamma = gamma, .beta = beta, .eps = eps, .n = n,
                 .c = c, .s = s};
    return FI_ISA_PICK(fi_isa(), bn_run_, FI_TS)(&a);
}

fi_status BE_FN(fi_batch_norm_backward_)(FI_T *dx, FI_T *dgamma, FI_T *dbeta, const FI_T *dy,
                                         const FI_T *x, const FI_T *gamma, const double *mean,
                                         const double *invstd, int training, int64_t n, int64_t c,
                                         int64_t s) {
    bn_args a = {.kind = BN_BACKWARD, .training = training, .out = dx, .dgamma = dgamma,
                 .dbeta = dbeta, .mean = (double *)mean, .invstd = (double *)invstd, .x = x,
                 .dy = dy, .gamma = gamma, .n = n, .c = c, .s = s};
    return FI_ISA_PICK(fi_isa(), bn_run_, FI_TS)(&a);
}

#undef BE_FN
#undef FI_T
#undef FI_TS
