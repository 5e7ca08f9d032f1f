/* One 2x2 max-pool step of MP_VL lanes for row width MP_OW (a parameter of this header,
 * undefined at its end): included by pool_isa.h once per MP_OW in 1, 2, 4, ... MP_VL, inside
 * one (element type, ISA) instantiation (mp_vt, mp_vtu, mp_vi: its vector types).
 *
 * The VL windows whose top-row pairs are xt[0..2VL) and bottom-row pairs xb[0..2VL) (as
 * (top, bottom) rows of OW when OW < VL: then xb = xt + 2VL). Writes y, or (back) the gradient
 * of the 4*VL inputs, keeping in *orphan the running minimum of the window maxima (-inf: some
 * window had no winner). Every function here carries the build's target itself: early
 * optimisation of a default-target body rewrote the selects of the 64-byte vectors into
 * comparison masks that gcc 12 then built element by element (a much slower backward). */
#define MP_LANES(F) FI_CAT(MP_LANES_, MP_VL)(F, MP_OW)
#define MP_STEP FI_CAT(FI_FN(mp_step_), FI_CAT(_, MP_OW))

FI_ATTR FI_INLINE void MP_STEP(int back, FI_T *y, FI_T *dxt, FI_T *dxb, const FI_T *dy,
                               const FI_T *xt, const FI_T *xb, mp_vt ninf, mp_vt *orphan) {
    const mp_vi m_even = {MP_LANES(MP_EVEN)}, m_odd = {MP_LANES(MP_ODD)};
    const mp_vi m_top = {MP_LANES(MP_TOP)}, m_bot = {MP_LANES(MP_BOT)};
    mp_vt x0 = *(const mp_vtu *)xt, x1 = *(const mp_vtu *)(xt + MP_VL);
    mp_vt x2 = *(const mp_vtu *)xb, x3 = *(const mp_vtu *)(xb + MP_VL);
    mp_vt e01 = __builtin_shuffle(x0, x1, m_even), o01 = __builtin_shuffle(x0, x1, m_odd);
    mp_vt e23 = __builtin_shuffle(x2, x3, m_even), o23 = __builtin_shuffle(x2, x3, m_odd);
    mp_vt t0 = __builtin_shuffle(e01, e23, m_top), t1 = __builtin_shuffle(o01, o23, m_top);
    mp_vt b0 = __builtin_shuffle(e01, e23, m_bot), b1 = __builtin_shuffle(o01, o23, m_bot);
    mp_vi a0 = t0 > ninf;
    mp_vt ht = MP_SEL(a0, t0, ninf);
    mp_vi a1 = t1 > ht;
    ht = MP_SEL(a1, t1, ht);
    mp_vi c0 = b0 > ninf;
    mp_vt hb = MP_SEL(c0, b0, ninf);
    mp_vi c1 = b1 > hb;
    hb = MP_SEL(c1, b1, hb);
    mp_vi gv = hb > ht;
    mp_vt best = MP_SEL(gv, hb, ht);
    if (!back) {
        *(mp_vtu *)y = best;
        return;
    }
    const mp_vi m_ilo = {MP_LANES(MP_ILV_LO)}, m_ihi = {MP_LANES(MP_ILV_HI)};
    const mp_vi m_ivlo = {MP_LANES(MP_INV_LO)}, m_ivhi = {MP_LANES(MP_INV_HI)};
    /* each window's winner gets 0 + dy (as the reference's sum: -0 -> +0), the rest 0 */
    mp_vt g = *(const mp_vtu *)dy + (FI_T)0, zero = {0};
    mp_vt ut0 = MP_SEL(a0, g, zero), ut1 = MP_SEL(a1, g, zero);
    ut0 = MP_SEL(a1, zero, ut0); /* t1 won the top row */
    mp_vt ub0 = MP_SEL(c0, g, zero), ub1 = MP_SEL(c1, g, zero);
    ub0 = MP_SEL(c1, zero, ub0);
    mp_vt dt0 = MP_SEL(gv, zero, ut0), dt1 = MP_SEL(gv, zero, ut1);
    mp_vt db0 = MP_SEL(gv, ub0, zero), db1 = MP_SEL(gv, ub1, zero);
    mp_vt de01 = __builtin_shuffle(dt0, db0, m_ivlo);
    mp_vt de23 = __builtin_shuffle(dt0, db0, m_ivhi);
    mp_vt do01 = __builtin_shuffle(dt1, db1, m_ivlo);
    mp_vt do23 = __builtin_shuffle(dt1, db1, m_ivhi);
    *(mp_vtu *)dxt = __builtin_shuffle(de01, do01, m_ilo);
    *(mp_vtu *)(dxt + MP_VL) = __builtin_shuffle(de01, do01, m_ihi);
    *(mp_vtu *)dxb = __builtin_shuffle(de23, do23, m_ilo);
    *(mp_vtu *)(dxb + MP_VL) = __builtin_shuffle(de23, do23, m_ihi);
    mp_vi low = best < *orphan; /* running minimum: -inf when some window had no winner */
    *orphan = MP_SEL(low, best, *orphan);
}

/* steps over contiguous whole row pairs (OW < VL, w == 2 * OW) */
FI_ATTR FI_INLINE void FI_CAT(FI_FN(mp_run_), FI_CAT(_, MP_OW))(int back, FI_T *y, FI_T *dx,
                                                                const FI_T *dy, const FI_T *x,
                                                                int64_t steps, mp_vt ninf,
                                                                mp_vt *orphan) {
    for (int64_t s = 0; s < steps; s++) {
        FI_T *d = back ? dx + s * 4 * MP_VL : NULL;
        MP_STEP(back, back ? NULL : y + s * MP_VL, d, back ? d + 2 * MP_VL : NULL,
                back ? dy + s * MP_VL : NULL, x + s * 4 * MP_VL, x + s * 4 * MP_VL + 2 * MP_VL,
                ninf, orphan);
    }
}

#undef MP_LANES
#undef MP_STEP
#undef MP_OW
