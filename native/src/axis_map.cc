// jaxconv's axis map on the CPU: an XLA FFI handler (jaxconv_axis_map_f32) applying a static
// sparse O x L matrix A along one axis of a float32 array -- jaxconv.resampling.axis_map's
// primitive, which every mode of jaxconv.interpolate chains once per spatial axis.
//
// x is viewed as (outer, L, inner) and y as (outer, O, inner), where outer is the product of the
// dims before the mapped axis and inner the product of those after it (contiguous; channels-last
// arrays put the channels there). A is given densely padded to R taps a row: idx (O, R) and
// weights (O, R), row-major, padding taps with weight 0 on a valid column:
//
//   y[b, o, i] = sum_{r < R} weights[o, r] * x[b, idx[o, r], i]
//
// The map is linear in x; its transpose (the backward pass, dx = A^T g) is the same map with the
// transposed table (rows and columns of A exchanged, re-padded to its own R), so this one kernel
// serves every derivative order: the Python side builds A^T's table, never a scatter.
//
// Work: each (b, o) row of y is written by one thread, as passes of a contiguous multiply-add of
// one or two taps over `inner` elements (blocked so a block of y stays in L1 across the taps),
// which GCC vectorises. Rows are spread in chunks over XLA's intra-op thread pool (see Run): one
// thread for a small call. Every bad input returns an ffi::Error naming the handler; nothing is
// read or written out of bounds.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr const char* kName = "jaxconv_axis_map_f32";

// Calls under this many multiply-adds run on the calling thread alone: handing work to other
// threads costs more than it saves there.
constexpr int64_t kSmallCall = int64_t{1} << 17;

// Elements of a y row computed over all taps before the next block (16 KiB of float32).
constexpr int64_t kBlock = 4096;

ffi::Error Bad(const std::string& what) {
  return ffi::Error::InvalidArgument(std::string(kName) + ": " + what);
}

