// A persistent worker pool shared by every batched kernel.
#pragma once
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

}  // namespace fastkin
