#pragma once
// The chunkwise linear-attention algorithms of the CUDA backend, written once for
// one sequence as a series of *phases*: `ex.parallel(n, f)` calls f(i) for every
// i < n in any order, then waits for all of it (a __syncthreads() on the device);
// `ex.sum(n, f)` is a fixed-order reduction every thread gets. The CUDA kernels
// (linear_attention.cu, linear_attention_delta.cu) run them with one thread block
// per (batch, head) sequence; tests/core/test_cuda_linear_attention.cpp runs the
// same code on the host with a serial executor, in forward and in reverse element
// order (a phase that read what another element of the same phase writes would
// then disagree), against the CPU kernels. Plain C++ apart from the host/device
// marks, so it builds without nvcc.
//
// Every output element is one f(i) summing its terms in a fixed order: no atomics,
// results independent of timing. Notation as core/cpu/linear_attention.h: inside a
// chunk of L steps starting at step s, B_i is the inclusive cumulative sum of the
// log-gates (scalar, or per key dim), decay(i, j) = exp(B_i - B_j) for j <= i,
// from_start(i) = exp(B_i), to_end(j) = exp(B_{L-1} - B_j); every exponent <= 0
// for log-gates <= 0, computed pair by pair (never the factored exp(B) exp(-B)).
#include <cstdint>

#include "core/functors.h"

#if defined(__CUDACC__)
#define ATTNLAB_LINATTN_HD __host__ __device__ inline
#else
#define ATTNLAB_LINATTN_HD inline
#endif

namespace attnlab::cuda::linattn {

enum class GateKind : int { none, scalar, diag };

ATTNLAB_LINATTN_HD int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// One call's shape: sequences of T steps (T >= 1), key width Dk, value width Dv,
// chunks of C steps (1 <= C <= T), and the gate kind.
struct ChunkDims {
  int64_t T, Dk, Dv, C;
  GateKind gate;

