// jaxconv's max-unpooling scatter on the CPU: an XLA FFI handler (jaxconv_unpool_scatter_f32)
// for jaxconv.pooling.unpool's `scatter_p` -- the backward pass of every max pool whose winners
// are recorded as flat indices (adaptive_max_pool's uneven windows, fractional_max_pool,
// max_unpool's forward), seed 001's "the error goes to the winning unit":
//
//   out[o, t, i] = sum_{p : idx[o, p, i] = t} y[o, p, i]        t in [0, S)
//
// y and idx are viewed as (outer, P, inner) and out as (outer, S, inner): channels-last arrays
// (N, *spatial, C) have outer = N, inner = C; channels-first ones (N, C, *spatial) have
// outer = N * C, inner = 1. An index in [-S, 0) counts from the end and any other index outside
// [0, S) is dropped, as jnp's `.at[idx].add(y, mode="drop")` does (the pure-JAX algorithm).
//
// Work: out is zeroed and accumulated one outer slice at a time (slices never share a cell, so
// no two threads write the same element), slices spread in chunks over XLA's intra-op thread
// pool (intra_op.h), one thread for a small call. Windows that share a winner add in the order
// of p. Every bad input returns an ffi::Error naming the handler; nothing outside out is
// written.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "intra_op.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr const char* kName = "jaxconv_unpool_scatter_f32";

// Calls under this many elements of y run on the calling thread alone.
constexpr int64_t kSmallCall = int64_t{1} << 16;

ffi::Error Bad(const std::string& what) {
  return ffi::Error::InvalidArgument(std::string(kName) + ": " + what);
}

struct Scatter {
  const float* y;
  const int32_t* idx;
  float* out;
  int64_t positions, size, inner;  // P, S, inner
};

// Outer slices [lo, hi) of out.
void Slices(const Scatter& s, int64_t lo, int64_t hi) {
  const int64_t in_slice = s.positions * s.inner, out_slice = s.size * s.inner;
  for (int64_t o = lo; o < hi; ++o) {
    float* out = s.out + o * out_slice;
    std::memset(out, 0, static_cast<size_t>(out_slice) * sizeof(float));
    const float* y = s.y + o * in_slice;
    const int32_t* idx = s.idx + o * in_slice;
    for (int64_t p = 0; p < s.positions; ++p) {
      for (int64_t i = 0; i < s.inner; ++i) {
        int64_t t = idx[p * s.inner + i];
        if (t < 0) t += s.size;
        if (t < 0 || t >= s.size) continue;
        out[t * s.inner + i] += y[p * s.inner + i];
      }
    }
  }
}

ffi::Error ScatterImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::S32> idx,
                       ffi::ResultBuffer<ffi::F32> out, int64_t outer, int64_t inner) {
  const int64_t n_y = static_cast<int64_t>(y.element_count());
  const int64_t n_out = static_cast<int64_t>(out->element_count());
  if (static_cast<int64_t>(idx.element_count()) != n_y) {
    return Bad("y and idx must have the same number of elements (" + std::to_string(n_y) +
               " vs " + std::to_string(idx.element_count()) + ")");
  }
  if (outer < 0 || inner < 0) return Bad("outer and inner must be >= 0");
  const int64_t slice = outer * inner;
  if (slice == 0) {
    std::fill_n(out->typed_data(), n_out, 0.0f);
    return ffi::Error::Success();
  }
  if (n_y % slice != 0 || n_out % slice != 0) {
    return Bad("outer * inner = " + std::to_string(slice) + " does not divide y (" +
               std::to_string(n_y) + " elements) and out (" + std::to_string(n_out) + ")");
  }
  const Scatter s{y.typed_data(), idx.typed_data(), out->typed_data(), n_y / slice,
                  n_out / slice, inner};
  const int64_t threads = outer == 1 ? 1 : jaxconv_native::Threads(pool, n_y, kSmallCall);
  jaxconv_native::Run(pool, [s](int64_t lo, int64_t hi) { Slices(s, lo, hi); }, outer, threads);
  return ffi::Error::Success();
}

}  // namespace

#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_unpool_scatter_f32, ScatterImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // y
                                  .Arg<ffi::Buffer<ffi::S32>>()  // idx
                                  .Ret<ffi::Buffer<ffi::F32>>()  // out
                                  .Attr<int64_t>("outer")
                                  .Attr<int64_t>("inner"));
#pragma GCC visibility pop
