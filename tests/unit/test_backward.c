// Backward kernels: every _ref twin against central finite differences of a double-precision
// forward written here (independent of the library), every fast kernel against its _ref
// twin (on gradient buffers that start non-zero, so += is checked), and the whole model's
// gradient (bd_train_fwd_bwd) against finite differences of a double-precision model forward
// built from the same double ops, on a tiny random model of every variant.
// Error measure: max |got - want| / max |want| over the tensor (want: FD or _ref).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_backward.h"
#include "bd_kernels.h"
#include "bd_qat.h"
#include "bd_relation.h"
#include "bd_test.h"
#include "bd_threads.h"
#include "bd_train.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float urand(void) {  // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}
static float *frand(size_t n, float scale, float offset) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * urand();
    return p;
}
static float *fcopy(const float *a, size_t n) {
    float *p = malloc(n * sizeof *p);
    memcpy(p, a, n * sizeof *p);
    return p;
}
static double *dcopy(const float *a, size_t n) {
    double *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = a[i];
    return p;
}

// max |got - want| / max |want| (NaN propagates to a failing comparison).
static double rel_err(const float *got, const double *want, size_t n) {
    double mx = 0, e = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (isnan(d)) return NAN;
        e = fmax(e, d);
    }
    return e / (mx > 0 ? mx : 1);
}
// got - base against want (the accumulated part of a += kernel).
static double rel_err_acc(const float *got, const float *base, const double *want, size_t n) {
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = got[i] - base[i];
    double e = rel_err(d, want, n);
    free(d);
    return e;
}
static double rel_err_ff(const float *got, const float *want, size_t n) {
    double *w = dcopy(want, n), e = rel_err(got, w, n);
    free(w);
    return e;
}

#define TOL_FD 2e-6    // _ref backward vs finite differences (both double inside, float I/O)
#define TOL_FAST 5e-6  // fast float kernels vs their _ref twins

static void report(const char *op, const char *what, double fd, double fast) {
    printf("backward %-10s %-8s ref-vs-fd %.2e  fast-vs-ref %.2e\n", op, what, fd, fast);
    ck_assert_msg(fd <= TOL_FD, "%s %s: _ref vs finite differences: relative error %.3g", op, what, fd);
    ck_assert_msg(fast <= TOL_FAST, "%s %s: fast vs _ref: relative error %.3g", op, what, fast);
}

// Central differences of f (reading the double array x of n values) in every coordinate.
typedef double (*fwd_fn)(void *ctx);
static double *fd_grad(double *x, size_t n, fwd_fn f, void *ctx) {
    double *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i], h = 1e-5 * fmax(1.0, fabs(x0));
        x[i] = x0 + h;
        double fp = f(ctx);
        x[i] = x0 - h;
        double fm = f(ctx);
        x[i] = x0;
        g[i] = (fp - fm) / (2 * h);
    }
    return g;
}

// ---- double-precision forward ops (also used by the whole-model check) ----

static void d_rmsnorm(double *out, const double *x, const double *w, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += x[(size_t)n * C + c] * x[(size_t)n * C + c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = x[(size_t)n * C + c] * r * w[c];
    }
}
static void d_linear(double *out, const double *x, const double *w, const double *b, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0;
            for (int c = 0; c < C; c++) s += x[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = s;
        }
}
// In place; cos/sin rounded to float as the kernels' table.
static void d_rope(double *x, const int *pos0, int B, int T, int NH, int HS, float theta, bd_rope_style st) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HS / 2; i++) {
                    double a = ((pos0 ? pos0[b] : 0) + t) * pow((double)theta, -2.0 * i / HS);
                    double c = (float)cos(a), s = (float)sin(a);
                    double *p = x + (((size_t)b * T + t) * NH + h) * HS;
                    int ia = st == BD_ROPE_INTERLEAVED ? 2 * i : i,
                        ib = st == BD_ROPE_INTERLEAVED ? 2 * i + 1 : i + HS / 2;
                    double x0 = p[ia], x1 = p[ib];
                    p[ia] = x0 * c - x1 * s;
                    p[ib] = x0 * s + x1 * c;
                }
}
static void d_attention(double *out, const double *q, const double *k, const double *v, int B, int T, int NH, int KV,
                        int HS) {
    int G = NH / KV;
    double *p = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *qt = q + (((size_t)b * T + t) * NH + h) * HS;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    const double *ks = k + (((size_t)b * T + s) * KV + h / G) * HS;
                    double d = 0;
                    for (int e = 0; e < HS; e++) d += qt[e] * ks[e];
                    p[s] = d / sqrt((double)HS);
                    mx = fmax(mx, p[s]);
                }
                for (int s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                double *o = out + (((size_t)b * T + t) * NH + h) * HS;
                for (int e = 0; e < HS; e++) {
                    double acc = 0;
                    for (int s = 0; s <= t; s++) acc += p[s] / sum * v[(((size_t)b * T + s) * KV + h / G) * HS + e];
                    o[e] = acc;
                }
            }
    free(p);
}
static double d_ce(const double *logits, const int32_t *targets, int N, int V) {  // sum of losses
    double total = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const double *x = logits + (size_t)n * V;
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < V; c++) mx = fmax(mx, x[c]);
        for (int c = 0; c < V; c++) s += exp(x[c] - mx);
        total += mx + log(s) - x[targets[n]];
    }
    return total;
}
static double weighted(const double *out, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += out[i] * r[i];
    return s;
}

// ---- per-op checks ----

typedef struct {
    double *x, *w, *b, *out, *k, *v;
    const float *r;
    const int32_t *tok;
    const int *pos0;
    int N, C, OC, B, T, NH, KV, HS, V;
    bd_rope_style st;
} opctx;

static double f_embed(void *p) {
    opctx *c = p;
    double s = 0;
    for (int n = 0; n < c->N; n++)
        for (int j = 0; j < c->C; j++) s += c->w[(size_t)c->tok[n] * c->C + j] * c->r[(size_t)n * c->C + j];
    return s;
}