  ATTNLAB_LINATTN_HD int64_t chunks() const { return (T + C - 1) / C; }
  ATTNLAB_LINATTN_HD int64_t start(int64_t c) const { return c * C; }
  ATTNLAB_LINATTN_HD int64_t len(int64_t c) const { return min64(C, T - c * C); }
  // Gate values per step: Dk for per-dim gates, 1 for scalar gates (and none).
  ATTNLAB_LINATTN_HD int64_t gate_width() const { return gate == GateKind::diag ? Dk : 1; }
  ATTNLAB_LINATTN_HD int64_t state_size() const { return Dk * Dv; }
};

// The value columns [x0, x0 + W) of one sequence. Output columns of the forward
// depend only on their own columns of V and of the state (the scores A, P and the
// UT transform's M are shared), so the forwards can split Dv over blocks; each
// element is still computed by the same sums in the same order, so results do not
// depend on the split. The slice's state is [Dk, W], row stride W.
struct ValueSlice {
  int64_t x0, W;
};

// The forwards' split of Dv into `slices` slices of W columns (the last may be
// narrower): enough slices of >= kMinSliceWidth columns to give about
// `target_blocks` blocks in all, one when the sequences alone reach it.
constexpr int64_t kMinSliceWidth = 16;
struct ValueSplit {
  int64_t slices, W, Dv;
  ATTNLAB_LINATTN_HD ValueSlice slice(int64_t i) const { return {i * W, min64(W, Dv - i * W)}; }
};
inline ValueSplit value_split(int64_t sequences, int64_t Dv, int64_t target_blocks) {
  const int64_t most = Dv / kMinSliceWidth,
                want = sequences < 1 ? 1 : (target_blocks + sequences - 1) / sequences;
  const int64_t slices = min64(most, want) < 1 ? 1 : min64(most, want);
  const int64_t W = Dv < 1 ? 0 : (Dv + slices - 1) / slices;
  return {W < 1 ? 1 : (Dv + W - 1) / W, W, Dv};
}

// One block's scratch, in the order listed, for W value columns (the forward's
// slice width; Dv in the backwards): the running state (or its gradient) first,
// then the chunk's buffers, then (delta backward) the state at every chunk start.
// `shared_end` ends what may live in shared memory (see Scratch).
struct GlaWorkspace {
  int64_t state, B, Qg, Kg, A, dA, size, state_end, shared_end;
  ATTNLAB_LINATTN_HD GlaWorkspace(const ChunkDims& d, int64_t W) {
    int64_t o = 0;
    state = o, o += d.Dk * W;
    state_end = o;
    B = o, o += d.C * d.gate_width();
    Qg = o, o += d.C * d.Dk;
    Kg = o, o += d.C * d.Dk;
    A = o, o += d.C * d.C;
    dA = o, o += d.C * d.C;
    shared_end = size = o;
  }
};

struct DeltaWorkspace {
  int64_t state, B, db, ey, KK, M, P, dP, dLm, KS, U, dR, Tk, Y, Z, states, size, state_end, shared_end;
  // `backward`: the backward's buffers and room for the state at every chunk start.
  ATTNLAB_LINATTN_HD DeltaWorkspace(const ChunkDims& d, bool backward, int64_t W) {
    const int64_t CC = d.C * d.C, CV = d.C * W, CK = d.C * d.Dk, bw = backward ? 1 : 0;
    int64_t o = 0;
    state = o, o += d.Dk * W;
    state_end = o;
    B = o, o += d.C;
    db = o, o += bw * d.C;
    ey = o, o += bw * d.C;
    KK = o, o += bw * CC;
    M = o, o += CC;
    P = o, o += CC;
    dP = o, o += bw * CC;
    dLm = o, o += bw * CC;
    KS = o, o += bw * CV;
    U = o, o += CV;
    dR = o, o += bw * CV;
    Tk = o, o += bw * CK;
    Y = o, o += bw * CK;
    Z = o, o += bw * CK;
    shared_end = o;
    states = o, o += bw * d.chunks() * d.Dk * W;
    size = o;
  }
};

// Where a block's scratch lives: elements [0, split) of the layout in shared
// memory, the rest in the block's slot of the global workspace (split falls on
// a region boundary, so every buffer is in one place).
template <class R>
struct Scratch {
  R* shared;
  R* global;
  int64_t split;
  ATTNLAB_LINATTN_HD R* at(int64_t offset) const { return offset < split ? shared + offset : global + offset; }
};

// The split for a layout: everything up to shared_end when it fits in the
// device's opt-in shared memory per block (beside the kernel's static shared
// memory), else the running state alone, else nothing.
inline int64_t shared_split(int64_t state_end, int64_t shared_end, int64_t elem_bytes, int64_t static_bytes,
                            int64_t optin_limit) {
  const int64_t room = optin_limit - static_bytes;
  if (shared_end * elem_bytes <= room) return shared_end;
  if (state_end * elem_bytes <= room) return state_end;
  return 0;
}

// The cumulative log-gates of one chunk (B, [L] or [L, Dk]) and the decays from them.
template <class R>
struct ChunkGates {
  GateKind kind;
  const R* B;
  int64_t L, Dk;

