#pragma once
// Compile-time dtype dispatch for CPU kernels: f.template operator()<T>() with T
// the C++ type of `t`. CPU compute is f32/f64 (bf16 is storage only on the CPU).
#include "core/dtype.h"
#include "core/error.h"

namespace attnlab::cpu {

template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<float>(); return;
    case DType::f64: f.template operator()<double>(); return;
    default: throw Error(detail::cat(op, ": no CPU kernel for dtype ", dtype_name(t)));
  }
}

template <class F>
void dispatch_index(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::i32: f.template operator()<int32_t>(); return;
    case DType::i64: f.template operator()<int64_t>(); return;
    default: throw Error(detail::cat(op, ": indices must be i32 or i64, got ", dtype_name(t)));
  }
}

template <class F>
void dispatch_any(DType t, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<float>(); return;
    case DType::f64: f.template operator()<double>(); return;
    case DType::bf16: f.template operator()<bf16>(); return;
    case DType::i32: f.template operator()<int32_t>(); return;
    case DType::i64: f.template operator()<int64_t>(); return;
    case DType::u16: f.template operator()<uint16_t>(); return;
  }
}

// Parallelise only loops big enough to pay for the fork.
constexpr int64_t kParallelGrain = 1 << 15;

}  // namespace attnlab::cpu