START_TEST(test_embedding) {
    int N = 9, C = 7, V = 5;
    int32_t tok[9] = {0, 3, 3, 1, 4, 0, 3, 2, 2};
    float *E = frand((size_t)V * C, 1, 0), *r = frand((size_t)N * C, 1, 0);
    float *g0 = frand((size_t)V * C, 1, 0), *gf = fcopy(g0, (size_t)V * C), *gr = fcopy(g0, (size_t)V * C);
    opctx c = {.w = dcopy(E, (size_t)V * C), .r = r, .tok = tok, .N = N, .C = C};
    double *fd = fd_grad(c.w, (size_t)V * C, f_embed, &c);
    bd_embedding_backward_ref(gr, r, tok, N, C);
    bd_embedding_backward(gf, r, tok, N, C);
    report("embedding", "dtok_emb", rel_err_acc(gr, g0, fd, (size_t)V * C), rel_err_ff(gf, gr, (size_t)V * C));
    free(E), free(r), free(g0), free(gf), free(gr), free(c.w), free(fd);
}
END_TEST

static double f_rms(void *p) {
    opctx *c = p;
    d_rmsnorm(c->out, c->x, c->w, c->N, c->C, 1e-5);
    return weighted(c->out, c->r, (size_t)c->N * c->C);
}

START_TEST(test_rmsnorm) {
    int shapes[][2] = {{6, 11}, {5, 64}, {3, 130}};
    for (int si = 0; si < 3; si++) {
        int N = shapes[si][0], C = shapes[si][1];
        size_t nc = (size_t)N * C;
        float *x = frand(nc, 1.5f, 0), *w = frand((size_t)C, 0.5f, 1), *r = frand(nc, 1, 0), *out = malloc(nc * 4),
              *rstd = malloc((size_t)N * 4);
        bd_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
        float *dx0 = frand(nc, 1, 0), *dw0 = frand((size_t)C, 1, 0);
        float *dxr = fcopy(dx0, nc), *dwr = fcopy(dw0, (size_t)C), *dxf = fcopy(dx0, nc), *dwf = fcopy(dw0, (size_t)C);
        bd_rmsnorm_backward_ref(dxr, dwr, r, x, rstd, w, N, C);
        bd_rmsnorm_backward(dxf, dwf, r, x, rstd, w, N, C);
        opctx c = {.x = dcopy(x, nc), .w = dcopy(w, (size_t)C), .out = malloc(nc * 8), .r = r, .N = N, .C = C};
        double *fdx = fd_grad(c.x, nc, f_rms, &c), *fdw = fd_grad(c.w, (size_t)C, f_rms, &c);
        report("rmsnorm", "dinp", rel_err_acc(dxr, dx0, fdx, nc), rel_err_ff(dxf, dxr, nc));
        report("rmsnorm", "dweight", rel_err_acc(dwr, dw0, fdw, (size_t)C), rel_err_ff(dwf, dwr, (size_t)C));
        free(x), free(w), free(r), free(out), free(rstd), free(dx0), free(dw0), free(dxr), free(dwr), free(dxf),
                free(dwf);
        free(c.x), free(c.w), free(c.out), free(fdx), free(fdw);
    }
}
END_TEST