  ATTNLAB_LINATTN_HD int64_t at(int64_t i, int64_t d) const { return kind == GateKind::diag ? i * Dk + d : i; }
  ATTNLAB_LINATTN_HD R decay(int64_t i, int64_t j, int64_t d) const {
    return kind == GateKind::none ? R(1) : fn::exp_(B[at(i, d)] - B[at(j, d)]);
  }
  ATTNLAB_LINATTN_HD R from_start(int64_t i, int64_t d) const {
    return kind == GateKind::none ? R(1) : fn::exp_(B[at(i, d)]);
  }
  ATTNLAB_LINATTN_HD R to_end(int64_t j, int64_t d) const { return decay(L - 1, j, d); }
};

// B <- inclusive cumulative sums of the chunk's log-gates (g: the sequence's gates).
template <class R, class Ex>
ATTNLAB_LINATTN_HD ChunkGates<R> chunk_gates(Ex& ex, const ChunkDims& dm, const R* g, int64_t s, int64_t L, R* B) {
  if (dm.gate != GateKind::none) {
    const int64_t w = dm.gate_width();
    ex.parallel(w, [&](int64_t d) {
      R acc = R(0);
      for (int64_t i = 0; i < L; ++i) B[i * w + d] = acc += g[(s + i) * w + d];
    });
  }
  return ChunkGates<R>{dm.gate, B, L, dm.Dk};
}

// sum_d x_d y_d
template <class R>
ATTNLAB_LINATTN_HD R dot(const R* x, const R* y, int64_t n) {
  R acc = R(0);
  for (int64_t d = 0; d < n; ++d) acc += x[d] * y[d];
  return acc;
}

// sum_d q_d k_d decay(i, j, d), j <= i: the gated score of query row i and key row j.
template <class R>
ATTNLAB_LINATTN_HD R gated_score(const ChunkGates<R>& cg, const R* qi, const R* kj, int64_t i, int64_t j) {
  if (cg.kind != GateKind::diag) return dot(qi, kj, cg.Dk) * cg.decay(i, j, 0);
  R acc = R(0);
  for (int64_t d = 0; d < cg.Dk; ++d) acc += qi[d] * kj[d] * cg.decay(i, j, d);
  return acc;
}

// S <- state0 (zeros when null).
template <class R, class Ex>
ATTNLAB_LINATTN_HD void init_state(Ex& ex, const ChunkDims& dm, const R* s0, R* S) {
  ex.parallel(dm.state_size(), [&](int64_t e) { S[e] = s0 ? s0[e] : R(0); });
}

// ---------------------------------------------------------------------------
// Gated linear attention (Yang et al., "Gated Linear Attention Transformers with
// Hardware-Efficient Training", eqs. 4-6; without gates, Katharopoulos et al.,
// "Transformers are RNNs"), per chunk with carried state S [Dk, Dv]:
//   O = A V + (Q (.) exp(B)) S,   A_ij = sum_d q_id k_jd exp(B_id - B_jd), j <= i
//   S <- diag(exp(B_{L-1})) S + (K (.) exp(B_{L-1} - B))^T V
// q, k [T, Dk], v, o [T, Dv], g [T] / [T, Dk] / null, s0 null or [Dk, Dv];
// ws the block's scratch (the running state S first), the state left in s_out.

// Qg = Q (.) exp(B), Kg = K (.) exp(B_{L-1} - B) for the chunk.
template <class R, class Ex>
ATTNLAB_LINATTN_HD void gla_scaled_rows(Ex& ex, const ChunkGates<R>& cg, const R* Q, const R* K, R* Qg, R* Kg) {
  const int64_t Dk = cg.Dk;
  ex.parallel(cg.L * Dk, [&](int64_t e) {
    const int64_t i = e / Dk, d = e - i * Dk;
    Qg[e] = Q[e] * cg.from_start(i, d);
    Kg[e] = K[e] * cg.to_end(i, d);
  });
}

// S <- diag(exp(B_{L-1})) S + Kg^T X (X: W columns, row stride ldx; S [Dk, W]):
// the state (or, with Qg and dO, its gradient) carried across the chunk. Each
// element reads only itself.
template <class R, class Ex>
ATTNLAB_LINATTN_HD void gla_carry(Ex& ex, const ChunkGates<R>& cg, int64_t ldx, int64_t W, const R* Kg, const R* X,
                                  R* S) {
  const int64_t L = cg.L;
  ex.parallel(cg.Dk * W, [&](int64_t e) {
    const int64_t d = e / W, x = e - d * W;
    R acc = S[e] * cg.from_start(L - 1, d);
    for (int64_t j = 0; j < L; ++j) acc += Kg[j * cg.Dk + d] * X[j * ldx + x];
    S[e] = acc;
  });
}

// S [Dk, W] <- columns [x0, x0 + W) of state0 [Dk, Dv] (zeros when null), and back.
template <class R, class Ex>
ATTNLAB_LINATTN_HD void load_state(Ex& ex, const ChunkDims& dm, ValueSlice vs, const R* s0, R* S) {
  ex.parallel(dm.Dk * vs.W, [&](int64_t e) {
    const int64_t d = e / vs.W, x = e - d * vs.W;
    S[e] = s0 ? s0[d * dm.Dv + vs.x0 + x] : R(0);
  });
}
template <class R, class Ex>
ATTNLAB_LINATTN_HD void store_state(Ex& ex, const ChunkDims& dm, ValueSlice vs, const R* S, R* s_out) {
  ex.parallel(dm.Dk * vs.W, [&](int64_t e) {
    const int64_t d = e / vs.W, x = e - d * vs.W;
    s_out[d * dm.Dv + vs.x0 + x] = S[e];
  });
}

template <class R, class Ex>
ATTNLAB_LINATTN_HD void gla_forward(Ex& ex, const ChunkDims& dm, ValueSlice vs, const R* q, const R* k, const R* v,
                                    const R* g, const R* s0, R* o, R* s_out, Scratch<R> ws) {
  const int64_t Dk = dm.Dk, Dv = dm.Dv, W = vs.W;
  const GlaWorkspace w(dm, W);
  R *S = ws.at(w.state), *Qg = ws.at(w.Qg), *Kg = ws.at(w.Kg), *A = ws.at(w.A);
  load_state(ex, dm, vs, s0, S);
  for (int64_t c = 0; c < dm.chunks(); ++c) {
    const int64_t s = dm.start(c), L = dm.len(c);
    const R *Q = q + s * Dk, *K = k + s * Dk, *V = v + s * Dv + vs.x0;
    ChunkGates<R> cg = chunk_gates(ex, dm, g, s, L, ws.at(w.B));
    gla_scaled_rows(ex, cg, Q, K, Qg, Kg);
    ex.parallel(L * L, [&](int64_t e) {
      const int64_t i = e / L, j = e - i * L;
      A[e] = j <= i ? gated_score(cg, Q + i * Dk, K + j * Dk, i, j) : R(0);
    });
    ex.parallel(L * W, [&](int64_t e) {
      const int64_t i = e / W, x = e - i * W;
      R acc = R(0);
      for (int64_t j = 0; j <= i; ++j) acc += A[i * L + j] * V[j * Dv + x];
      for (int64_t d = 0; d < Dk; ++d) acc += Qg[i * Dk + d] * S[d * W + x];
      o[(s + i) * Dv + vs.x0 + x] = acc;
    });
    gla_carry(ex, cg, Dv, W, Kg, V, S);
  }
  store_state(ex, dm, vs, S, s_out);
}

// Backward in two sweeps without stored states (as the CPU kernel): forwards, the
// carried state's part of dQ, exp(B) (.) (dO S^T); backwards with dS (the gradient
// of the state after the chunk; S's buffer is reused):
//   dA = tril(dO V^T),  dQ += sum_j dA_ij k_j (.) decay(i, j),  dK_j = sum_i dA_ij q_i (.) decay(i, j)
//        + exp(B_{L-1} - B_j) (.) (dS v_j),  dV = A^T dO + Kg dS,  dS <- exp(B_{L-1}) dS + Qg^T dO.
// Gates: q enters only as q exp(C) and k only as k exp(-C) (C the global cumulative
// log-gate), so dL/dC_t = q_t (.) dq_t - k_t (.) dk_t and dg is its reverse cumsum.
template <class R, class Ex>
ATTNLAB_LINATTN_HD void gla_backward(Ex& ex, const ChunkDims& dm, const R* q, const R* k, const R* v, const R* g,
                                     const R* s0, const R* dout, R* dq, R* dk, R* dv, R* dg, Scratch<R> ws) {
  const int64_t Dk = dm.Dk, Dv = dm.Dv, T = dm.T;
  const GlaWorkspace w(dm, Dv);
  R *S = ws.at(w.state), *Qg = ws.at(w.Qg), *Kg = ws.at(w.Kg), *A = ws.at(w.A), *dA = ws.at(w.dA);

  init_state(ex, dm, s0, S);
  for (int64_t c = 0; c < dm.chunks(); ++c) {
    const int64_t s = dm.start(c), L = dm.len(c);
    const R *dO = dout + s * Dv;
    ChunkGates<R> cg = chunk_gates(ex, dm, g, s, L, ws.at(w.B));
    ex.parallel(L * Dk, [&](int64_t e) {
      const int64_t i = e / Dk, d = e - i * Dk;
      dq[s * Dk + e] = cg.from_start(i, d) * dot(dO + i * Dv, S + d * Dv, Dv);
      Kg[e] = k[s * Dk + e] * cg.to_end(i, d);
    });
    gla_carry(ex, cg, Dv, Dv, Kg, v + s * Dv, S);
  }

  R* dS = S;
  ex.parallel(dm.state_size(), [&](int64_t e) { dS[e] = R(0); });
  for (int64_t c = dm.chunks() - 1; c >= 0; --c) {
    const int64_t s = dm.start(c), L = dm.len(c);
    const R *Q = q + s * Dk, *K = k + s * Dk, *V = v + s * Dv, *dO = dout + s * Dv;
    ChunkGates<R> cg = chunk_gates(ex, dm, g, s, L, ws.at(w.B));
    gla_scaled_rows(ex, cg, Q, K, Qg, Kg);
    ex.parallel(L * L, [&](int64_t e) {
      const int64_t i = e / L, j = e - i * L;
      A[e] = j <= i ? gated_score(cg, Q + i * Dk, K + j * Dk, i, j) : R(0);
      dA[e] = j <= i ? dot(dO + i * Dv, V + j * Dv, Dv) : R(0);
    });
    ex.parallel(L * Dk, [&](int64_t e) {
      const int64_t i = e / Dk, d = e - i * Dk;
      R aq = dq[s * Dk + e];
      for (int64_t j = 0; j <= i; ++j) aq += dA[i * L + j] * K[j * Dk + d] * cg.decay(i, j, d);
      dq[s * Dk + e] = aq;
      R ak = R(0);
      for (int64_t r = i; r < L; ++r) ak += dA[r * L + i] * Q[r * Dk + d] * cg.decay(r, i, d);
      dk[s * Dk + e] = ak + cg.to_end(i, d) * dot(V + i * Dv, dS + d * Dv, Dv);
    });
    ex.parallel(L * Dv, [&](int64_t e) {
      const int64_t j = e / Dv, x = e - j * Dv;
      R acc = R(0);
      for (int64_t i = j; i < L; ++i) acc += A[i * L + j] * dO[i * Dv + x];
      for (int64_t d = 0; d < Dk; ++d) acc += Kg[j * Dk + d] * dS[d * Dv + x];
      dv[s * Dv + e] = acc;
    });
    gla_carry(ex, cg, Dv, Dv, Qg, dO, dS);
  }

  if (dm.gate == GateKind::diag) {
    ex.parallel(Dk, [&](int64_t d) {
      R acc = R(0);
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t i = t * Dk + d;
        dg[i] = acc += q[i] * dq[i] - k[i] * dk[i];
      }
    });
  } else if (dm.gate == GateKind::scalar) {
    ex.parallel(T, [&](int64_t t) { dg[t] = dot(q + t * Dk, dq + t * Dk, Dk) - dot(k + t * Dk, dk + t * Dk, Dk); });
    ex.parallel(1, [&](int64_t) {
      R acc = R(0);
      for (int64_t t = T - 1; t >= 0; --t) dg[t] = acc += dg[t];
    });
  }
}

