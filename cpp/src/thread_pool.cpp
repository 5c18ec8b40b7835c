// The persistent worker pool behind fastkin::parallel_for.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include "fastkin/parallel.h"

namespace fastkin {
namespace {

int default_threads() {
  if (const char* env = std::getenv("FASTKIN_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {}

  int threads() const { return threads_.load(); }

  void resize(int n) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);  // waits for the job in flight
    stop_workers();
    threads_ = n;
  }

  void run(int64_t num_tasks, int max_workers, const std::function<void(int64_t, int)>& fn) {
    const int workers = static_cast<int>(std::min<int64_t>({threads_.load(), num_tasks, max_workers}));
    std::unique_lock<std::mutex> job_lock(job_mutex_, std::try_to_lock);
    if (workers <= 1 || !job_lock.owns_lock()) {
      for (int64_t t = 0; t < num_tasks; ++t) fn(t, 0);
      return;
    }
    start_workers(threads_ - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      num_tasks_ = num_tasks;
      next_task_ = 0;
      helpers_wanted_ = workers - 1;
      helpers_busy_ = 0;
      next_helper_id_ = 1;
      ++generation_;
    }
    wake_.notify_all();
    work(0);
    std::unique_lock<std::mutex> lock(mutex_);
    helpers_wanted_ = 0;  // helpers that have not woken yet are not needed
    done_.wait(lock, [&] { return helpers_busy_ == 0; });
    job_ = nullptr;
  }

 private:
  void start_workers(int n) {
    if (static_cast<int>(workers_.size()) == n) return;
    stop_workers();
    stopping_ = false;
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void worker_loop() {
    uint64_t seen = 0;
    int id = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || (generation_ != seen && helpers_wanted_ > 0); });
        if (stopping_) return;
        seen = generation_;
        --helpers_wanted_;
        ++helpers_busy_;
        id = next_helper_id_++;  // 1..workers-1 within this job
      }
      work(id);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --helpers_busy_;
      }
      done_.notify_all();
    }
  }

  void work(int worker) {
    for (;;) {
      const int64_t t = next_task_.fetch_add(1);
      if (t >= num_tasks_) return;
      (*job_)(t, worker);
    }
  }

  std::atomic<int> threads_;
  std::mutex job_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  int helpers_wanted_ = 0;
  int helpers_busy_ = 0;
  uint64_t generation_ = 0;
  int next_helper_id_ = 1;
  bool stopping_ = false;
};

// Leaked on purpose: worker threads may outlive static destruction at exit.
Pool* pool = nullptr;
std::once_flag pool_once;

Pool& the_pool() {
  std::call_once(pool_once, [] {
    pool = new Pool(default_threads());
#if defined(__unix__) || defined(__APPLE__)
    // A forked child has only the forking thread and may inherit locked
    // mutexes: it gets a fresh pool and leaks the parent's.
    pthread_atfork(nullptr, nullptr, [] { pool = new Pool(pool->threads()); });
#endif
  });
  return *pool;
}

}  // namespace

int get_num_threads() { return the_pool().threads(); }

void set_num_threads(int n) { the_pool().resize(std::max(1, n)); }

void parallel_for(int64_t num_tasks, int max_workers, const std::function<void(int64_t, int)>& fn) {
  if (num_tasks <= 0) return;
  the_pool().run(num_tasks, max_workers, fn);
}

}  // namespace fastkin
