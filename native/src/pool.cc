// jaxconv's pooling on the CPU: XLA FFI handlers for max and average pooling of float32
// channels-last arrays and for their linear maps -- the CPU lowerings of
// jaxconv.pooling.max_pool's and avg_pool's primitives.
//
// Geometry, each spatial dim alike (jaxconv/_core/window.py): input size n, window k, dilation d,
// stride s, low padding lo, o outputs -- the caller's, so ceil_mode and the high padding are
// whatever the last window reaches. Window i covers the input positions p = i*s + m*d - lo,
// m = 0..k-1; positions outside [0, n) are padding. Arrays are (N, *S, C), 1 to 3 spatial dims,
// C contiguous; flat window offsets r are row-major over the window's cells (padding included).
//
//   max, jaxconv_max_pool_f32 (op "max"; "min" the same with the order reversed), ties="first":
//     y[i] = max_m x~[i*s + m*d]            r[i] = the first m that reaches it
//     A padding cell never wins against an input cell (not even an equal -inf); NaN is above
//     every number (the first NaN wins, its payload kept); a window of padding only gives
//     y = -inf (+inf for "min") and r = 0 -- the rules of the pure-JAX `max_pool._reduce`.
//   pick, jaxconv_max_pool_pick_f32, the tangent at the winners (linear in t):
//     t_y[i] = t[i*s + r[i]*d - lo]          (0 where the winner is padding)
//   spread, jaxconv_max_pool_spread_f32, its transpose -- max pooling's backward:
//     dx[p] = sum_{i : i*s + r[i]*d - lo = p} g[i]      (overlapping windows accumulate)
//   average, jaxconv_avg_pool_f32, N_i the divisor of window i (the product of one factor per
//   dim and output index: its counts under count_include_pad, or divisor_override):
//     y[i] = (1 / N_i) sum_m x~[i*s + m*d]   (padding cells are 0)
//   adjoint, jaxconv_avg_pool_adjoint_f32, its transpose -- average pooling's backward:
//     dx[p] = sum_{i : p in window i} g[i] / N_i
//
// The residual r is int8 for windows of <= 127 cells (int16, then int32, beyond), as in Python.
//
// Work (pool_kernels.inc): the forward maps and the pick loop over output windows, each
// holding its input cells' element offsets in a list (one per row of outputs for the windows
// that lie whole in the input, shifted from window to window; the border windows their own).
// The backward maps of tiling windows (stride >= the dilated window: no cell in two windows)
// write each window's cells from the window, of overlapping windows loop over input cells, each
// summing over the windows that hold it (one list per row and phase of the last dim); so every
// result element is written once, by one thread, with no zeroing pass and no atomics, and the
// sums run in increasing window offset, the order of the pure-JAX spread (whose values these
// equal bitwise). Tiling windows read and write x's rows in order, keeping running results in
// y between rows. The channels go 16 at a time as GCC vectors (the last partial chunk again as
// a whole one overlapping the previous, or lane by lane under 16 channels); the code is
// compiled for AVX-512 alone (`Supported`: the instruction set they were measured on; the
// 16-lane vectors lowered for AVX2 or SSE made the code 20x larger and the build minutes long,
// unmeasured). Rows of the result are spread over XLA's intra-op pool (intra_op.h), one thread
// for a small call. Every bad input returns an ffi::Error naming the handler; positions are
// checked against the array bounds, so no attribute or offset value reads or writes outside
// the buffers (an ASan fuzz of 20,000 random geometries, consistent or not, found nothing).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "intra_op.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using jaxconv_native::Run;
using jaxconv_native::Threads;

namespace {

constexpr const char* kMax = "jaxconv_max_pool_f32";
constexpr const char* kPick = "jaxconv_max_pool_pick_f32";
constexpr const char* kSpread = "jaxconv_max_pool_spread_f32";
constexpr const char* kAvg = "jaxconv_avg_pool_f32";
constexpr const char* kAdjoint = "jaxconv_avg_pool_adjoint_f32";

// Calls under this many element visits (elements x cells) run on the calling thread alone.
constexpr int64_t kSmallCall = int64_t{1} << 17;

ffi::Error Bad(const char* name, const std::string& what) {
  return ffi::Error::InvalidArgument(std::string(name) + ": " + what);
}

std::string Str(int64_t v) { return std::to_string(v); }

// One call's windows, padded to three spatial dims (leading dims of size 1, window 1).
struct Geo {
  int64_t batch = 0, channels = 0;  // N, C
  int64_t n[3] = {1, 1, 1};         // input sizes
  int64_t o[3] = {1, 1, 1};         // output sizes
  int64_t k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, lo[3] = {0, 0, 0};
  int64_t cells = 1;  // K = k0 k1 k2