// ---------------------------------------------------------------------------
// (Gated) delta rule through the UT transform (Yang et al., "Parallelizing Linear
// Transformers with the Delta Rule over Sequence Length", sec. 3; with gates, Yang
// et al., "Gated Delta Networks", sec. 3.3), per chunk with carried state S, scalar
// gates (Gamma_t = exp(B_t), D_tj = decay(t, j), E_t = to_end(t)):
//   (I + Lm) U = diag(b) (V - diag(Gamma) K S),   Lm = strictly-lower(diag(b) (K K^T (.) D))
//   O = P U + diag(Gamma) Q S,   P = tril(Q K^T (.) D)
//   S <- Gamma_{L-1} S + (diag(E) K)^T U
// beta [T]; other arguments as gla_forward.

// The chunk's M = Lm (zero on and above the diagonal), and with P / KK non-null
// P and K K^T.
template <class R, class Ex>
ATTNLAB_LINATTN_HD void delta_scores(Ex& ex, const ChunkGates<R>& cg, const R* Q, const R* K, const R* beta, R* M,
                                     R* P, R* KK) {
  const int64_t L = cg.L, Dk = cg.Dk;
  ex.parallel(L * L, [&](int64_t e) {
    const int64_t t = e / L, j = e - t * L;
    const R kk = dot(K + t * Dk, K + j * Dk, Dk);
    if (KK) KK[e] = kk;
    M[e] = j < t ? beta[t] * kk * cg.decay(t, j, 0) : R(0);
    if (P) P[e] = j <= t ? dot(Q + t * Dk, K + j * Dk, Dk) * cg.decay(t, j, 0) : R(0);
  });
}

