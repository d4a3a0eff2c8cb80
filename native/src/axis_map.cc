// jaxconv's axis maps on the CPU: XLA FFI handlers applying static sparse matrices along axes of
// a float32 array -- jaxconv._core.axis_map's primitive, through which every mode of
// jaxconv.interpolate (and adaptive average pooling on CPU) maps each spatial axis.
//
// jaxconv_axis_map_f32, one O x L matrix A along one axis: x is viewed as (outer, L, inner) and
// y as (outer, O, inner), where outer is the product of the dims before the mapped axis and inner
// the product of those after it (contiguous; channels-last arrays put the channels there). A is
// given densely padded to R taps a row: idx (O, R) and weights (O, R), row-major, padding taps
// with weight 0 on a valid column:
//
//   y[b, o, i] = sum_{r < R} weights[o, r] * x[b, idx[o, r], i]
//
// jaxconv_axis_map2_f32, two such matrices along two axes in one pass (Map2 below): the spatial
// H and W of an image, without writing the half-mapped array to memory.
//
// The maps are linear in x; the transpose (the backward pass, dx = A^T g) is the same map with
// the transposed tables (rows and columns of A exchanged, re-padded to their own R), so these
// kernels serve every derivative order: the Python side builds A^T's tables, never a scatter.
//
// Work: each row of y is written by one thread, as passes of a contiguous multiply-add of one or
// two taps over `inner` elements (blocked so a block of y stays in L1 across the taps), which GCC
// vectorises. Rows are spread in chunks over XLA's intra-op thread pool (see Run): one thread
// for a small call. Every bad input returns an ffi::Error naming the handler; nothing is read or
// written out of bounds.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "intra_op.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr const char* kName = "jaxconv_axis_map_f32";
constexpr const char* kName2 = "jaxconv_axis_map2_f32";

// Calls under this many multiply-adds run on the calling thread alone: handing work to other
// threads costs more than it saves there.
constexpr int64_t kSmallCall = int64_t{1} << 17;

// The helpers below are forced inline (JAXCONV_INLINE, intra_op.h) into the per-CPU clones of
// Rows / Rows2 (target_clones), which compile them for that clone's vector width; a helper
// called out of line would run the baseline SSE2 code on every CPU.

// Elements of a y row computed over all taps before the next block (16 KiB of float32).
constexpr int64_t kBlock = 4096;

ffi::Error Bad(const char* name, const std::string& what) {
  return ffi::Error::InvalidArgument(std::string(name) + ": " + what);
}

// The threads a call runs on: one for a small call, else XLA's intra-op pool size.
int64_t Threads(const ffi::ThreadPool& pool, int64_t macs) {
  return jaxconv_native::Threads(pool, macs, kSmallCall);
}

// One call's operands, checked.
struct Map {
  const float* x;
  float* y;
  const int64_t* idx;
  const float* w;
  int64_t in_size, out_size, inner, taps;  // L, O, inner, R (>= 1)
};

// y[0:n] = w * x[0:n] (first tap) or y[0:n] += w * x[0:n]; two taps at once: one pass over y.
JAXCONV_INLINE void Assign(float* __restrict y, const float* __restrict x, float w, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = w * x[i];
}

JAXCONV_INLINE void Accumulate(float* __restrict y, const float* __restrict x, float w, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
}

JAXCONV_INLINE void Assign2(float* __restrict y, const float* __restrict x0, const float* __restrict x1,
                    float w0, float w1, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = w0 * x0[i] + w1 * x1[i];
}

JAXCONV_INLINE void Accumulate2(float* __restrict y, const float* __restrict x0,
                        const float* __restrict x1, float w0, float w1, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += w0 * x0[i] + w1 * x1[i];
}

// y[0:n] = sum_r wr[r] * x[ir[r] * stride + (0:n)], blocked so a block of y stays in L1 across
// the taps (R >= 1).
JAXCONV_INLINE void Combine(float* y, const float* x, int64_t stride, int64_t n, const int64_t* ir,
                    const float* wr, int64_t taps) {
  for (int64_t s = 0; s < n; s += kBlock) {
    const int64_t len = std::min(kBlock, n - s);
    float* ys = y + s;
    const float* xs = x + s;
    int64_t r;
    if (taps >= 2) {
      Assign2(ys, xs + ir[0] * stride, xs + ir[1] * stride, wr[0], wr[1], len);
      r = 2;
    } else {
      Assign(ys, xs + ir[0] * stride, wr[0], len);
      r = 1;
    }
    for (; r + 1 < taps; r += 2) {
      Accumulate2(ys, xs + ir[r] * stride, xs + ir[r + 1] * stride, wr[r], wr[r + 1], len);
    }
    if (r < taps) Accumulate(ys, xs + ir[r] * stride, wr[r], len);
  }
}