  int64_t InSize() const { return batch * n[0] * n[1] * n[2] * channels; }
  int64_t OutSize() const { return batch * o[0] * o[1] * o[2] * channels; }
  int64_t Flat(int64_t m0, int64_t m1, int64_t m2) const { return (m0 * k[1] + m1) * k[2] + m2; }
};

// Checks the attributes against the input-shaped dims `xd` and output-shaped dims `yd` and
// fills `geo`; "" when they are consistent.
std::string MakeGeo(ffi::Span<const int64_t> xd, ffi::Span<const int64_t> yd,
                    ffi::Span<const int64_t> window, ffi::Span<const int64_t> stride,
                    ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> pad_lo, Geo* geo) {
  const int64_t nd = static_cast<int64_t>(window.size());
  if (nd < 1 || nd > 3) return "1 to 3 spatial dims (window has " + Str(nd) + " entries)";
  if (static_cast<int64_t>(stride.size()) != nd || static_cast<int64_t>(dilation.size()) != nd ||
      static_cast<int64_t>(pad_lo.size()) != nd) {
    return "window, stride, dilation and pad_lo need one entry per spatial dim (" + Str(nd) +
           "; got " + Str(stride.size()) + ", " + Str(dilation.size()) + ", " +
           Str(pad_lo.size()) + ")";
  }
  const int64_t rank = nd + 2;
  if (static_cast<int64_t>(xd.size()) != rank || static_cast<int64_t>(yd.size()) != rank) {
    return "arrays must have rank " + Str(rank) + " (N, *spatial, C), got " + Str(xd.size()) +
           " and " + Str(yd.size());
  }
  if (xd[0] != yd[0] || xd[rank - 1] != yd[rank - 1]) {
    return "input and output differ in N or C ((" + Str(xd[0]) + ", " + Str(xd[rank - 1]) +
           ") vs (" + Str(yd[0]) + ", " + Str(yd[rank - 1]) + "))";
  }
  geo->batch = xd[0];
  geo->channels = xd[rank - 1];
  geo->cells = 1;
  for (int64_t j = 0; j < nd; ++j) {
    const int64_t a = 3 - nd + j;
    if (window[j] < 1 || stride[j] < 1 || dilation[j] < 1 || pad_lo[j] < 0) {
      return "dim " + Str(j) + ": window (" + Str(window[j]) + "), stride (" + Str(stride[j]) +
             ") and dilation (" + Str(dilation[j]) + ") must be >= 1 and pad_lo (" +
             Str(pad_lo[j]) + ") >= 0";
    }
    constexpr int64_t kBig = int64_t{1} << 31;  // positions then fit int64 with room to spare
    if (stride[j] >= kBig || dilation[j] >= kBig || pad_lo[j] >= kBig) {
      return "dim " + Str(j) + ": stride, dilation and pad_lo must be below 2^31";
    }
    if (window[j] > kBig / geo->cells) return "windows of more than 2^31 cells";
    geo->n[a] = xd[1 + j];
    geo->o[a] = yd[1 + j];
    geo->k[a] = window[j];
    geo->s[a] = stride[j];
    geo->d[a] = dilation[j];
    geo->lo[a] = pad_lo[j];
    geo->cells *= window[j];
  }
  return "";
}

// The offsets m of window i along dim a whose cells lie in the input: [first, last).
struct Cells {
  int64_t first, last, base;  // base: the position of m = 0, i*s - lo
};

JAXCONV_INLINE Cells InBounds(const Geo& g, int a, int64_t i) {
  const int64_t base = i * g.s[a] - g.lo[a], n = g.n[a], d = g.d[a], k = g.k[a];
  int64_t first = base >= 0 ? 0 : (-base + d - 1) / d;
  int64_t last = base > n - 1 ? 0 : (n - 1 - base) / d + 1;
  first = std::min(first, k);
  last = std::max(first, std::min(last, k));
  return {first, last, base};
}

// InBounds of every output index of each dim, computed once a call (integer divisions are too
// slow to repeat for every window).
struct Spans {
  std::vector<Cells> dim[3];

