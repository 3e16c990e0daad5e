// matmul through cuBLASLt. core/cuda/gemm_plan.h maps the row-major operands
// onto cuBLASLt's column-major GEMM with layout flags (no transposing copies);
// this file sets up the descriptors, picks an algorithm and runs it.
// Precision: f32 computes in f32 (CUBLAS_COMPUTE_32F: no TF32), f64 in f64,
// bf16 inputs with f32 accumulation (split-K partials in f32 too) and f32
// alpha/beta, into a bf16 output, or an f32 one for ops::matmul_bf16_f32.
// ops::linear's bias and GELU ride in cuBLASLt's epilogue (linear_epilogue).
// Run to run the results are bit-identical: cuBLAS documents
// that for one toolkit and GPU model (its in-place split-K orders the partial
// sums with counters), and the algorithm choice depends only on shape and alignment.
#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "core/cuda/cuda_ops.h"
#include "core/cuda/gemm_plan.h"
#include "core/cuda/kernel_utils.cuh"

namespace attnlab::cuda {

namespace {

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(detail::cat("cuBLASLt error: ", call, " at ", file, ":", line, ": ", cublasLtGetStatusName(status),
                            ": ", cublasLtGetStatusString(status)));
}
#define ATTNLAB_CUBLAS_CHECK(call) check_cublas((call), #call, __FILE__, __LINE__)

constexpr int kMaxDevices = 16;
// What cuBLAS recommends for Hopper; smaller GPUs just use less of it.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

// One handle per device, created on first use and kept for the process (like
// the allocators: the CUDA context may already be gone at exit).
cublasLtHandle_t handle_for(int device) {
  ATTNLAB_CHECK(device >= 0 && device < kMaxDevices, "cuda::matmul: device ", device, " out of range");
  static std::array<cublasLtHandle_t, kMaxDevices> handles{};
  static std::once_flag once[kMaxDevices];
  std::call_once(once[device], [device] { ATTNLAB_CUBLAS_CHECK(cublasLtCreate(&handles[device])); });
  return handles[device];
}

// Largest power of two (up to 256) dividing the address: what an algorithm may
// assume. Views at an offset are less aligned than fresh buffers.
uint32_t alignment_of(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

struct Types {
  cudaDataType_t data, scale;
  cublasComputeType_t compute;
};

template <class T>
Types types_of() {
  if constexpr (std::is_same_v<T, double>) return {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F};
  else if constexpr (std::is_same_v<T, float>) return {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F};
  else return {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F};
}

// Owns the cuBLASLt descriptors of one call.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (out) cublasLtMatrixLayoutDestroy(out);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void make_layout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, const GemmOperand& g, int32_t batch) {
  ATTNLAB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(layout, type, g.rows, g.cols, g.ld));
  if (batch == 1) return;
  ATTNLAB_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
  int64_t stride = g.batch_stride;  // 0: one matrix shared by the whole batch
  ATTNLAB_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
}

void set_alignment(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* p) {
  uint32_t align = alignment_of(p);
  ATTNLAB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align));
}

// What ops::linear fuses into the GEMM: the bias added along cuBLASLt's rows
// (our out-features) and the GELU, with its input written to `aux`.
struct Epilogue {
  const Tensor* bias = nullptr;
  Tensor* aux = nullptr;  // set: GELU, aux = its input
  bool any() const { return bias || aux; }
};

