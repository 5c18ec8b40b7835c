// A persistent worker pool shared by every batched kernel.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

namespace fastkin {

// Number of threads large batches may use (>= 1). The default is the number
// of hardware threads; the FASTKIN_NUM_THREADS environment variable overrides it.
int get_num_threads();
// Resizes the pool. Safe while other threads run kernels: it waits for the
// job in flight.
void set_num_threads(int n);

// Calls fn(task, worker) for every task in [0, num_tasks), spread over at
// most get_num_threads() workers; `worker` is in [0, max_workers) and lets a
// task use per-worker scratch. The caller works too. When the pool is busy
// with another caller's job the tasks run on the calling thread instead, so
// concurrent callers never wait on each other.
void parallel_for(int64_t num_tasks, int max_workers,
                  const std::function<void(int64_t task, int worker)>& fn);

// Calls fn(begin, end) over contiguous ranges covering [0, count). The pool
// is used only when every worker gets at least `min_cost_per_worker` units
// (count * cost_per_item in all); otherwise fn(0, count) runs once on the
// calling thread, with no allocation.
template <class Fn>
void parallel_ranges(int64_t count, int64_t cost_per_item, int64_t min_cost_per_worker, Fn&& fn) {
  const int64_t useful = std::max<int64_t>(1, count * cost_per_item / min_cost_per_worker);
  const int workers = static_cast<int>(std::min<int64_t>(get_num_threads(), useful));
  if (workers <= 1) {
    fn(int64_t{0}, count);
    return;
  }
  // A few ranges per worker balance uneven progress.
  const int64_t chunk = (count + 4 * workers - 1) / (4 * workers);
  parallel_for((count + chunk - 1) / chunk, workers,
               [&](int64_t task, int) { fn(task * chunk, std::min(count, (task + 1) * chunk)); });
}

}  // namespace fastkin