  explicit Spans(const Geo& g) {
    for (int a = 0; a < 3; ++a) {
      dim[a].resize(g.o[a]);
      for (int64_t i = 0; i < g.o[a]; ++i) dim[a][i] = InBounds(g, a, i);
    }
  }
};

// For each input position p of dim a, the windows that hold it: pairs (i, m) with
// i*s + m*d - lo = p, sorted by m (so nested loops over dims visit increasing flat offsets).
struct Holders {
  std::vector<int64_t> start;  // p's pairs are [start[p], start[p + 1])
  std::vector<int64_t> i, m;

  Holders(const Geo& g, int a) : start(g.n[a] + 1, 0) {
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<int64_t> fill(start.begin(), start.end() - 1);
      for (int64_t m_ = 0; m_ < g.k[a]; ++m_) {
        for (int64_t i_ = 0; i_ < g.o[a]; ++i_) {
          const int64_t p = i_ * g.s[a] + m_ * g.d[a] - g.lo[a];
          if (p < 0 || p >= g.n[a]) continue;
          if (pass == 0) {
            ++start[p + 1];
          } else {
            i[fill[p]] = i_;
            m[fill[p]++] = m_;
          }
        }
      }
      if (pass == 0) {
        for (int64_t p = 0; p < g.n[a]; ++p) start[p + 1] += start[p];
        i.resize(start.back());
        m.resize(start.back());
      }
    }
  }
};

// The most input cells a window holds along the first `dims` dims: min(k, n) along each.
int64_t MostCells(const Geo& g, int dims) {
  int64_t most = 1;
  for (int a = 0; a < dims; ++a) most *= std::min(g.k[a], g.n[a]);
  return most;
}

// The most windows an input cell lies in along the first `dims` dims: min(k, o) along each.
int64_t MostWindows(const Geo& g, int dims) {
  int64_t most = 1;
  for (int a = 0; a < dims; ++a) most *= std::min(g.k[a], g.o[a]);
  return most;
}

// Splits a row number of a (batch, a0, a1) grid.
JAXCONV_INLINE void Split(int64_t row, int64_t a0, int64_t a1, int64_t* b, int64_t* i0,
                          int64_t* i1) {
  *i1 = row % a1;
  *i0 = (row / a1) % a0;
  *b = row / (a1 * a0);
}

// Whether no input cell lies in two windows (stride >= the dilated window in every dim): the
// backward maps then write each window's cells from the window (`ForWindows`), once each.
bool Tiling(const Geo& g) {
  for (int a = 0; a < 3; ++a) {
    if (g.s[a] < (g.k[a] - 1) * g.d[a] + 1) return false;
  }
  return true;
}

// Zeros the input cells of rows [lo, hi) that no window holds (`Tiling` geometries: the window
// writes never reach them).
void ZeroUnheld(const Geo& g, const Holders* h, float* dx, int64_t lo, int64_t hi) {
  const int64_t C = g.channels;
  for (int64_t row = lo; row < hi; ++row) {
    int64_t b, p0, p1;
    Split(row, g.n[0], g.n[1], &b, &p0, &p1);
    const bool held = h[0].start[p0 + 1] > h[0].start[p0] && h[1].start[p1 + 1] > h[1].start[p1];
    for (int64_t p2 = 0; p2 < g.n[2]; ++p2) {
      if (!held || h[2].start[p2 + 1] == h[2].start[p2]) {
        std::fill_n(dx + (row * g.n[2] + p2) * C, C, 0.0f);
      }
    }
  }
}

// Whether some input cell lies in no window.
bool SomeUnheld(const Geo& g, const Holders* h) {
  for (int a = 0; a < 3; ++a) {
    for (int64_t p = 0; p < g.n[a]; ++p) {
      if (h[a].start[p + 1] == h[a].start[p]) return true;
    }
  }
  return false;
}

// Windows a cell lies in, at most, over all dims (the work per dx element).
int64_t Depth(const Geo& g) {
  int64_t depth = 1;
  for (int a = 0; a < 3; ++a) depth *= (g.k[a] * g.d[a] + g.s[a] - 1) / g.s[a];
  return depth;
}

