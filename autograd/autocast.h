#pragma once
// bf16 mixed precision (train.precision = bf16). While an AutocastGuard is
// alive on this thread, ag::matmul and ag::linear round their f32 operands to
// bf16 and multiply them with f32 accumulation into an f32 result
// (ops::matmul_bf16_f32), and their backward does the same with the incoming
// gradient; on CUDA ag::flash_attention runs its kernel on bf16 q, k, v (f32
// accumulation, f32 lse) and returns f32. Everything else stays f32: the
// weights (the optimizer's master copy), norms, softmax, the loss and the
// residual stream. So GEMMs run on bf16 tensor cores and save their operands
// for the backward at half the memory, and no loss scaling is needed (bf16 has
// f32's exponent range).
namespace attnlab {

bool autocast_bf16();

class AutocastGuard {
 public:
  explicit AutocastGuard(bool bf16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace attnlab
