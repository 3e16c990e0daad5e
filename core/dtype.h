#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/macros.h"

namespace attnlab {

enum class DType : uint8_t { f32, f64, bf16, i32, i64, u16 };

// bfloat16: the top 16 bits of an IEEE float32. Conversion from float rounds to
// nearest, ties to even; NaN stays a (quiet) NaN.
struct bf16 {
  uint16_t bits = 0;

  bf16() = default;
  ATTNLAB_HOST_DEVICE explicit bf16(float f) : bits(round_from_float(f)) {}
  ATTNLAB_HOST_DEVICE operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
  }
  ATTNLAB_HOST_DEVICE static uint16_t round_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0)
      return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN, sign kept
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return static_cast<uint16_t>(u >> 16);
  }
  static bf16 from_bits(uint16_t b) {
    bf16 x;
    x.bits = b;
    return x;
  }
};

size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool is_floating(DType t);  // f32, f64, bf16
DType parse_dtype(const std::string& name);

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::u16; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

}  // namespace attnlab