static double f_lin(void *p) {
    opctx *c = p;
    d_linear(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    return weighted(c->out, c->r, (size_t)c->N * c->OC);
}

START_TEST(test_linear) {
    int N = 7, C = 13, OC = 9;
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = frand(ni, 1, 0), *w = frand(nw, 0.3f, 0), *b = frand((size_t)OC, 1, 0), *r = frand(no, 1, 0);
    float *dx0 = frand(ni, 1, 0), *dw0 = frand(nw, 1, 0), *db0 = frand((size_t)OC, 1, 0);
    float *dxr = fcopy(dx0, ni), *dwr = fcopy(dw0, nw), *dbr = fcopy(db0, (size_t)OC);
    float *dxf = fcopy(dx0, ni), *dwf = fcopy(dw0, nw), *dbf = fcopy(db0, (size_t)OC);
    bd_linear_backward_ref(dxr, dwr, dbr, r, x, w, N, C, OC);
    bd_linear_backward(dxf, dwf, dbf, r, x, w, N, C, OC);
    opctx c = {.x = dcopy(x, ni),
               .w = dcopy(w, nw),
               .b = dcopy(b, (size_t)OC),
               .out = malloc(no * 8),
               .r = r,
               .N = N,
               .C = C,
               .OC = OC};
    double *fdx = fd_grad(c.x, ni, f_lin, &c), *fdw = fd_grad(c.w, nw, f_lin, &c),
           *fdb = fd_grad(c.b, (size_t)OC, f_lin, &c);
    report("linear", "dinp", rel_err_acc(dxr, dx0, fdx, ni), rel_err_ff(dxf, dxr, ni));
    report("linear", "dweight", rel_err_acc(dwr, dw0, fdw, nw), rel_err_ff(dwf, dwr, nw));
    report("linear", "dbias", rel_err_acc(dbr, db0, fdb, (size_t)OC), rel_err_ff(dbf, dbr, (size_t)OC));
    // NULL gradients are skipped.
    bd_linear_backward(NULL, NULL, NULL, r, x, w, N, C, OC);
    free(x), free(w), free(b), free(r), free(dx0), free(dw0), free(db0), free(dxr), free(dwr), free(dbr), free(dxf),
            free(dwf), free(dbf), free(c.x), free(c.w), free(c.b), free(c.out), free(fdx), free(fdw), free(fdb);
}
END_TEST

static double f_rope(void *p) {
    opctx *c = p;
    size_t n = (size_t)c->B * c->T * c->NH * c->HS;
    memcpy(c->out, c->x, n * sizeof(double));
    d_rope(c->out, c->pos0, c->B, c->T, c->NH, c->HS, 10000.0f, c->st);
    return weighted(c->out, c->r, n);
}

START_TEST(test_rope) {
    int B = 2, T = 5, NH = 3, HS = 8, pos0[2] = {0, 7};
    size_t n = (size_t)B * T * NH * HS;
    float cs[12 * 4 * 2];
    bd_rope_table(cs, 12, HS, 10000.0f);
    for (int st = 0; st < 2; st++) {
        float *x = frand(n, 1, 0), *r = frand(n, 1, 0), *dr = malloc(n * 4), *df = fcopy(r, n);
        bd_rope_backward_ref(dr, r, pos0, B, T, NH, HS, 10000.0f, (bd_rope_style)st);
        bd_rope_backward(df, df, cs, pos0, B, T, NH, HS, (bd_rope_style)st);  // in place
        opctx c = {.x = dcopy(x, n),
                   .out = malloc(n * 8),
                   .r = r,
                   .pos0 = pos0,
                   .B = B,
                   .T = T,
                   .NH = NH,
                   .HS = HS,
                   .st = (bd_rope_style)st};
        double *fd = fd_grad(c.x, n, f_rope, &c);
        report(st ? "rope-half" : "rope-inter", "dinp", rel_err(dr, fd, n), rel_err_ff(df, dr, n));
        free(x), free(r), free(dr), free(df), free(c.x), free(c.out), free(fd);
    }
}
END_TEST

static double f_att(void *p) {
    opctx *c = p;
    d_attention(c->out, c->x, c->k, c->v, c->B, c->T, c->NH, c->KV, c->HS);
    return weighted(c->out, c->r, (size_t)c->B * c->T * c->NH * c->HS);
}

START_TEST(test_attention) {
    // (B, T, NH, KV, HS): MHA, GQA, MQA, and T beyond one 64-row block (fast path only).
    int shapes[][5] = {{2, 7, 4, 2, 6}, {1, 9, 3, 3, 4}, {2, 5, 4, 1, 8}, {1, 150, 4, 2, 8}};
    for (int si = 0; si < 4; si++) {
        int B = shapes[si][0], T = shapes[si][1], NH = shapes[si][2], KV = shapes[si][3], HS = shapes[si][4];
        size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * KV * HS;
        float *q = frand(nq, 1.2f, 0), *k = frand(nk, 1.2f, 0), *v = frand(nk, 1, 0), *r = frand(nq, 1, 0);
        float *out = malloc(nq * 4), *lse = malloc((size_t)B * NH * T * 4);
        long long sf = bd_attention_scratch_floats(T, bd_num_threads()),
                  sb = bd_attention_backward_scratch_floats(T, bd_num_threads());
        float *scratch = malloc((size_t)(sf > sb ? sf : sb) * 4);
        bd_attention_forward(out, lse, q, k, v, scratch, sf, B, T, NH, KV, HS);
        float *dq0 = frand(nq, 1, 0), *dk0 = frand(nk, 1, 0), *dv0 = frand(nk, 1, 0);
        float *dqr = fcopy(dq0, nq), *dkr = fcopy(dk0, nk), *dvr = fcopy(dv0, nk);
        float *dqf = fcopy(dq0, nq), *dkf = fcopy(dk0, nk), *dvf = fcopy(dv0, nk);
        bd_attention_backward_ref(dqr, dkr, dvr, r, out, lse, q, k, v, B, T, NH, KV, HS);
        bd_attention_backward(dqf, dkf, dvf, r, out, lse, q, k, v, scratch, sb, B, T, NH, KV, HS);
        double eq = 0, ek = 0, ev = 0;
        if (T < 20) {  // finite differences on the small shapes
            opctx c = {.x = dcopy(q, nq),
                       .k = dcopy(k, nk),
                       .v = dcopy(v, nk),
                       .out = malloc(nq * 8),
                       .r = r,
                       .B = B,
                       .T = T,
                       .NH = NH,
                       .KV = KV,
                       .HS = HS};
            double *fq = fd_grad(c.x, nq, f_att, &c), *fk = fd_grad(c.k, nk, f_att, &c),
                   *fv = fd_grad(c.v, nk, f_att, &c);
            eq = rel_err_acc(dqr, dq0, fq, nq), ek = rel_err_acc(dkr, dk0, fk, nk), ev = rel_err_acc(dvr, dv0, fv, nk);
            free(c.x), free(c.k), free(c.v), free(c.out), free(fq), free(fk), free(fv);
        }
        report("attention", "dq", eq, rel_err_ff(dqf, dqr, nq));
        report("attention", "dk", ek, rel_err_ff(dkf, dkr, nk));
        report("attention", "dv", ev, rel_err_ff(dvf, dvr, nk));
        free(q), free(k), free(v), free(r), free(out), free(lse), free(scratch), free(dq0), free(dk0), free(dv0);
        free(dqr), free(dkr), free(dvr), free(dqf), free(dkf), free(dvf);
    }
}
END_TEST

static double f_swiglu(void *p) {
    opctx *c = p;
    for (int i = 0; i < c->N; i++) c->out[i] = c->x[i] / (1 + exp(-c->x[i])) * c->w[i];
    return weighted(c->out, c->r, (size_t)c->N);
}

START_TEST(test_swiglu) {
    int n = 37;  // vector lanes and a tail
    float *g = frand((size_t)n, 4, 0), *u = frand((size_t)n, 2, 0), *r = frand((size_t)n, 1, 0);
    float *dg0 = frand((size_t)n, 1, 0), *du0 = frand((size_t)n, 1, 0);
    float *dgr = fcopy(dg0, (size_t)n), *dur = fcopy(du0, (size_t)n), *dgf = fcopy(dg0, (size_t)n),
          *duf = fcopy(du0, (size_t)n);
    bd_swiglu_backward_ref(dgr, dur, r, g, u, n);
    bd_swiglu_backward(dgf, duf, r, g, u, n);
    opctx c = {.x = dcopy(g, (size_t)n), .w = dcopy(u, (size_t)n), .out = malloc((size_t)n * 8), .r = r, .N = n};
    double *fg = fd_grad(c.x, (size_t)n, f_swiglu, &c), *fu = fd_grad(c.w, (size_t)n, f_swiglu, &c);
    report("swiglu", "dgate", rel_err_acc(dgr, dg0, fg, (size_t)n), rel_err_ff(dgf, dgr, (size_t)n));
    report("swiglu", "dup", rel_err_acc(dur, du0, fu, (size_t)n), rel_err_ff(duf, dur, (size_t)n));
    free(g), free(u), free(r), free(dg0), free(du0), free(dgr), free(dur), free(dgf), free(duf), free(c.x), free(c.w);
    free(c.out), free(fg), free(fu);
}
END_TEST

START_TEST(test_residual) {
    int n = 11;
    float *r = frand((size_t)n, 1, 0), *a0 = frand((size_t)n, 1, 0), *b0 = frand((size_t)n, 1, 0);
    float *ar = fcopy(a0, (size_t)n), *br = fcopy(b0, (size_t)n), *af = fcopy(a0, (size_t)n),
          *bf = fcopy(b0, (size_t)n);
    bd_residual_backward_ref(ar, br, r, n);
    bd_residual_backward(af, bf, r, n);
    double *want = dcopy(r, (size_t)n);  // d(a+b)/da = 1: by hand
    report("residual", "da", rel_err_acc(ar, a0, want, (size_t)n), rel_err_ff(af, ar, (size_t)n));
    report("residual", "db", rel_err_acc(br, b0, want, (size_t)n), rel_err_ff(bf, br, (size_t)n));
    free(r), free(a0), free(b0), free(ar), free(br), free(af), free(bf), free(want);
}
END_TEST

static double f_ce(void *p) {
    opctx *c = p;
    return 0.37 * d_ce(c->x, c->tok, c->N, c->V);
}

START_TEST(test_crossentropy) {
    int N = 6, V = 23;
    int32_t tgt[6] = {3, -1, 0, 22, 7, 7};
    size_t n = (size_t)N * V;
    float *x = frand(n, 4, 0), *lse = malloc((size_t)N * 4), *losses = malloc((size_t)N * 4);
    bd_crossentropy_forward(losses, lse, x, tgt, N, V);
    float *dr = malloc(n * 4), *df = fcopy(x, n);
    double lr = bd_crossentropy_backward_ref(dr, x, lse, tgt, 0.37f, N, V);
    double lf = bd_crossentropy_backward(df, df, lse, tgt, 0.37f, N, V);  // in place
    opctx c = {.x = dcopy(x, n), .tok = tgt, .N = N, .V = V};
    double want = f_ce(&c), *fd = fd_grad(c.x, n, f_ce, &c);
    ck_assert_close(lr, want, 1e-6 * want);
    ck_assert_close(lf, want, 1e-5 * want);
    report("xent", "dlogits", rel_err(dr, fd, n), rel_err_ff(df, dr, n));
    for (int j = 0; j < V; j++) ck_assert(df[(size_t)V + j] == 0.0f);  // masked row
    free(x), free(lse), free(losses), free(dr), free(df), free(c.x), free(fd);
}
END_TEST

// ---- attention-relation distillation (bd_relation.h) ----

// weight * sum over heads and rows of KL(R_U || R_S), R = softmax(normalized rows' Gram), in
// double from the definition (x / max(|x|, 1e-12), no scaling).
static double d_relation(const double *xs, int DS, size_t lds, const double *xu, int DU, size_t ldu, int L, int A,
                         double weight) {
    int ds = DS / A, du = DU / A;
    double loss = 0, *hs = malloc(sizeof(double) * L * ds), *hu = malloc(sizeof(double) * L * du);
    double *rs = malloc(sizeof(double) * L), *ru = malloc(sizeof(double) * L);
    for (int a = 0; a < A; a++) {
        for (int side = 0; side < 2; side++) {
            int d = side ? du : ds;
            const double *x = side ? xu : xs;
            size_t ld = side ? ldu : lds;
            double *h = side ? hu : hs;
            for (int t = 0; t < L; t++) {
                double n = 0;
                for (int k = 0; k < d; k++) n += x[t * ld + a * d + k] * x[t * ld + a * d + k];
                n = fmax(sqrt(n), 1e-12);
                for (int k = 0; k < d; k++) h[t * d + k] = x[t * ld + a * d + k] / n;
            }
        }
        for (int t = 0; t < L; t++) {
            double zs = 0, zu = 0;
            for (int j = 0; j < L; j++) {
                double gs = 0, gu = 0;
                for (int k = 0; k < ds; k++) gs += hs[t * ds + k] * hs[j * ds + k];
                for (int k = 0; k < du; k++) gu += hu[t * du + k] * hu[j * du + k];
                zs += (rs[j] = exp(gs));
                zu += (ru[j] = exp(gu));
            }
            for (int j = 0; j < L; j++) loss += ru[j] / zu * log((ru[j] / zu) / (rs[j] / zs));
        }
    }
    free(hs), free(hu), free(rs), free(ru);
    return weight * loss;
}

typedef struct {
    double *xs, *xu;
    int DS, DU, L, A;
    size_t lds, ldu;
} relctx;
static double f_relation(void *p) {
    relctx *c = p;
    return d_relation(c->xs, c->DS, c->lds, c->xu, c->DU, c->ldu, c->L, c->A, 0.7);
}

// Odd shapes: teacher wider or narrower than the student, rows with a stride, one head or
// several, heads wider than the rows are many, a single row, and a zero row (the normalization's floor; no finite differences through it).
START_TEST(test_relation) {
    static const int shapes[][5] = {
            {8, 12, 5, 2, 3}, {6, 6, 7, 1, 0}, {9, 3, 4, 3, 2}, {4, 8, 1, 2, 0}, {24, 12, 3, 1, 1}};
    for (int si = 0; si < 5; si++) {
        int DS = shapes[si][0], DU = shapes[si][1], L = shapes[si][2], A = shapes[si][3], pad = shapes[si][4];
        size_t lds = (size_t)DS + pad, ldu = (size_t)DU + 1, ns = (size_t)L * lds, nu = (size_t)L * ldu;
        float *xs = frand(ns, 1.5f, 0.2f), *xu = frand(nu, 2, 0);
        float *dr = frand(ns, 1, 0), *df = fcopy(dr, ns), *d0 = fcopy(dr, ns);
        double lr = bd_relation_kl_ref(dr, xs, DS, lds, xu, DU, ldu, L, A, 0.7);
        double lf = bd_relation_kl(df, xs, DS, lds, xu, DU, ldu, L, A, 0.7);
        relctx c = {dcopy(xs, ns), dcopy(xu, nu), DS, DU, L, A, lds, ldu};
        double want = f_relation(&c), *fd = fd_grad(c.xs, ns, f_relation, &c);
        ck_assert_close(lr, want, 1e-9 + 1e-9 * want);
        ck_assert_close(lf, want, 1e-6 + 1e-5 * want);
        for (int t = 0; t < L; t++)  // the stride's padding is never touched
            for (size_t k = (size_t)DS; k < lds; k++) ck_assert(dr[t * lds + k] == d0[t * lds + k]);
        report("relation", "dxs", rel_err_acc(dr, d0, fd, ns), rel_err_ff(df, dr, ns));
        free(c.xs), free(c.xu), free(fd), free(dr), free(df), free(d0);
        // A zero student row: the floor's gradient, fast vs _ref only.
        for (int k = 0; k < DS; k++) xs[k] = 0;
        dr = calloc(ns, sizeof(float)), df = calloc(ns, sizeof(float));
        lr = bd_relation_kl_ref(dr, xs, DS, lds, xu, DU, ldu, L, A, 0.7);
        lf = bd_relation_kl(df, xs, DS, lds, xu, DU, ldu, L, A, 0.7);
        ck_assert_close(lf, lr, 1e-6 + 1e-5 * fabs(lr));
        ck_assert_msg(rel_err_ff(df, dr, ns) <= TOL_FAST, "relation: zero row: fast vs _ref");
        free(xs), free(xu), free(dr), free(df);
    }
}
END_TEST

// ---- the whole model ----

static const bd_test_variant variants[] = {
        {"llama", 12, 2, 4, 4, 4, 20, 17, BD_ROPE_INTERLEAVED, false, false, false},
        {"llama-gqa-tied", 12, 2, 4, 2, 4, 20, 17, BD_ROPE_INTERLEAVED, true, false, false},
        {"llama-half", 10, 2, 2, 2, 6, 18, 19, BD_ROPE_HALF, false, false, false},
        {"qwen2-bias-mqa", 12, 2, 4, 1, 4, 16, 15, BD_ROPE_HALF, true, true, false},
        {"qwen3-qknorm", 12, 2, 4, 2, 6, 20, 17, BD_ROPE_HALF, true, false, true},
        {"qwen3-all-interleaved", 8, 2, 6, 3, 4, 14, 13, BD_ROPE_INTERLEAVED, false, true, true},
};
#define N_VARIANTS ((int)(sizeof variants / sizeof variants[0]))


typedef struct {
    const bd_config *cfg;
    double *p;  // (P) parameters in the bd_model layout
    const int32_t *tok;
    int B, T;
    // W1.58A8 (8-bit activations into every block linear): off (L * BD_N_LINEARS slots of
    // (N, in) each) holds q(x) - x per linear input; record: q computed here from x (the rule
    // written out below), frozen: x + off with off as recorded (the straight-through surrogate
    // whose exact gradient is the STE gradient).
    bool a8, record;
    double **off;
    // BitNet Distillation's terms (kd_w, ad_w 0: off): targets (N; NULL: next token); the
    // logits term kd_w * sum over marked positions of KL(softmax(u/tau) || softmax(s/tau)) /
    // marked; the relation term ad_w / (A * A * rows) * sum of relation KLs of q, k, v (after
    // RoPE) of layer ad_layer against the teacher rows ad_u (N, tq + 2 tk), over each
    // sequence's first lens[b] positions (rows = sum of lens).
    const int32_t *targets;
    double kd_w, kd_tau, ad_w;
    const float *kd_u;
    const uint8_t *kd_mask;
    int ad_layer, ad_heads, tq, tk;
    const float *ad_u;
    const int32_t *lens;
} modelctx;

// The relation term of layer states q (N, QD), k and v (N, KD) in double.
static double d_relation_term(const modelctx *mc, const double *q, const double *k, const double *v, int QD, int KD) {
    int T = mc->T, W = mc->tq + 2 * mc->tk, A = mc->ad_heads;
    long long rows = 0;
    for (int b = 0; b < mc->B; b++) rows += mc->lens[b];
    double w = mc->ad_w / ((double)A * A * rows), sum = 0;
    double *u = dcopy(mc->ad_u, (size_t)mc->B * T * W);
    for (int b = 0; b < mc->B; b++) {
        size_t r0 = (size_t)b * T;
        sum += d_relation(q + r0 * QD, QD, QD, u + r0 * W, mc->tq, W, mc->lens[b], A, w);
        sum += d_relation(k + r0 * KD, KD, KD, u + r0 * W + mc->tq, mc->tk, W, mc->lens[b], A, w);
        sum += d_relation(v + r0 * KD, KD, KD, u + r0 * W + mc->tq + mc->tk, mc->tk, W, mc->lens[b], A, w);
    }
    free(u);
    return sum;
}

// The logits term in double.
static double d_kd_term(const modelctx *mc, const double *logits, int N, int V) {
    double sum = 0;
    int marked = 0;
    double *ls = malloc(sizeof(double) * V), *lu = malloc(sizeof(double) * V);
    for (int n = 0; n < N; n++) {
        if (!mc->kd_mask[n]) continue;
        marked++;
        double ms = -INFINITY, mu = -INFINITY, zs = 0, zu = 0;
        for (int j = 0; j < V; j++) {
            ls[j] = logits[(size_t)n * V + j] / mc->kd_tau, lu[j] = mc->kd_u[(size_t)n * V + j] / mc->kd_tau;
            ms = fmax(ms, ls[j]), mu = fmax(mu, lu[j]);
        }
        for (int j = 0; j < V; j++) zs += exp(ls[j] - ms), zu += exp(lu[j] - mu);
        for (int j = 0; j < V; j++) {
            double a = lu[j] - mu - log(zu), b = ls[j] - ms - log(zs);
            sum += exp(a) * (a - b);
        }
    }
    free(ls), free(lu);
    return mc->kd_w * sum / marked;
}

// One row's 8-bit fake quantization as BitDistill's activation_quant, in float like torch:
// s = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x s), -128, 127) / s.
static void d_actquant_row(double *out, const double *x, int C) {
    float amax = 0;
    for (int i = 0; i < C; i++) amax = fmaxf(amax, fabsf((float)x[i]));
    float s = 127.0f / fmaxf(amax, 1e-5f);
    for (int i = 0; i < C; i++) {
        float q = nearbyintf((float)x[i] * s);
        out[i] = (double)(q > 127 ? 127 : q < -128 ? -128 : q) / s;
    }
}

// What linear k of layer l sees of x (N, in): its SubLN norm (weight sub, or none), then its
// 8-bit quantization (mc->a8), into buf (2 N in: the norm's output, then the quantized rows).
static const double *d_lin_input(modelctx *mc, int l, int k, const double *x, const double *sub, int N, int in,
                                 double *buf) {
    const double *in_x = x;
    if (sub) {
        d_rmsnorm(buf, x, sub + (size_t)l * in, N, in, mc->cfg->subln_eps);
        in_x = buf;
    }
    buf += (size_t)N * in;
    if (!mc->a8) return in_x;
    double *o = mc->off[l * BD_N_LINEARS + k];
    for (int n = 0; n < N; n++) {
        double *b = buf + (size_t)n * in;
        const double *xr = in_x + (size_t)n * in;
        if (mc->record) {
            d_actquant_row(b, xr, in);
            for (int i = 0; i < in; i++) o[(size_t)n * in + i] = b[i] - xr[i];
        } else {
            for (int i = 0; i < in; i++) b[i] = xr[i] + o[(size_t)n * in + i];
        }
    }
    return buf;
}

// Mean next-token cross-entropy of the model with parameters ctx->p, all in double.
static double f_model(void *vp) {
    modelctx *mc = vp;
    const bd_config *c = mc->cfg;
    int B = mc->B, T = mc->T, N = B * T, C = c->dim, NH = c->n_heads, KV = c->n_kv_heads, HS = c->head_dim,
        F = c->ffn_dim;
    int V = c->vocab, QD = NH * HS, KD = KV * HS;
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(c, t, NULL);
    const double *P[BD_MAX_PARAMS];
    const char *names[] = {"tok_emb", "rms_att", "wq",      "wk", "wv", "wo", "bq",        "bk",  "bv",
                           "q_norm",  "k_norm",  "rms_ffn", "w1", "w2", "w3", "rms_final", "wcls"};
    const double *W[17] = {0}, *S[BD_N_LINEARS] = {0};  // S: SubLN weights
    for (int i = 0; i < nt; i++) P[i] = mc->p + t[i].offset;
    for (int j = 0; j < 17; j++)
        for (int i = 0; i < nt; i++)
            if (!strcmp(t[i].name, names[j])) W[j] = P[i];
    for (int j = 0; j < BD_N_LINEARS; j++)
        for (int i = 0; i < nt; i++)
            if (!strcmp(t[i].name, bd_subln_names[j])) S[j] = P[i];
    if (!W[16]) W[16] = W[0];
    int widest = C > QD ? C : QD;
    widest = widest > F ? widest : F;
    double *lb = malloc(sizeof(double) * 2 * N * widest);  // a linear's input after SubLN and A8
    double *x = malloc(sizeof(double) * N * C), *xn = malloc(sizeof(double) * N * C),
           *q = malloc(sizeof(double) * N * QD);
    double *k = malloc(sizeof(double) * N * KD), *v = malloc(sizeof(double) * N * KD),
           *att = malloc(sizeof(double) * N * QD);
    double *h1 = malloc(sizeof(double) * N * F), *h3 = malloc(sizeof(double) * N * F),
           *tmp = malloc(sizeof(double) * N * C);
    double *logits = malloc(sizeof(double) * N * V), extra = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) x[(size_t)n * C + j] = W[0][(size_t)mc->tok[n] * C + j];
    for (int l = 0; l < c->n_layers; l++) {
        d_rmsnorm(xn, x, W[1] + (size_t)l * C, N, C, c->norm_eps);
        d_linear(q, d_lin_input(mc, l, BD_WQ, xn, S[BD_WQ], N, C, lb), W[2] + (size_t)l * QD * C,
                 W[6] ? W[6] + (size_t)l * QD : NULL, N, C, QD);
        d_linear(k, d_lin_input(mc, l, BD_WK, xn, S[BD_WK], N, C, lb), W[3] + (size_t)l * KD * C,
                 W[7] ? W[7] + (size_t)l * KD : NULL, N, C, KD);
        d_linear(v, d_lin_input(mc, l, BD_WV, xn, S[BD_WV], N, C, lb), W[4] + (size_t)l * KD * C,
                 W[8] ? W[8] + (size_t)l * KD : NULL, N, C, KD);
        if (c->qk_norm) {
            d_rmsnorm(q, q, W[9] + (size_t)l * HS, N * NH, HS, c->norm_eps);
            d_rmsnorm(k, k, W[10] + (size_t)l * HS, N * KV, HS, c->norm_eps);
        }
        d_rope(q, NULL, B, T, NH, HS, c->rope_theta, c->rope);
        d_rope(k, NULL, B, T, KV, HS, c->rope_theta, c->rope);
        if (mc->ad_w > 0 && l == mc->ad_layer) extra += d_relation_term(mc, q, k, v, QD, KD);
        d_attention(att, q, k, v, B, T, NH, KV, HS);
        d_linear(tmp, d_lin_input(mc, l, BD_WO, att, S[BD_WO], N, QD, lb), W[5] + (size_t)l * C * QD, NULL, N, QD, C);
        for (size_t i = 0; i < (size_t)N * C; i++) x[i] += tmp[i];
        d_rmsnorm(xn, x, W[11] + (size_t)l * C, N, C, c->norm_eps);
        d_linear(h1, d_lin_input(mc, l, BD_W1, xn, S[BD_W1], N, C, lb), W[12] + (size_t)l * F * C, NULL, N, C, F);
        d_linear(h3, d_lin_input(mc, l, BD_W3, xn, S[BD_W3], N, C, lb), W[14] + (size_t)l * F * C, NULL, N, C, F);
        for (size_t i = 0; i < (size_t)N * F; i++) h1[i] = h1[i] / (1 + exp(-h1[i])) * h3[i];
        d_linear(tmp, d_lin_input(mc, l, BD_W2, h1, S[BD_W2], N, F, lb), W[13] + (size_t)l * C * F, NULL, N, F, C);
        for (size_t i = 0; i < (size_t)N * C; i++) x[i] += tmp[i];
    }
    d_rmsnorm(xn, x, W[15], N, C, c->norm_eps);
    d_linear(logits, xn, W[16], NULL, N, C, V);
    int32_t *tgt = calloc((size_t)N, sizeof(int32_t));
    int cnt = 0;
    for (int n = 0; n < N; n++) {
        tgt[n] = mc->targets ? mc->targets[n] : n % T + 1 < T ? mc->tok[n + 1] : -1;
        cnt += tgt[n] >= 0;
    }
    double loss = d_ce(logits, tgt, N, V) / cnt + extra;
    if (mc->kd_w > 0) loss += d_kd_term(mc, logits, N, V);
    free(x), free(xn), free(q), free(k), free(v), free(att), free(h1), free(h3), free(tmp), free(logits), free(tgt);
    free(lb);
    return loss;
}