// Rows narrower than this (inner elements; channels-last images: C) are computed by OneRow's
// register-accumulating path instead of Combine's passes, whose setup per call is then a large
// share of the work (measured: the W map of a channels-last image with C = 32).
constexpr int64_t kNarrow = 128;
constexpr int64_t kLanes = 16;  // one AVX-512 register, two AVX2 ones

// A narrow row with a fixed number of taps T (the tables' common widths: nearest 1, linear 2,
// their transposes and cubic up to 4): the taps' rows and weights held in registers, each
// element summed over the T taps in one expression and stored once.
template <int T>
JAXCONV_INLINE void NarrowRow(float* __restrict y, const float* x, int64_t stride, int64_t n,
                              const int64_t* ir, const float* wr) {
  // One named pointer and weight per tap (an array of pointers indexed in the loop is not
  // vectorised: 4 taps ran 3.5x slower than the generic path below).
  const float* __restrict x0 = x + ir[0] * stride;
  const float* __restrict x1 = x + ir[T > 1 ? 1 : 0] * stride;
  const float* __restrict x2 = x + ir[T > 2 ? 2 : 0] * stride;
  const float* __restrict x3 = x + ir[T > 3 ? 3 : 0] * stride;
  const float w0 = wr[0], w1 = wr[T > 1 ? 1 : 0], w2 = wr[T > 2 ? 2 : 0], w3 = wr[T > 3 ? 3 : 0];
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    float acc = w0 * x0[c];
    if constexpr (T > 1) acc += w1 * x1[c];
    if constexpr (T > 2) acc += w2 * x2[c];
    if constexpr (T > 3) acc += w3 * x3[c];
    y[c] = acc;
  }
}

// y[0:n] = sum_r wr[r] * x[ir[r] * stride + (0:n)]: Combine, or for a narrow row NarrowRow
// (1-4 taps) or 16 lanes at a time summed over every tap in registers before one store.
JAXCONV_INLINE void OneRow(float* y, const float* x, int64_t stride, int64_t n, const int64_t* ir,
                   const float* wr, int64_t taps) {
  if (n >= kNarrow) {
    Combine(y, x, stride, n, ir, wr, taps);
    return;
  }
  switch (taps) {
    case 1: return NarrowRow<1>(y, x, stride, n, ir, wr);
    case 2: return NarrowRow<2>(y, x, stride, n, ir, wr);
    case 3: return NarrowRow<3>(y, x, stride, n, ir, wr);
    case 4: return NarrowRow<4>(y, x, stride, n, ir, wr);
    default: break;
  }
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    float acc[kLanes] = {};
    for (int64_t r = 0; r < taps; ++r) {
      const float* xs = x + ir[r] * stride + c;
      const float w = wr[r];
#pragma omp simd
      for (int64_t i = 0; i < kLanes; ++i) acc[i] += w * xs[i];
    }
#pragma omp simd
    for (int64_t i = 0; i < kLanes; ++i) y[c + i] = acc[i];
  }
  for (; c < n; ++c) {
    float acc = 0.0f;
    for (int64_t r = 0; r < taps; ++r) acc += wr[r] * x[ir[r] * stride + c];
    y[c] = acc;
  }
}

// Rows [lo, hi) of y viewed as (outer * O, inner). Compiled for AVX-512, AVX2 + FMA and the
// baseline (the library is built without -march), picked once at load time by the CPU.
__attribute__((target_clones("avx512f", "avx2", "default")))
void Rows(const Map& m, int64_t lo, int64_t hi) {
  const int64_t inner = m.inner, taps = m.taps;
  int64_t b = lo / m.out_size, o = lo % m.out_size;
  for (int64_t row = lo; row < hi; ++row) {
    OneRow(m.y + row * inner, m.x + b * m.in_size * inner, inner, inner, m.idx + o * taps,
           m.w + o * taps, taps);
    if (++o == m.out_size) o = 0, ++b;
  }
}