// U = (I + Lm)^-1 diag(b) (V - diag(Gamma) K S), and with KS non-null K S there
// (W value columns: V's row stride ldv; S [Dk, W], U and KS [L, W]). The solve
// runs down each value column in its own thread (columns are independent).
template <class R, class Ex>
ATTNLAB_LINATTN_HD void delta_pseudo_values(Ex& ex, const ChunkGates<R>& cg, int64_t ldv, int64_t W, const R* K,
                                            const R* V, const R* beta, const R* S, const R* M, R* U, R* KS) {
  const int64_t L = cg.L, Dk = cg.Dk;
  ex.parallel(L * W, [&](int64_t e) {
    const int64_t t = e / W, x = e - t * W;
    R ks = R(0);
    for (int64_t d = 0; d < Dk; ++d) ks += K[t * Dk + d] * S[d * W + x];
    if (KS) KS[e] = ks;
    U[e] = beta[t] * (V[t * ldv + x] - cg.from_start(t, 0) * ks);
  });
  ex.parallel(W, [&](int64_t x) {
    for (int64_t t = 1; t < L; ++t) {
      R acc = U[t * W + x];
      for (int64_t j = 0; j < t; ++j) acc -= M[t * L + j] * U[j * W + x];
      U[t * W + x] = acc;
    }
  });
}