// bd_train_fwd_bwd's gradient (fw: the forward weights, g their gradient after route, if any)
// against central differences of f_model at mc->p, on a sample of coordinates of every tensor.
static void check_gradient(const char *name, modelctx *mc, const float *g, double bd_loss) {
    const bd_config *c = mc->cfg;
    mc->record = mc->a8;  // the loss itself: quantized here from the reference's own activations
    ck_assert_close(bd_loss, f_model(mc), 1e-5);
    mc->record = false;  // then the surrogate with the rounding frozen
    bd_param_entry t[BD_MAX_PARAMS];
    int nt = bd_param_table(c, t, NULL);
    double worst = 0;
    for (int i = 0; i < nt; i++) {
        double gmax = 0, e = 0;
        for (size_t j = 0; j < t[i].numel; j++) gmax = fmax(gmax, fabs(g[t[i].offset + j]));
        ck_assert_msg(gmax > 0, "%s: gradient of %s is zero", name, t[i].name);
        for (int s = 0; s < 6; s++) {  // a sample of coordinates: first, last, random
            size_t j = s == 0   ? 0
                       : s == 1 ? t[i].numel - 1
                                : (size_t)((urand() + 1) * 0.5f * (float)t[i].numel) % t[i].numel;
            size_t idx = t[i].offset + j;
            double x0 = mc->p[idx], h = 1e-5;
            mc->p[idx] = x0 + h;
            double fp = f_model(mc);
            mc->p[idx] = x0 - h;
            double fm = f_model(mc);
            mc->p[idx] = x0;
            e = fmax(e, fabs((fp - fm) / (2 * h) - g[idx]) / gmax);
        }
        worst = fmax(worst, e);
        ck_assert_msg(e <= 2e-5, "%s: %s: gradient vs finite differences: relative error %.3g", name, t[i].name, e);
    }
    printf("backward model %-28s worst tensor rel err vs fd %.2e\n", name, worst);
}