// The threads a call runs on: one for a small call, else XLA's intra-op pool size.
int64_t Threads(const ffi::ThreadPool& pool, int64_t macs) {
  if (macs < kSmallCall) return 1;
  return std::max<int64_t>(1, pool.num_threads());
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
inline void Assign(float* __restrict y, const float* __restrict x, float w, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = w * x[i];
}

inline void Accumulate(float* __restrict y, const float* __restrict x, float w, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
}

inline void Assign2(float* __restrict y, const float* __restrict x0, const float* __restrict x1,
                    float w0, float w1, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = w0 * x0[i] + w1 * x1[i];
}

inline void Accumulate2(float* __restrict y, const float* __restrict x0,
                        const float* __restrict x1, float w0, float w1, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += w0 * x0[i] + w1 * x1[i];
}

// Rows [lo, hi) of y viewed as (outer * O, inner). Compiled for AVX-512, AVX2 + FMA and the
// baseline (the library is built without -march), picked once at load time by the CPU.
__attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
void Rows(const Map& m, int64_t lo, int64_t hi) {
  const int64_t inner = m.inner, taps = m.taps;
  int64_t b = lo / m.out_size, o = lo % m.out_size;
  for (int64_t row = lo; row < hi; ++row) {
    const float* xb = m.x + b * m.in_size * inner;
    const int64_t* ir = m.idx + o * taps;
    const float* wr = m.w + o * taps;
    float* yr = m.y + row * inner;
    for (int64_t s = 0; s < inner; s += kBlock) {
      const int64_t n = std::min(kBlock, inner - s);
      float* ys = yr + s;
      const float* xs = xb + s;
      int64_t r;
      if (taps >= 2) {
        Assign2(ys, xs + ir[0] * inner, xs + ir[1] * inner, wr[0], wr[1], n);
        r = 2;
      } else {
        Assign(ys, xs + ir[0] * inner, wr[0], n);
        r = 1;
      }
      for (; r + 1 < taps; r += 2) {
        Accumulate2(ys, xs + ir[r] * inner, xs + ir[r + 1] * inner, wr[r], wr[r + 1], n);
      }
      if (r < taps) Accumulate(ys, xs + ir[r] * inner, wr[r], n);
    }
    if (++o == m.out_size) o = 0, ++b;
  }
}

// The chunks of one call, claimed by the calling thread and the tasks it hands XLA's pool.
struct Shared {
  Map map;
  int64_t rows = 0, chunk = 1, chunks = 0;
  std::atomic<int64_t> next{0}, done{0};

  void Work() {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      Rows(map, c * chunk, std::min(rows, (c + 1) * chunk));
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// Threads: XLA's own intra-op pool, not OpenMP. Measured on a busy 2-core machine, an OpenMP
// team of 2 made every call cost a scheduler tick or two (~8 ms for a 0.3 ms map; its threads
// spin, and OMP_WAIT_POLICY=passive did not cure it), while XLA's pool threads are the ones XLA
// runs its own fusions on. The calling thread works too and, when the chunks run out, waits only
// for chunks other threads have claimed, so a task the pool never starts delays nothing; the
// state is shared-owned, so a task starting after the call returned touches only that.
void Run(ffi::ThreadPool& pool, const Map& map, int64_t rows, int64_t threads) {
  if (threads <= 1) {
    Rows(map, 0, rows);
    return;
  }
  auto shared = std::make_shared<Shared>();
  shared->map = map;
  shared->rows = rows;
  shared->chunk = std::max<int64_t>(1, (rows + 4 * threads - 1) / (4 * threads));
  shared->chunks = (rows + shared->chunk - 1) / shared->chunk;
  for (int64_t t = 1; t < threads; ++t) pool.Schedule([shared] { shared->Work(); });
  shared->Work();
  while (shared->done.load(std::memory_order_acquire) < shared->chunks) {
    std::this_thread::yield();
  }
}

ffi::Error AxisMapImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                       ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> idx,
                       ffi::Span<const float> weights, int64_t taps, int64_t axis) {
  const ffi::Span<const int64_t> xd = x.dimensions(), yd = y->dimensions();
  const int64_t rank = static_cast<int64_t>(xd.size());
  if (static_cast<int64_t>(yd.size()) != rank) {
    return Bad("x and y differ in rank (" + std::to_string(rank) + " vs " +
               std::to_string(yd.size()) + ")");
  }
  if (axis < 0 || axis >= rank) {
    return Bad("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (d != axis && xd[d] != yd[d]) {
      return Bad("x and y differ in dim " + std::to_string(d) + " (" + std::to_string(xd[d]) +
                 " vs " + std::to_string(yd[d]) + "), which is not the mapped axis");
    }
    if (d < axis) outer *= xd[d];
    if (d > axis) inner *= xd[d];
  }
  const int64_t in_size = xd[axis], out_size = yd[axis];
  if (taps < 0) return Bad("taps must be >= 0 (got " + std::to_string(taps) + ")");
  const int64_t entries = out_size * taps;
  if (static_cast<int64_t>(idx.size()) != entries ||
      static_cast<int64_t>(weights.size()) != entries) {
    return Bad("idx and weights need out_size * taps = " + std::to_string(entries) +
               " entries (got " + std::to_string(idx.size()) + " and " +
               std::to_string(weights.size()) + ")");
  }
  for (int64_t k = 0; k < entries; ++k) {
    if (idx[k] < 0 || idx[k] >= in_size) {
      return Bad("idx[" + std::to_string(k / taps) + ", " + std::to_string(k % taps) +
                 "] = " + std::to_string(idx[k]) + " out of [0, " + std::to_string(in_size) +
                 ")");
    }
  }
  const int64_t rows = outer * out_size;
  if (rows == 0 || inner == 0) return ffi::Error::Success();
  if (taps == 0) {  // no column of A is set (L = 0 included): y = 0
    std::fill_n(y->typed_data(), rows * inner, 0.0f);
    return ffi::Error::Success();
  }
  const Map map{x.typed_data(), y->typed_data(), idx.begin(), weights.begin(),
                in_size, out_size, inner, taps};
  Run(pool, map, rows, Threads(pool, rows * inner * taps));
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
#pragma GCC visibility pop