// Two maps at once (jaxconv_axis_map2_f32): A1 (O1 x L1, R1 taps) along axis1 and A2 (O2 x L2,
// R2 taps) along a later axis2, x viewed as (outer, L1, mid, L2, inner), y as (outer, O1, mid,
// O2, inner):
//
//   t[b, o1, m, l2, i]  = sum_{r1} w1[o1, r1] * x[b, idx1[o1, r1], m, l2, i]
//   y[b, o1, m, o2, i]  = sum_{r2} w2[o2, r2] * t[b, o1, m, idx2[o2, r2], i]
//
// i.e. y = A2 (A1 x) along the two axes (the maps act on different axes and commute). Each
// (b, o1) row keeps its slab t (mid * L2 * inner floats) in a per-thread buffer while A2 reads
// it, so the intermediate A1 x never goes to memory: one pass over x and one over y, where two
// single-axis maps write and read A1 x in full between them.
struct Map2 {
  const float* x;
  float* y;
  const int64_t *idx1, *idx2;
  const float *w1, *w2;
  int64_t in1, out1, taps1, in2, out2, taps2, mid, inner;  // L1, O1, R1, L2, O2, R2 (R >= 1)
};

__attribute__((target_clones("avx512f", "avx2", "default")))
void Rows2(const Map2& m, int64_t lo, int64_t hi, float* t) {
  const int64_t slab = m.mid * m.in2 * m.inner;     // one (b, l1) slab of x; t's size
  const int64_t yslab = m.mid * m.out2 * m.inner;   // one (b, o1) slab of y
  int64_t b = lo / m.out1, o1 = lo % m.out1;
  for (int64_t row = lo; row < hi; ++row) {
    Combine(t, m.x + b * m.in1 * slab, slab, slab, m.idx1 + o1 * m.taps1, m.w1 + o1 * m.taps1,
            m.taps1);
    float* yr = m.y + row * yslab;
    for (int64_t k = 0; k < m.mid; ++k) {
      const float* tk = t + k * m.in2 * m.inner;
      float* yk = yr + k * m.out2 * m.inner;
      for (int64_t o2 = 0; o2 < m.out2; ++o2) {
        OneRow(yk + o2 * m.inner, tk, m.inner, m.inner, m.idx2 + o2 * m.taps2,
               m.w2 + o2 * m.taps2, m.taps2);
      }
    }
    if (++o1 == m.out1) o1 = 0, ++b;
  }
}

// Rows are spread over XLA's intra-op pool (intra_op.h: the calling thread works too).
using jaxconv_native::Run;

// Checks one table's attributes against its sizes; "" when they are consistent.
std::string CheckTable(const char* name, ffi::Span<const int64_t> idx,
                       ffi::Span<const float> weights, int64_t taps, int64_t in_size,
                       int64_t out_size) {
  const std::string n(name);
  if (taps < 0) return n + ": taps must be >= 0 (got " + std::to_string(taps) + ")";
  const int64_t entries = out_size * taps;
  if (static_cast<int64_t>(idx.size()) != entries ||
      static_cast<int64_t>(weights.size()) != entries) {
    return n + ": idx and weights need out_size * taps = " + std::to_string(entries) +
           " entries (got " + std::to_string(idx.size()) + " and " +
           std::to_string(weights.size()) + ")";
  }
  for (int64_t k = 0; k < entries; ++k) {
    if (idx[k] < 0 || idx[k] >= in_size) {
      return n + ": idx[" + std::to_string(k / taps) + ", " + std::to_string(k % taps) +
             "] = " + std::to_string(idx[k]) + " out of [0, " + std::to_string(in_size) + ")";
    }
  }
  return "";
}

// Checks that x and y agree except along the mapped axes; "" when they do.
std::string CheckShapes(ffi::Span<const int64_t> xd, ffi::Span<const int64_t> yd, int64_t axis1,
                        int64_t axis2) {
  const int64_t rank = static_cast<int64_t>(xd.size());
  if (static_cast<int64_t>(yd.size()) != rank) {
    return "x and y differ in rank (" + std::to_string(rank) + " vs " +
           std::to_string(yd.size()) + ")";
  }
  for (int64_t axis : {axis1, axis2}) {
    if (axis < 0 || axis >= rank) {
      return "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank);
    }
  }
  for (int64_t d = 0; d < rank; ++d) {
    if (d != axis1 && d != axis2 && xd[d] != yd[d]) {
      return "x and y differ in dim " + std::to_string(d) + " (" + std::to_string(xd[d]) +
             " vs " + std::to_string(yd[d]) + "), which is not a mapped axis";
    }
  }
  return "";
}

int64_t Product(ffi::Span<const int64_t> dims, int64_t lo, int64_t hi) {
  int64_t p = 1;
  for (int64_t d = lo; d < hi; ++d) p *= dims[d];
  return p;
}

