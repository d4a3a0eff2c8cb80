// Work split over XLA's intra-op thread pool, shared by jaxconv's own kernels (axis_map.cc,
// pool.cc, unpool.cc): a call's rows are cut into chunks that the calling thread and the tasks
// it hands XLA's pool (the FFI's ThreadPool context) claim one at a time.
//
// Threads: XLA's own intra-op pool, not OpenMP. Measured on a busy 2-core machine, an OpenMP
// team of 2 made every call cost a scheduler tick or two (~8 ms for a 0.3 ms map; its threads
// spin, and OMP_WAIT_POLICY=passive did not cure it), while XLA's pool threads are the ones XLA
// runs its own fusions on. The calling thread works too and, when the chunks run out, waits only
// for chunks other threads have claimed, so a task the pool never starts delays nothing; the
// state is shared-owned, so a task starting after the call returned touches only that.
#ifndef JAXCONV_NATIVE_INTRA_OP_H_
#define JAXCONV_NATIVE_INTRA_OP_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>

#include "xla/ffi/api/ffi.h"

// Helpers forced inline into the per-CPU clones of a kernel (target_clones), which compile them
// for that clone's vector width; a helper called out of line would run the baseline SSE2 code on
// every CPU.
#define JAXCONV_INLINE inline __attribute__((always_inline))

namespace jaxconv_native {

// Rows [lo, hi) of one call's output.
using RowsFn = std::function<void(int64_t, int64_t)>;

// The threads a call runs on: one when its work (any unit, e.g. multiply-adds) is under
// `small`, where handing work to other threads costs more than it saves; else the pool's size.
inline int64_t Threads(const xla::ffi::ThreadPool& pool, int64_t work, int64_t small) {
  if (work < small) return 1;
  return std::max<int64_t>(1, pool.num_threads());
}

// The chunks of one call, claimed by the calling thread and the tasks it hands XLA's pool.
struct Shared {
  RowsFn rows_fn;
  int64_t rows = 0, chunk = 1, chunks = 0;
  std::atomic<int64_t> next{0}, done{0};

  void Work() {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      rows_fn(c * chunk, std::min(rows, (c + 1) * chunk));
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// rows_fn over [0, rows) on `threads` threads (the caller one of them), four chunks a thread.
inline void Run(xla::ffi::ThreadPool& pool, RowsFn rows_fn, int64_t rows, int64_t threads) {
  if (threads <= 1) {
    rows_fn(0, rows);
    return;
  }
  auto shared = std::make_shared<Shared>();
  shared->rows_fn = std::move(rows_fn);
  shared->rows = rows;
  shared->chunk = std::max<int64_t>(1, (rows + 4 * threads - 1) / (4 * threads));
  shared->chunks = (rows + shared->chunk - 1) / shared->chunk;
  for (int64_t t = 1; t < threads; ++t) pool.Schedule([shared] { shared->Work(); });
  shared->Work();
  while (shared->done.load(std::memory_order_acquire) < shared->chunks) {
    std::this_thread::yield();
  }
}

}  // namespace jaxconv_native

#endif  // JAXCONV_NATIVE_INTRA_OP_H_