// S <- Gamma_{L-1} S_in + (diag(E) K)^T U (S_in may be S; S [Dk, W], U [L, W]).
template <class R, class Ex>
ATTNLAB_LINATTN_HD void delta_carry(Ex& ex, const ChunkGates<R>& cg, int64_t W, const R* K, const R* U, const R* S_in,
                                    R* S) {
  const int64_t L = cg.L, Dk = cg.Dk;
  ex.parallel(Dk * W, [&](int64_t e) {
    const int64_t d = e / W, x = e - d * W;
    R acc = cg.from_start(L - 1, 0) * S_in[e];
    for (int64_t j = 0; j < L; ++j) acc += K[j * Dk + d] * cg.to_end(j, 0) * U[j * W + x];
    S[e] = acc;
  });
}

template <class R, class Ex>
ATTNLAB_LINATTN_HD void delta_forward(Ex& ex, const ChunkDims& dm, ValueSlice vs, const R* q, const R* k, const R* v,
                                      const R* beta, const R* g, const R* s0, R* o, R* s_out, Scratch<R> ws) {
  const int64_t Dk = dm.Dk, Dv = dm.Dv, W = vs.W;
  const DeltaWorkspace w(dm, false, W);
  R *S = ws.at(w.state), *M = ws.at(w.M), *P = ws.at(w.P), *U = ws.at(w.U);
  load_state(ex, dm, vs, s0, S);
  for (int64_t c = 0; c < dm.chunks(); ++c) {
    const int64_t s = dm.start(c), L = dm.len(c);
    const R *Q = q + s * Dk, *K = k + s * Dk, *V = v + s * Dv + vs.x0;
    ChunkGates<R> cg = chunk_gates(ex, dm, g, s, L, ws.at(w.B));
    delta_scores(ex, cg, Q, K, beta + s, M, P, static_cast<R*>(nullptr));
    delta_pseudo_values(ex, cg, Dv, W, K, V, beta + s, S, M, U, static_cast<R*>(nullptr));
    ex.parallel(L * W, [&](int64_t e) {
      const int64_t t = e / W, x = e - t * W;
      R acc = R(0);
      for (int64_t j = 0; j <= t; ++j) acc += P[t * L + j] * U[j * W + x];
      R qs = R(0);
      for (int64_t d = 0; d < Dk; ++d) qs += Q[t * Dk + d] * S[d * W + x];
      o[(s + t) * Dv + vs.x0 + x] = acc + cg.from_start(t, 0) * qs;
    });
    delta_carry(ex, cg, W, K, U, S, S);
  }
  store_state(ex, dm, vs, S, s_out);
}