static void model_gradient(const bd_test_variant *vr, bd_subln subln, bool recompute) {
    bd_config c = bd_test_variant_config(vr);
    c.subln = subln, c.subln_eps = 1e-8f;
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", vr->name, subln ? "-subln-" : "", subln ? bd_subln_name(subln) : "");
    bd_model m;
    bd_test_random_model(&m, &c, urand);
    int B = 2, T = 6;
    int32_t tok[12];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(((urand() + 1) * 0.5f) * c.vocab) % c.vocab;
    bd_train_state st;
    ck_assert_int_eq(bd_train_state_init(&st, &c, B, T, recompute), BD_OK);
    float *g = calloc(m.n_params, sizeof(float));
    bd_weights gw;
    bd_weights_layout(&c, g, &gw);
    double loss;
    int cnt = bd_train_fwd_bwd(&st, &m, &gw, tok, NULL, B, T, 1.0f / (float)(B * (T - 1)), NULL, &loss);
    ck_assert_int_eq(cnt, B * (T - 1));
    modelctx mc = {.cfg = &c, .p = dcopy(m.params, m.n_params), .tok = tok, .B = B, .T = T};
    check_gradient(name, &mc, g, loss);
    free(mc.p), free(g);
    bd_train_state_free(&st);
    bd_model_free(&m);
}