// "" when the offsets' array `r` has the output's dims and a dtype that holds K - 1.
std::string CheckOffsets(const ffi::AnyBuffer& r, ffi::Span<const int64_t> yd, int64_t cells) {
  const ffi::Span<const int64_t> rd = r.dimensions();
  if (rd.size() != yd.size() || !std::equal(rd.begin(), rd.end(), yd.begin())) {
    return "the offsets must have the output's shape";
  }
  int64_t top;
  switch (r.element_type()) {
    case ffi::DataType::S8:
      top = std::numeric_limits<int8_t>::max();
      break;
    case ffi::DataType::S16:
      top = std::numeric_limits<int16_t>::max();
      break;
    case ffi::DataType::S32:
      top = std::numeric_limits<int32_t>::max();
      break;
    default:
      return "the offsets must be int8, int16 or int32";
  }
  if (cells - 1 > top) return "the offsets' dtype cannot hold " + Str(cells - 1);
  return "";
}

// The divisor factors: one per output index of each dim, concatenated (dims in order).
std::string CheckDivisor(const Geo& g, int64_t nd, ffi::Span<const float> divisor) {
  int64_t want = 0;
  for (int64_t a = 3 - nd; a < 3; ++a) want += g.o[a];
  if (static_cast<int64_t>(divisor.size()) != want) {
    return "divisor needs one factor per output index of each dim (" + Str(want) + "), got " +
           Str(divisor.size());
  }
  for (float f : divisor) {
    if (!(f != 0.0f)) return "divisor factors must be nonzero numbers";
  }
  return "";
}

// ------------------------------------------------------------------------------ the calls

// One call's operands, as the kernels read them.
struct MaxCall {
  Geo g;
  const Spans* sp;
  const float* x;
  float* y;
  void* r;
};

struct PickCall {
  Geo g;
  const Spans* sp;
  const float* t;
  const void* r;
  float* ty;
};

struct SpreadCall {
  Geo g;
  const Spans* sp;   // tiling: the windows' cells
  const Holders* h;  // overlapping: the cells' windows, per dim
  const float* gr;   // g
  const void* r;
  float* dx;
};

struct AvgCall {
  Geo g;
  const Spans* sp;    // the windows' cells (forward; tiling adjoint)
  const Holders* h;   // overlapping adjoint: the cells' windows, per dim
  const float* in;
  float* out;
  const float* f[3];  // divisor factors per dim (a single 1 for the padded dims)

};

// The call's divisor factors as three per-dim arrays (a padded dim: its single factor 1).
void Factors(AvgCall* m, int64_t nd, ffi::Span<const float> divisor) {
  static const float kOne = 1.0f;
  const float* p = divisor.begin();
  for (int64_t a = 0; a < 3; ++a) {
    if (a < 3 - nd) {
      m->f[a] = &kOne;
    } else {
      m->f[a] = p;
      p += m->g.o[a];
    }
  }
}

// ------------------------------------------------------------------------------ the kernels

// -Wpsabi notes that 64-byte vectors pass differently without AVX-512: the helpers taking
// them are all forced inline within one instruction set, never called across.
#pragma GCC diagnostic ignored "-Wpsabi"  // for the whole file: GCC reports it at the end

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
namespace avx512 {
#include "pool_kernels.inc"
}  // namespace avx512
#pragma GCC pop_options

// Whether this CPU (and its OS) runs the kernels: AVX-512 F, BW, VL, DQ and FMA, checked once.
// Elsewhere the Python side lowers the pure-JAX pools (`jaxconv_pool_kernels_supported`).
bool Supported() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
  }();
  return ok;
}

constexpr const char* kUnsupported = "needs a CPU with AVX-512 (F, BW, VL, DQ) and FMA";

// ------------------------------------------------------------------------------ the handlers

// Runs a backward map: over output rows when the windows tile (`Tiling`: each window writes
// its cells, after the cells no window holds are zeroed), else over input rows (each cell
// gathers from its windows).
template <typename Call, typename RowsFn>
void RunBackward(ffi::ThreadPool& pool, Call m, const Spans& sp, const Holders* h, float* dx,
                 RowsFn rows) {
  const Geo& g = m.g;
  const int64_t in_rows = g.batch * g.n[0] * g.n[1];
  const int64_t threads = Threads(pool, g.InSize() * Depth(g), kSmallCall);
  if (Tiling(g)) {
    m.sp = &sp;
    if (SomeUnheld(g, h)) {
      Run(pool, [&g, h, dx](int64_t lo, int64_t hi) { ZeroUnheld(g, h, dx, lo, hi); }, in_rows,
          threads);
    }
    Run(pool, [m, rows](int64_t lo, int64_t hi) { rows(m, lo, hi); },
        g.batch * g.o[0] * g.o[1], threads);
    return;
  }
  m.sp = nullptr;
  Run(pool, [m, rows](int64_t lo, int64_t hi) { rows(m, lo, hi); }, in_rows, threads);
}