ffi::Error AxisMapImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                       ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> idx,
                       ffi::Span<const float> weights, int64_t taps, int64_t axis) {
  const ffi::Span<const int64_t> xd = x.dimensions(), yd = y->dimensions();
  std::string bad = CheckShapes(xd, yd, axis, axis);
  if (!bad.empty()) return Bad(kName, bad);
  const int64_t rank = static_cast<int64_t>(xd.size());
  const int64_t in_size = xd[axis], out_size = yd[axis];
  bad = CheckTable(kName, idx, weights, taps, in_size, out_size);
  if (!bad.empty()) return ffi::Error::InvalidArgument(bad);
  const int64_t outer = Product(xd, 0, axis), inner = Product(xd, axis + 1, rank);
  const int64_t rows = outer * out_size;
  if (rows == 0 || inner == 0) return ffi::Error::Success();
  if (taps == 0) {  // no column of A is set (L = 0 included): y = 0
    std::fill_n(y->typed_data(), rows * inner, 0.0f);
    return ffi::Error::Success();
  }
  const Map map{x.typed_data(), y->typed_data(), idx.begin(), weights.begin(),
                in_size, out_size, inner, taps};
  Run(pool, [map](int64_t lo, int64_t hi) { Rows(map, lo, hi); }, rows,
      Threads(pool, rows * inner * taps));
  return ffi::Error::Success();
}

ffi::Error AxisMap2Impl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                        ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> idx1,
                        ffi::Span<const float> weights1, int64_t taps1, int64_t axis1,
                        ffi::Span<const int64_t> idx2, ffi::Span<const float> weights2,
                        int64_t taps2, int64_t axis2) {
  const ffi::Span<const int64_t> xd = x.dimensions(), yd = y->dimensions();
  std::string bad = CheckShapes(xd, yd, axis1, axis2);
  if (!bad.empty()) return Bad(kName2, bad);
  if (axis1 >= axis2) {
    return Bad(kName2, "axis1 (" + std::to_string(axis1) + ") must come before axis2 (" +
                           std::to_string(axis2) + ")");
  }
  const int64_t rank = static_cast<int64_t>(xd.size());
  Map2 m{x.typed_data(), y->typed_data(), idx1.begin(), idx2.begin(), weights1.begin(),
         weights2.begin(), xd[axis1], yd[axis1], taps1, xd[axis2], yd[axis2], taps2,
         Product(xd, axis1 + 1, axis2), Product(xd, axis2 + 1, rank)};
  bad = CheckTable(kName2, idx1, weights1, taps1, m.in1, m.out1);
  if (bad.empty()) bad = CheckTable(kName2, idx2, weights2, taps2, m.in2, m.out2);
  if (!bad.empty()) return ffi::Error::InvalidArgument(bad);
  const int64_t rows = Product(xd, 0, axis1) * m.out1;
  const int64_t yslab = m.mid * m.out2 * m.inner;
  if (rows == 0 || yslab == 0) return ffi::Error::Success();
  if (taps1 == 0 || taps2 == 0) {  // a map with no column set: y = 0
    std::fill_n(y->typed_data(), rows * yslab, 0.0f);
    return ffi::Error::Success();
  }
  const int64_t slab = m.mid * m.in2 * m.inner;
  auto rows_fn = [m, slab](int64_t lo, int64_t hi) {
    std::unique_ptr<float[]> t(new float[slab]);
    Rows2(m, lo, hi, t.get());
  };
  Run(pool, rows_fn, rows, Threads(pool, rows * (taps1 * slab + taps2 * yslab)));
  return ffi::Error::Success();
}

}  // namespace

// The library's exports (compiled with -fvisibility=hidden).
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_axis_map_f32, AxisMapImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()  // XLA's intra-op pool caps threads
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<ffi::Span<const int64_t>>("idx")
                                  .Attr<ffi::Span<const float>>("weights")
                                  .Attr<int64_t>("taps")
                                  .Attr<int64_t>("axis"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_axis_map2_f32, AxisMap2Impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<ffi::Span<const int64_t>>("idx1")
                                  .Attr<ffi::Span<const float>>("weights1")
                                  .Attr<int64_t>("taps1")
                                  .Attr<int64_t>("axis1")
                                  .Attr<ffi::Span<const int64_t>>("idx2")
                                  .Attr<ffi::Span<const float>>("weights2")
                                  .Attr<int64_t>("taps2")
                                  .Attr<int64_t>("axis2"));
#pragma GCC visibility pop