START_TEST(test_model_gradient) { model_gradient(&variants[_i], BD_SUBLN_NONE, _i % 2 == 1); }  // recompute on odd
END_TEST

// SubLN (both placements) on three variants: the sub-norms' weights and inputs.
START_TEST(test_model_gradient_subln) {
    rng = 0x2545F4914F6CDD1Dull + (uint64_t)_i;  // this test's own data, with or without CK_FORK
    static const int pick[] = {0, 3, 4};
    model_gradient(&variants[pick[_i / 2]], _i % 2 ? BD_SUBLN_ALL : BD_SUBLN_PAPER, _i == 1 || _i == 4);
}
END_TEST

// W1.58A8 QAT: ternary weights (the trainer's QAT hooks: fake quantization, then the
// straight-through route back to the latent weights) and 8-bit activations into every block
// linear, with SubLN. The gradient w.r.t. the latent weights must be the STE gradient: that
// of the surrogate whose quantizers add the offsets q(v) - v frozen at this point (finite
// differences of f_model with mc.record off; the weights' offsets are fw - latent). Using the
// unquantized input for a weight gradient, or blocking the gradient at the quantizer, fails.
START_TEST(test_model_gradient_a8) {
    rng = 0x2545F4914F6CDD1Dull + 100 + (uint64_t)_i;  // fixed data: see test_bitnet.c on rounding flips
    const bd_test_variant *vr = &variants[_i == 0 ? 0 : 4];
    bd_config c = bd_test_variant_config(vr);
    c.subln = _i == 2 ? BD_SUBLN_NONE : _i == 1 ? BD_SUBLN_ALL : BD_SUBLN_PAPER, c.subln_eps = 1e-8f;
    char name[64];
    snprintf(name, sizeof name, "%s-a8-subln-%s", vr->name, bd_subln_name(c.subln));
    bd_model m;
    bd_test_random_model(&m, &c, urand);
    bd_qspec q = {BD_Q_TERNARY, 2, 0};
    bd_qpolicy pol = {.act_bits = 8};
    m.quant = q, m.qpolicy = pol;
    int B = 2, T = 6;
    int32_t tok[12];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(((urand() + 1) * 0.5f) * c.vocab) % c.vocab;
    bd_trainer tr;
    bd_adamw_cfg oc = {0.9f, 0.95f, 1e-8f, 0, 0, BD_F32};
    bd_schedule sc = {BD_SCHED_CONSTANT, 1e-3f, 1e-3f, 0, 1};
    ck_assert_int_eq(bd_trainer_init(&tr, &m, B, T, 1, &oc, &sc, _i == 1), BD_OK);
    bd_qat_hooks h;
    ck_assert_int_eq(bd_qat_hooks_attach(&h, &tr, &q, &pol), BD_OK);
    ck_assert_int_eq(tr.make_fw(tr.hook_ctx, &tr.fw, &m), BD_OK);
    ck_assert_int_eq(tr.fw.qpolicy.act_bits, 8);
    double loss;
    int cnt = bd_train_fwd_bwd(&tr.st, &tr.fw, &tr.gw, tok, NULL, B, T, 1.0f / (float)(B * (T - 1)), NULL, &loss);
    ck_assert_int_eq(cnt, B * (T - 1));
    tr.route_grads(tr.hook_ctx, tr.grads, &tr.fw, &m);
    double *off[BD_N_LINEARS * 4];
    int widest = c.dim > c.ffn_dim ? c.dim : c.ffn_dim;
    widest = widest > c.n_heads * c.head_dim ? widest : c.n_heads * c.head_dim;  // wo's input
    for (int i = 0; i < BD_N_LINEARS * c.n_layers; i++) off[i] = calloc((size_t)B * T * widest, sizeof(double));
    modelctx mc = {.cfg = &c,
                   .p = dcopy(tr.fw.params, m.n_params),
                   .tok = tok,
                   .B = B,
                   .T = T,
                   .a8 = true,
                   .record = true,
                   .off = off};
    check_gradient(name, &mc, tr.grads, loss);
    for (int i = 0; i < BD_N_LINEARS * c.n_layers; i++) free(off[i]);
    free(mc.p);
    bd_trainer_free(&tr);
    bd_qat_hooks_free(&h);
    bd_model_free(&m);
}
END_TEST

