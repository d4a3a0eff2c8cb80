// A fuzz of the pooling kernels (native/src/pool.cc) under AddressSanitizer and UBSan: 20,000
// random geometries, consistent with the attributes or not (any input and output sizes, empty
// dims, windows beyond the input, garbage winner offsets), every kernel run over every row
// (single-threaded, as the handlers' rows functions run), each twice from the same seed and
// compared bitwise (the kernels are deterministic). Values against the pure-JAX algorithms:
// tests/pool/test_pool_native.py.
//
// Build and run (from the repository root, in jaxconv's environment; needs an AVX-512 CPU):
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
//       -isystem "$(.venv/bin/python -c 'import jax.ffi; print(jax.ffi.include_dir())')" \
//       native/tests/pool_fuzz.cc -o /tmp/pool_fuzz && /tmp/pool_fuzz
#include "../src/pool.cc"
#include <cstdio>
#include <random>
struct Out { std::vector<float> y1, r1f, y2, y3, dx1, dx2; std::vector<int8_t> r1; };
// The kernels (pool.cc compiles them for AVX-512 alone).
struct Kernels {
  void (*max)(const MaxCall&, ffi::DataType, bool, int64_t, int64_t);
  void (*pick)(const PickCall&, ffi::DataType, int64_t, int64_t);
  void (*spread)(const SpreadCall&, ffi::DataType, int64_t, int64_t);
  void (*avg)(const AvgCall&, int64_t, int64_t);
  void (*adjoint)(const AvgCall&, int64_t, int64_t);
};
template <typename K>
Out RunAll(const Geo& g, int nd, const K& kern, std::mt19937_64 rng) {
  Out o;
  Spans sp(g);
  const Holders h[3] = {Holders(g, 0), Holders(g, 1), Holders(g, 2)};
  std::vector<float> x(g.InSize()), y(g.OutSize()), dx(g.InSize()), f;
  std::vector<int8_t> r(g.OutSize());
  std::normal_distribution<float> nd01;
  for (auto& v : x) v = std::round(nd01(rng));
  for (auto& v : y) v = nd01(rng);
  for (auto& v : r) v = rng() % 130 - 1;  // garbage offsets too
  for (int a = 3 - nd; a < 3; ++a) for (int64_t i = 0; i < g.o[a]; ++i) f.push_back(1 + rng() % 5);
  MaxCall mc{}; mc.g = g; mc.sp = &sp; mc.x = x.data(); mc.y = y.data(); mc.r = r.data();
  const int64_t out_rows = g.batch * g.o[0] * g.o[1], in_rows = g.batch * g.n[0] * g.n[1];
  if (g.OutSize()) kern.max(mc, ffi::DataType::S8, rng() % 2, 0, out_rows);
  o.y1 = y; o.r1 = r;
  for (auto& v : r) v = rng() % 130 - 1;
  PickCall pc{}; pc.g = g; pc.sp = &sp; pc.t = x.data(); pc.r = r.data(); pc.ty = y.data();
  if (g.OutSize()) kern.pick(pc, ffi::DataType::S8, 0, out_rows);
  o.y2 = y;
  SpreadCall sc{}; sc.g = g; sc.h = h; sc.gr = y.data(); sc.r = r.data(); sc.dx = dx.data();
  AvgCall ac{}; ac.g = g; ac.sp = &sp; ac.h = h; ac.in = x.data(); ac.out = y.data();
  AvgCall dc = ac; dc.in = y.data(); dc.out = dx.data();
  Factors(&ac, nd, ffi::Span<const float>(f)); Factors(&dc, nd, ffi::Span<const float>(f));
  if (g.OutSize()) kern.avg(ac, 0, out_rows);
  o.y3 = y;
  if (g.InSize()) {
    if (Tiling(g)) {
      ZeroUnheld(g, h, dx.data(), 0, in_rows);
      sc.sp = &sp; dc.sp = &sp;
      kern.spread(sc, ffi::DataType::S8, 0, out_rows);
      o.dx1 = dx;
      kern.adjoint(dc, 0, out_rows);
      o.dx2 = dx;
    } else {
      sc.sp = nullptr; dc.sp = nullptr;
      kern.spread(sc, ffi::DataType::S8, 0, in_rows);
      o.dx1 = dx;
      kern.adjoint(dc, 0, in_rows);
      o.dx2 = dx;
    }
  }
  return o;
}
bool Same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}
int main() {
  std::mt19937_64 rng(1);
  if (!Supported()) { printf("this CPU has no AVX-512\n"); return 1; }
  const Kernels k{avx512::MaxRows, avx512::PickRows, avx512::SpreadRows, avx512::AvgRows,
                  avx512::AdjointRows};
  int diffs = 0;
  for (int it = 0; it < 20000; ++it) {
    const int nd = 1 + rng() % 3;
    std::vector<int64_t> xd{int64_t(rng() % 3)}, yd{xd[0]}, w, s, d, lo;
    for (int j = 0; j < nd; ++j) {
      xd.push_back(rng() % 7); yd.push_back(rng() % 7);
      w.push_back(1 + rng() % 4); s.push_back(1 + rng() % 5); d.push_back(1 + rng() % 3); lo.push_back(rng() % 4);
    }
    const int64_t c = rng() % 2 ? 1 + rng() % 3 : 1 + rng() % 40;
    xd.push_back(c); yd.push_back(c);
    Geo g;
    std::string bad = MakeGeo(ffi::Span<const int64_t>(xd), ffi::Span<const int64_t>(yd), ffi::Span<const int64_t>(w),
                              ffi::Span<const int64_t>(s), ffi::Span<const int64_t>(d), ffi::Span<const int64_t>(lo), &g);
    if (!bad.empty()) { printf("bad %s\n", bad.c_str()); return 1; }
    if (g.cells > 127) continue;
    const uint64_t seed = rng();
    std::mt19937_64 r0(seed);
    Out a = RunAll(g, nd, k, r0), b = RunAll(g, nd, k, r0);
    for (const Out* q : {&b}) {
      if (!Same(a.y1, q->y1) || a.r1 != q->r1 || !Same(a.y2, q->y2) || !Same(a.y3, q->y3) ||
          !Same(a.dx1, q->dx1) || !Same(a.dx2, q->dx2)) ++diffs;
    }
  }
  printf("differences between two runs: %d\n", diffs);
  printf("fuzz ok\n");
  return diffs == 0 ? 0 : 1;
}