ffi::Error MaxPoolImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                       ffi::ResultBuffer<ffi::F32> y, ffi::Result<ffi::AnyBuffer> r,
                       ffi::Span<const int64_t> window, ffi::Span<const int64_t> stride,
                       ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> pad_lo,
                       std::string_view op) {
  if (!Supported()) return Bad(kMax, kUnsupported);
  MaxCall m{};
  std::string bad = MakeGeo(x.dimensions(), y->dimensions(), window, stride, dilation, pad_lo,
                            &m.g);
  if (bad.empty()) bad = CheckOffsets(*r, y->dimensions(), m.g.cells);
  if (bad.empty() && op != "max" && op != "min") {
    bad = "op must be \"max\" or \"min\", got \"" + std::string(op) + "\"";
  }
  if (!bad.empty()) return Bad(kMax, bad);
  if (m.g.OutSize() == 0) return ffi::Error::Success();
  const Spans sp(m.g);
  m.sp = &sp;
  m.x = x.typed_data();
  m.y = y->typed_data();
  m.r = r->untyped_data();
  const ffi::DataType rt = r->element_type();
  const bool min = op == "min";
  Run(pool, [m, rt, min](int64_t lo, int64_t hi) { avx512::MaxRows(m, rt, min, lo, hi); },
      m.g.batch * m.g.o[0] * m.g.o[1], Threads(pool, m.g.OutSize() * m.g.cells, kSmallCall));
  return ffi::Error::Success();
}

ffi::Error PickImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> t, ffi::AnyBuffer r,
                    ffi::ResultBuffer<ffi::F32> ty, ffi::Span<const int64_t> window,
                    ffi::Span<const int64_t> stride, ffi::Span<const int64_t> dilation,
                    ffi::Span<const int64_t> pad_lo) {
  if (!Supported()) return Bad(kPick, kUnsupported);
  PickCall m{};
  std::string bad = MakeGeo(t.dimensions(), ty->dimensions(), window, stride, dilation, pad_lo,
                            &m.g);
  if (bad.empty()) bad = CheckOffsets(r, ty->dimensions(), m.g.cells);
  if (!bad.empty()) return Bad(kPick, bad);
  if (m.g.OutSize() == 0) return ffi::Error::Success();
  const Spans sp(m.g);
  m.sp = &sp;
  m.t = t.typed_data();
  m.r = r.untyped_data();
  m.ty = ty->typed_data();
  const ffi::DataType rt = r.element_type();
  Run(pool, [m, rt](int64_t lo, int64_t hi) { avx512::PickRows(m, rt, lo, hi); },
      m.g.batch * m.g.o[0] * m.g.o[1], Threads(pool, m.g.OutSize() * m.g.cells, kSmallCall));
  return ffi::Error::Success();
}

ffi::Error SpreadImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gr, ffi::AnyBuffer r,
                      ffi::ResultBuffer<ffi::F32> dx, ffi::Span<const int64_t> window,
                      ffi::Span<const int64_t> stride, ffi::Span<const int64_t> dilation,
                      ffi::Span<const int64_t> pad_lo) {
  if (!Supported()) return Bad(kSpread, kUnsupported);
  SpreadCall m{};
  std::string bad = MakeGeo(dx->dimensions(), gr.dimensions(), window, stride, dilation, pad_lo,
                            &m.g);
  if (bad.empty()) bad = CheckOffsets(r, gr.dimensions(), m.g.cells);
  if (!bad.empty()) return Bad(kSpread, bad);
  if (m.g.InSize() == 0) return ffi::Error::Success();
  const Spans sp(m.g);
  const Holders h[3] = {Holders(m.g, 0), Holders(m.g, 1), Holders(m.g, 2)};
  m.h = h;
  m.gr = gr.typed_data();
  m.r = r.untyped_data();
  m.dx = dx->typed_data();
  const ffi::DataType rt = r.element_type();
  RunBackward(pool, m, sp, h, m.dx, [rt](const SpreadCall& c, int64_t lo, int64_t hi) {
    avx512::SpreadRows(c, rt, lo, hi);
  });
  return ffi::Error::Success();
}