// Returns false only when an epilogue was asked for and cuBLASLt has no
// algorithm for it (the caller then runs the separate ops).
template <class T>
bool gemm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, Tensor& out, const Epilogue& ep = {}) {
  using S = compute_t<T>;  // alpha/beta: f32 for bf16
  const GemmPlan plan = plan_gemm(a.shape(), b.shape(), trans_a, trans_b);
  const Types ty = types_of<T>();
  const void* pa = a.raw_data();
  const void* pb = b.raw_data();
  void* po = out.raw_data();

  Descriptors d;
  ATTNLAB_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, ty.compute, ty.scale));
  cublasOperation_t op_first = plan.first.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_second = plan.second.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  ATTNLAB_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
  ATTNLAB_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
  make_layout(&d.first, ty.data, plan.first, plan.batch);
  make_layout(&d.second, ty.data, plan.second, plan.batch);
  // bf16 operands may write an f32 result (mixed precision); otherwise out has their type.
  const cudaDataType_t out_type = out.dtype() == DType::f32 ? CUDA_R_32F : ty.data;
  make_layout(&d.out, out_type, plan.out, plan.batch);
  if (ep.any()) {
    const cublasLtEpilogue_t kind = ep.aux ? (ep.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                           : CUBLASLT_EPILOGUE_BIAS;
    ATTNLAB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &kind, sizeof kind));
    const int32_t out_type_id = out_type;  // bias and aux in the output's type
    if (ep.bias) {
      const void* bias = ep.bias->raw_data();
      ATTNLAB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
      ATTNLAB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &out_type_id,
                                                          sizeof out_type_id));
    }
    if (ep.aux) {
      void* aux = ep.aux->raw_data();
      const int64_t ld = plan.out.ld;  // aux has out's layout
      ATTNLAB_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
      ATTNLAB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld));
      ATTNLAB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE,
                                                          &out_type_id, sizeof out_type_id));
    }
  }

  ATTNLAB_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
  size_t workspace_bytes = kWorkspaceBytes;
  ATTNLAB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                            &workspace_bytes, sizeof workspace_bytes));
  if constexpr (std::is_same_v<T, bf16>) {
    // Split-K partials summed in the output type (bf16) would not be f32
    // accumulation; allow only unsplit sums and f32 partials.
    uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    ATTNLAB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                              &schemes, sizeof schemes));
  }
  set_alignment(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, pb);
  set_alignment(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, pa);
  set_alignment(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, po);
  set_alignment(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, po);

  cublasLtHandle_t handle = handle_for(out.device().index);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, d.op, d.first, d.second, d.out, d.out, d.pref,
                                                                1, &heuristic, &found);
  // No algorithm is NOT_SUPPORTED (or a zero count): for an epilogue, the caller's cue to fall back.
  if (ep.any() && (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)))
    return false;
  ATTNLAB_CUBLAS_CHECK(status);
  ATTNLAB_CHECK(found > 0, "cuda::matmul: cuBLASLt has no algorithm for ", a.str(), (trans_a ? " (transposed)" : ""),
                " @ ", b.str(), (trans_b ? " (transposed)" : ""));

  // The workspace comes from our caching allocator (no cudaMalloc once warm).
  Tensor workspace = Tensor::empty({static_cast<int64_t>(heuristic.workspaceSize / 8 + 1)}, DType::i64, out.device());
  const S alpha = S(1), beta = S(0);
  ATTNLAB_CUBLAS_CHECK(cublasLtMatmul(handle, d.op, &alpha, pb, d.first, pa, d.second, &beta, po, d.out, po, d.out,
                                      &heuristic.algo, workspace.raw_data(), heuristic.workspaceSize,
                                      cudaStream_t(0)));
  return true;
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, Tensor& out) {
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device().index);
  int64_t k = trans_a ? a.size(-2) : a.size(-1);
  if (k == 0) return fill(out, 0.0);  // an empty sum
  dispatch_float(a.dtype(), "matmul", [&]<class T>() { gemm<T>(a, b, trans_a, trans_b, out); });
}

bool linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, Tensor* pre) {
  if (y.numel() == 0 || x.size(-1) == 0) return false;  // nothing to fuse: the separate ops handle it
  // cuBLASLt wants the GELU input's leading dimension (out-features) a multiple of 8.
  if (pre && w.size(0) % 8 != 0) return false;
  DeviceGuard guard(y.device().index);
  Epilogue ep{bias.defined() ? &bias : nullptr, pre};
  bool fused = false;
  dispatch_float(x.dtype(), "linear", [&]<class T>() { fused = gemm<T>(x, w, false, true, y, ep); });
  return fused;
}

}  // namespace attnlab::cuda