// Backward: a forward sweep stores the state at every chunk start in ws (T/C
// states; recomputing them instead would cost a forward pass per chunk, and the
// delta rule's state is not invertible), then a backward sweep with dS (in S's
// buffer), the gradient of the state after the chunk, as the CPU kernel:
//   dU = P^T dO + diag(E) K dS,  (I + Lm)^T dR = dU,  dLm = -strictly-lower(dR U^T)
//   dQ = (dP (.) D) K + diag(Gamma) dO S0^T                 (dP = tril(dO U^T))
//   dK = (dP (.) D)^T Q + G K + G^T K + diag(E) U dS^T - diag(b Gamma) dR S0^T,  G = diag(b) (dLm (.) D)
//   dV = diag(b) dR,  db_t = sum_j dLm_tj D_tj (k_t . k_j) + dR_t . (v_t - Gamma_t (K S0)_t)
//   dS <- Gamma_{L-1} dS + (diag(Gamma) Q)^T dO - (diag(b Gamma) K)^T dR
// The log-gates' gradient collects every place D, Gamma and E appear (per step of
// the chunk, gradient w.r.t. B_t), then a reverse cumulative sum inside the chunk.
template <class R, class Ex>
ATTNLAB_LINATTN_HD void delta_backward(Ex& ex, const ChunkDims& dm, const R* q, const R* k, const R* v, const R* beta,
                                       const R* g, const R* s0, const R* dout, R* dq, R* dk, R* dv, R* dbeta, R* dg,
                                       Scratch<R> ws) {
  const DeltaWorkspace w(dm, true, dm.Dv);
  const int64_t Dk = dm.Dk, Dv = dm.Dv, SZ = dm.state_size(), chunks = dm.chunks();
  const bool gated = dm.gate == GateKind::scalar;
  R *dS = ws.at(w.state), *states = ws.at(w.states), *db = ws.at(w.db), *ey = ws.at(w.ey), *KK = ws.at(w.KK),
    *M = ws.at(w.M), *P = ws.at(w.P), *dP = ws.at(w.dP), *dLm = ws.at(w.dLm), *KS = ws.at(w.KS), *U = ws.at(w.U),
    *dR = ws.at(w.dR), *Tk = ws.at(w.Tk), *Y = ws.at(w.Y), *Z = ws.at(w.Z);

  init_state(ex, dm, s0, states);
  for (int64_t c = 0; c + 1 < chunks; ++c) {
    const int64_t s = dm.start(c), L = dm.len(c);
    const R *K = k + s * Dk, *V = v + s * Dv;
    ChunkGates<R> cg = chunk_gates(ex, dm, g, s, L, ws.at(w.B));
    delta_scores(ex, cg, q + s * Dk, K, beta + s, M, static_cast<R*>(nullptr), static_cast<R*>(nullptr));
    delta_pseudo_values(ex, cg, Dv, Dv, K, V, beta + s, states + c * SZ, M, U, static_cast<R*>(nullptr));
    delta_carry(ex, cg, Dv, K, U, states + c * SZ, states + (c + 1) * SZ);
  }

  ex.parallel(SZ, [&](int64_t e) { dS[e] = R(0); });
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t s = dm.start(c), L = dm.len(c);
    const R *Q = q + s * Dk, *K = k + s * Dk, *V = v + s * Dv, *dO = dout + s * Dv, *bc = beta + s;
    const R* S0 = states + c * SZ;
    ChunkGates<R> cg = chunk_gates(ex, dm, g, s, L, ws.at(w.B));
    delta_scores(ex, cg, Q, K, bc, M, P, KK);
    delta_pseudo_values(ex, cg, Dv, Dv, K, V, bc, S0, M, U, KS);

    // dU (in dR until the solve) and the ungated dP.
    ex.parallel(L * Dv, [&](int64_t e) {
      const int64_t t = e / Dv, x = e - t * Dv;
      R acc = R(0);
      for (int64_t i = t; i < L; ++i) acc += P[i * L + t] * dO[i * Dv + x];
      R kds = R(0);
      for (int64_t d = 0; d < Dk; ++d) kds += K[t * Dk + d] * dS[d * Dv + x];
      dR[e] = acc + cg.to_end(t, 0) * kds;
    });
    ex.parallel(L * L, [&](int64_t e) {
      const int64_t t = e / L, j = e - t * L;
      dP[e] = j <= t ? dot(dO + t * Dv, U + j * Dv, Dv) : R(0);
    });
    // (I + Lm)^T dR = dU, back substitution down each value column.
    ex.parallel(Dv, [&](int64_t x) {
      for (int64_t t = L - 2; t >= 0; --t) {
        R acc = dR[t * Dv + x];
        for (int64_t j = t + 1; j < L; ++j) acc -= M[j * L + t] * dR[j * Dv + x];
        dR[t * Dv + x] = acc;
      }
    });
    ex.parallel(L * L, [&](int64_t e) {
      const int64_t t = e / L, j = e - t * L;
      dLm[e] = j < t ? -dot(dR + t * Dv, U + j * Dv, Dv) : R(0);
    });
    // Tk = dO S0^T, Y = U dS^T, Z = dR S0^T, each [L, Dk].
    ex.parallel(L * Dk, [&](int64_t e) {
      const int64_t t = e / Dk, d = e - t * Dk;
      Tk[e] = dot(dO + t * Dv, S0 + d * Dv, Dv);
      Y[e] = dot(U + t * Dv, dS + d * Dv, Dv);
      Z[e] = dot(dR + t * Dv, S0 + d * Dv, Dv);
    });
    ex.parallel(L, [&](int64_t t) {
      const R gam = cg.from_start(t, 0), dr_ks = dot(dR + t * Dv, KS + t * Dv, Dv);
      R acc = R(0);
      for (int64_t j = 0; j < t; ++j) acc += dLm[t * L + j] * cg.decay(t, j, 0) * KK[t * L + j];
      dbeta[s + t] = acc + dot(dR + t * Dv, V + t * Dv, Dv) - gam * dr_ks;
      if (!gated) return;
      // x_tj = dP_tj P_tj + dLm_tj M_tj is the gradient of log D_tj = B_t - B_j.
      R b = R(0);
      for (int64_t j = 0; j <= t; ++j) b += dP[t * L + j] * P[t * L + j] + dLm[t * L + j] * M[t * L + j];
      for (int64_t i = t; i < L; ++i) b -= dP[i * L + t] * P[i * L + t] + dLm[i * L + t] * M[i * L + t];
      ey[t] = cg.to_end(t, 0) * dot(K + t * Dk, Y + t * Dk, Dk);
      db[t] = b + gam * dot(Q + t * Dk, Tk + t * Dk, Dk) - ey[t] - bc[t] * gam * dr_ks;
    });
    if (gated) {
      const R carried = ex.sum(SZ, [&](int64_t e) { return dS[e] * S0[e]; });
      ex.parallel(1, [&](int64_t) {
        R ysum = R(0);
        for (int64_t t = 0; t < L; ++t) ysum += ey[t];
        db[L - 1] += ysum + cg.from_start(L - 1, 0) * carried;
        R acc = R(0);
        for (int64_t t = L - 1; t >= 0; --t) dg[s + t] = acc += db[t];
      });
    }
    ex.parallel(L * Dk, [&](int64_t e) {
      const int64_t t = e / Dk, d = e - t * Dk;
      const R gam = cg.from_start(t, 0);
      R aq = R(0);
      for (int64_t j = 0; j <= t; ++j) aq += dP[t * L + j] * cg.decay(t, j, 0) * K[j * Dk + d];
      dq[s * Dk + e] = aq + gam * Tk[e];
      R ak = R(0);
      for (int64_t i = t; i < L; ++i) ak += dP[i * L + t] * cg.decay(i, t, 0) * Q[i * Dk + d];
      for (int64_t j = 0; j < t; ++j) ak += bc[t] * dLm[t * L + j] * cg.decay(t, j, 0) * K[j * Dk + d];
      for (int64_t i = t + 1; i < L; ++i) ak += bc[i] * dLm[i * L + t] * cg.decay(i, t, 0) * K[i * Dk + d];
      dk[s * Dk + e] = ak + cg.to_end(t, 0) * Y[e] - bc[t] * gam * Z[e];
    });
    ex.parallel(L * Dv, [&](int64_t e) { dv[s * Dv + e] = bc[e / Dv] * dR[e]; });
    ex.parallel(SZ, [&](int64_t e) {
      const int64_t d = e / Dv, x = e - d * Dv;
      R acc = cg.from_start(L - 1, 0) * dS[e];
      for (int64_t t = 0; t < L; ++t)
        acc += cg.from_start(t, 0) * (Q[t * Dk + d] * dO[t * Dv + x] - bc[t] * K[t * Dk + d] * dR[t * Dv + x]);
      dS[e] = acc;
    });
  }
}

}  // namespace attnlab::cuda::linattn