// BitNet Distillation's loss through the model: ce on masked targets + the logits term + the
// relation term at one layer, against a teacher of another width (random logits and states),
// sequences with padding. The relation's gradient enters at q, k, v of its layer only; the
// logits term's at the head. Each term alone must matter: the test runs with both and checks
// every tensor's gradient against finite differences of the double forward with both.
START_TEST(test_model_gradient_distill_terms) {
    rng = 0x2545F4914F6CDD1Dull + 200 + (uint64_t)_i;
    const bd_test_variant *vr = &variants[_i == 0 ? 1 : 4];  // GQA tied; qk-norm (q, k after the norm)
    bd_config c = bd_test_variant_config(vr);
    bd_model m;
    bd_test_random_model(&m, &c, urand);
    int B = 2, T = 6, N = B * T, V = c.vocab, L_ad = _i == 0 ? 1 : 0;
    int QD = c.n_heads * c.head_dim, KD = c.n_kv_heads * c.head_dim, tq = 2 * QD, tk = 2 * KD, W = tq + 2 * tk;
    int A = _i == 0 ? 2 : 1;
    int32_t tok[12], tgt[12], lens[2] = {6, 4};
    uint8_t mask[12];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(((urand() + 1) * 0.5f) * V) % V;
    int scored = 0;
    for (int i = 0; i < N; i++) {  // prompt of 2 masked; padding unscored
        int b = i / T, t = i % T;
        tgt[i] = t >= 2 && t + 1 < lens[b] ? tok[i + 1] : -1;
        mask[i] = t < lens[b];
        scored += tgt[i] >= 0;
    }
    float *u = frand((size_t)N * V, 3, 0), *states = frand((size_t)N * W, 1, 0.1f);
    bd_train_state st;
    ck_assert_int_eq(bd_train_state_init(&st, &c, B, T, _i == 1), BD_OK);
    float *g = calloc(m.n_params, sizeof(float));
    bd_weights gw;
    bd_weights_layout(&c, g, &gw);
    bd_loss_spec spec = {BD_LOSS_CE, 0, 1};
    double tau = 2.5, lambda = 0.8, gamma = 30;
    bd_distill d;
    ck_assert_int_eq(bd_distill_init(&d, &spec, B, T, V, (float)(lambda * tau * tau), (float)tau), BD_OK);
    bd_distill_begin_step(&d, u, tgt, 1.0f / (float)scored);
    d.kd_lens = lens;
    d.kd_scale = 1.0f / 10;  // 6 + 4 real positions
    bd_relation_loss r = {.heads = A,
                          .weight = (float)gamma,
                          .tq = tq,
                          .tk = tk,
                          .qd = QD,
                          .kd = KD,
                          .B = B,
                          .T = T,
                          .grad_accum = 1};
    r.hook.layer = L_ad;
    bd_relation_loss_attach(&r);
    bd_relation_loss_begin_step(&r, states, lens);
    st.layer_loss = &r.hook;
    bd_head_loss head = {bd_distill_head, &d};
    double loss;
    ck_assert_int_eq(bd_train_fwd_bwd(&st, &m, &gw, tok, tgt, B, T, 1.0f / (float)scored, &head, &loss), scored);
    ck_assert(d.kd_sum > 0.01 * loss && r.sum > 0.01 * loss && d.ce_sum > 0.01 * loss);  // every term counts
    modelctx mc = {&c,     dcopy(m.params, m.n_params),
                   tok,    B,
                   T,      false,
                   false,  NULL,
                   tgt,    lambda * tau * tau,
                   tau,    gamma,
                   u,      mask,
                   L_ad,   A,
                   tq,     tk,
                   states, lens};
    check_gradient(_i == 0 ? "distill-terms-gqa" : "distill-terms-qknorm", &mc, g, loss);
    free(mc.p), free(g), free(u), free(states);
    bd_distill_free(&d);
    bd_train_state_free(&st);
    bd_model_free(&m);
}
END_TEST

Suite *suite_backward(void) {
    Suite *s = suite_create("backward");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_residual);
    tcase_add_test(tc, test_crossentropy);
    tcase_add_test(tc, test_relation);
    tcase_add_loop_test(tc, test_model_gradient, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_model_gradient_subln, 0, 6);
    tcase_add_loop_test(tc, test_model_gradient_a8, 0, 3);
    tcase_add_loop_test(tc, test_model_gradient_distill_terms, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