ffi::Error AvgPoolImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                       ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> window,
                       ffi::Span<const int64_t> stride, ffi::Span<const int64_t> dilation,
                       ffi::Span<const int64_t> pad_lo, ffi::Span<const float> divisor) {
  if (!Supported()) return Bad(kAvg, kUnsupported);
  AvgCall m{};
  std::string bad = MakeGeo(x.dimensions(), y->dimensions(), window, stride, dilation, pad_lo,
                            &m.g);
  const int64_t nd = static_cast<int64_t>(window.size());
  if (bad.empty()) bad = CheckDivisor(m.g, nd, divisor);
  if (!bad.empty()) return Bad(kAvg, bad);
  if (m.g.OutSize() == 0) return ffi::Error::Success();
  const Spans sp(m.g);
  m.sp = &sp;
  m.in = x.typed_data();
  m.out = y->typed_data();
  Factors(&m, nd, divisor);
  Run(pool, [m](int64_t lo, int64_t hi) { avx512::AvgRows(m, lo, hi); }, m.g.batch * m.g.o[0] * m.g.o[1],
      Threads(pool, m.g.OutSize() * m.g.cells, kSmallCall));
  return ffi::Error::Success();
}

ffi::Error AdjointImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gr,
                       ffi::ResultBuffer<ffi::F32> dx, ffi::Span<const int64_t> window,
                       ffi::Span<const int64_t> stride, ffi::Span<const int64_t> dilation,
                       ffi::Span<const int64_t> pad_lo, ffi::Span<const float> divisor) {
  if (!Supported()) return Bad(kAdjoint, kUnsupported);
  AvgCall m{};
  std::string bad = MakeGeo(dx->dimensions(), gr.dimensions(), window, stride, dilation, pad_lo,
                            &m.g);
  const int64_t nd = static_cast<int64_t>(window.size());
  if (bad.empty()) bad = CheckDivisor(m.g, nd, divisor);
  if (!bad.empty()) return Bad(kAdjoint, bad);
  if (m.g.InSize() == 0) return ffi::Error::Success();
  const Spans sp(m.g);
  const Holders h[3] = {Holders(m.g, 0), Holders(m.g, 1), Holders(m.g, 2)};
  m.h = h;
  m.in = gr.typed_data();
  m.out = dx->typed_data();
  Factors(&m, nd, divisor);
  RunBackward(pool, m, sp, h, m.out,
              [](const AvgCall& c, int64_t lo, int64_t hi) { avx512::AdjointRows(c, lo, hi); });
  return ffi::Error::Success();
}

}  // namespace

// The library's exports (compiled with -fvisibility=hidden).
#pragma GCC visibility push(default)
// 1 where this CPU runs the pooling kernels (ctypes: jaxconv._core.native.pool_kernels), else 0.
extern "C" int jaxconv_pool_kernels_supported() { return Supported() ? 1 : 0; }

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_max_pool_f32, MaxPoolImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()  // XLA's intra-op pool caps threads
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Ret<ffi::AnyBuffer>()         // r: int8, int16 or int32
                                  .Attr<ffi::Span<const int64_t>>("window")
                                  .Attr<ffi::Span<const int64_t>>("stride")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pad_lo")
                                  .Attr<std::string_view>("op"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_max_pool_pick_f32, PickImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // t, x's shape
                                  .Arg<ffi::AnyBuffer>()         // r
                                  .Ret<ffi::Buffer<ffi::F32>>()  // t_y, y's shape
                                  .Attr<ffi::Span<const int64_t>>("window")
                                  .Attr<ffi::Span<const int64_t>>("stride")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pad_lo"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_max_pool_spread_f32, SpreadImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // g, y's shape
                                  .Arg<ffi::AnyBuffer>()         // r
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx, x's shape
                                  .Attr<ffi::Span<const int64_t>>("window")
                                  .Attr<ffi::Span<const int64_t>>("stride")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pad_lo"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_avg_pool_f32, AvgPoolImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Attr<ffi::Span<const int64_t>>("window")
                                  .Attr<ffi::Span<const int64_t>>("stride")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pad_lo")
                                  .Attr<ffi::Span<const float>>("divisor"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_avg_pool_adjoint_f32, AdjointImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // g, y's shape
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx, x's shape
                                  .Attr<ffi::Span<const int64_t>>("window")
                                  .Attr<ffi::Span<const int64_t>>("stride")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pad_lo")
                                  .Attr<ffi::Span<const float>>("divisor"));
#pragma GCC visibility pop
