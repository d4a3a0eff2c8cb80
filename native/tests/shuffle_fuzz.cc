// A fuzz of the pixel-shuffle handler's plan and kernels (native/src/shuffle.cc) under
// AddressSanitizer and UBSan: 20,000 random geometries (1-4 spatial dims, factors 1-4, empty
// dims, both layouts and directions, element widths 2, 4 and 8), each copied from exactly sized
// buffers over its rows cut into random chunks (as the threads take them) and compared with the
// index formula of the module docstring; inconsistent dims, factors and widths must be refused.
// Values through XLA against the pure-JAX permutations: tests/resampling/
// test_pixel_shuffle_native.py.
//
// Build and run (from the repository root, in jaxconv's environment):
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
//       -isystem "$(.venv/bin/python -c 'import jax.ffi; print(jax.ffi.include_dir())')" \
//       native/tests/shuffle_fuzz.cc -o /tmp/shuffle_fuzz && /tmp/shuffle_fuzz
#include "../src/shuffle.cc"

#include <cstdio>
#include <random>
#include <vector>

namespace {

struct Case {
  int nd;
  bool channels_last, to_fine;
  int64_t n, c;
  std::vector<int64_t> s, r, coarse, fine;
};

Case Draw(std::mt19937_64& rng) {
  Case k;
  k.nd = 1 + static_cast<int>(rng() % 4);
  k.channels_last = rng() % 2;
  k.to_fine = rng() % 2;
  k.n = rng() % 3;
  const int64_t cs[] = {0, 1, 2, 3, 16, 17};
  k.c = cs[rng() % 6];
  int64_t big_r = 1;
  for (int a = 0; a < k.nd; ++a) {
    k.s.push_back(rng() % 4);
    k.r.push_back(1 + rng() % 4);
    big_r *= k.r.back();
  }
  k.coarse.push_back(k.n);
  k.fine.push_back(k.n);
  if (!k.channels_last) k.coarse.push_back(k.c * big_r), k.fine.push_back(k.c);
  for (int a = 0; a < k.nd; ++a) {
    k.coarse.push_back(k.s[a]);
    k.fine.push_back(k.s[a] * k.r[a]);
  }
  if (k.channels_last) k.coarse.push_back(k.c * big_r), k.fine.push_back(k.c);
  return k;
}

// The flat fine index of coarse element (n, i, channel c R + q) by the docstring's formula.
int64_t FineIndex(const Case& k, int64_t flat_coarse) {
  const int nd = k.nd;
  int64_t big_r = 1;
  for (int64_t f : k.r) big_r *= f;
  std::vector<int64_t> idx(k.coarse.size());
  for (int d = static_cast<int>(k.coarse.size()) - 1; d >= 0; --d) {
    idx[d] = flat_coarse % k.coarse[d];
    flat_coarse /= k.coarse[d];
  }
  const int ch = k.channels_last ? nd + 1 : 1, sp = k.channels_last ? 1 : 2;
  const int64_t c = idx[ch] / big_r;
  int64_t q = idx[ch] % big_r;
  std::vector<int64_t> o(nd);
  for (int a = nd - 1; a >= 0; --a) o[a] = q % k.r[a], q /= k.r[a];
  std::vector<int64_t> fidx(k.fine.size());
  fidx[0] = idx[0];
  fidx[ch] = c;
  for (int a = 0; a < nd; ++a) fidx[sp + a] = idx[sp + a] * k.r[a] + o[a];
  int64_t flat = 0;
  for (size_t d = 0; d < k.fine.size(); ++d) flat = flat * k.fine[d] + fidx[d];
  return flat;
}

template <typename T>
bool RunOne(const Case& k, std::mt19937_64& rng) {
  Plan plan;
  const std::string why = MakePlan(ffi::Span<const int64_t>(k.coarse),
                                   ffi::Span<const int64_t>(k.fine),
                                   ffi::Span<const int64_t>(k.r), k.channels_last, k.to_fine,
                                   sizeof(T), &plan);
  if (!why.empty()) {
    std::printf("refused a consistent case: %s\n", why.c_str());
    return false;
  }
  int64_t size = 1;
  for (int64_t d : k.coarse) size *= d;
  std::vector<T> coarse(size), fine(size);
  std::vector<T>& src = k.to_fine ? coarse : fine;
  for (int64_t i = 0; i < size; ++i) src[i] = static_cast<T>(i + 1);
  int64_t lo = 0;
  while (lo < plan.rows) {  // the rows in random chunks, as the threads claim them
    const int64_t hi = std::min<int64_t>(plan.rows, lo + 1 + static_cast<int64_t>(rng() % 5));
    plan.kernel(plan.g, coarse.data(), fine.data(), plan.delta.get(), lo, hi);
    lo = hi;
  }
  for (int64_t i = 0; i < size; ++i) {
    if (fine[FineIndex(k, i)] != coarse[i]) {
      std::printf("mismatch at coarse element %lld (nd %d, %s, %s)\n",
                  static_cast<long long>(i), k.nd, k.channels_last ? "last" : "first",
                  k.to_fine ? "shuffle" : "unshuffle");
      return false;
    }
  }
  return true;
}

}  // namespace

int main() {
  std::mt19937_64 rng(2026);
  int64_t copied = 0, refused = 0;
  for (int it = 0; it < 20000; ++it) {
    Case k = Draw(rng);
    const int width = 2 << (rng() % 3);  // 2, 4, 8
    bool ok = width == 2 ? RunOne<uint16_t>(k, rng)
              : width == 4 ? RunOne<uint32_t>(k, rng)
                           : RunOne<uint64_t>(k, rng);
    if (!ok) return 1;
    ++copied;
    // the same case made inconsistent: a dim off by one, a factor of 0, or a bad width
    Plan plan;
    Case bad = k;
    const int what = static_cast<int>(rng() % 4);
    size_t width_bad = sizeof(float);
    if (what == 0) {
      bad.fine[rng() % bad.fine.size()] += 1;
    } else if (what == 1) {
      bad.coarse[rng() % bad.coarse.size()] += 1;
    } else if (what == 2) {
      bad.r[rng() % bad.r.size()] = 0;
    } else {
      width_bad = (rng() % 2) ? 1 : 16;
    }
    const std::string why =
        MakePlan(ffi::Span<const int64_t>(bad.coarse), ffi::Span<const int64_t>(bad.fine),
                 ffi::Span<const int64_t>(bad.r), bad.channels_last, bad.to_fine, width_bad,
                 &plan);
    if (why.empty()) {
      std::printf("accepted an inconsistent case (kind %d, nd %d)\n", what, bad.nd);
      return 1;
    }
    ++refused;
  }
  std::printf("ok: %lld geometries copied and checked, %lld inconsistent ones refused\n",
              static_cast<long long>(copied), static_cast<long long>(refused));
  return 0;
}
