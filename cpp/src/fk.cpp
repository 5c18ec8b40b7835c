// fk entry points: pick the kernel for this CPU and split the batch over
// the thread pool. The math lives in fk_block.inl.
#include "fastkin/fk.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fastkin/parallel.h"
#include "dispatch.h"
#include "fk_kernels.h"

namespace fastkin {
namespace {

// Below this many joints in a call the pool costs more than it saves.
constexpr int64_t kMinJointsPerThread = 16384;

template <class T>
const detail::FkKernel<T>& kernel() {
  static const detail::FkKernel<T> k = detail::for_this_cpu<detail::FkKernel<T>>(
      &detail::fk_kernel_scalar<T>, &detail::fk_kernel_avx2<T>, &detail::fk_kernel_avx512<T>);
  return k;
}

struct Split {
  int64_t chunk;  // poses per task, a multiple of the block width
  int64_t tasks;
  int workers;
};

Split split_batch(int64_t batch, int64_t num_joints, int lanes) {
  const int64_t useful = std::max<int64_t>(1, batch * num_joints / kMinJointsPerThread);
  const int workers = static_cast<int>(std::min<int64_t>(get_num_threads(), useful));
  if (workers <= 1) return {batch, 1, 1};
  // A few tasks per worker balance uneven progress without much overhead.
  int64_t chunk = (batch + 4 * workers - 1) / (4 * workers);
  chunk = (chunk + lanes - 1) / lanes * lanes;
  return {chunk, (batch + chunk - 1) / chunk, workers};
}

}  // namespace

template <class T>
bool fk_forward(const FkInputs<T>& in, T* world_rotations, T* world_positions, bool stream_large_outputs) {
  const auto& k = kernel<T>();
  const Split s = split_batch(in.batch, in.num_joints, k.lanes);
  const int64_t scratch_size = detail::fk_scratch_size(in.num_joints, k.lanes);
  if (s.tasks == 1)
    return k.forward(in, 0, in.batch, detail::thread_scratch<T>(scratch_size), world_rotations, world_positions,
                     stream_large_outputs);
  std::vector<char> finite(s.tasks, 1);
  parallel_for(s.tasks, s.workers, [&](int64_t t, int) {
    const int64_t begin = t * s.chunk, end = std::min(in.batch, begin + s.chunk);
    finite[t] = k.forward(in, begin, end, detail::thread_scratch<T>(scratch_size), world_rotations, world_positions,
                          stream_large_outputs);
  });
  return std::all_of(finite.begin(), finite.end(), [](char f) { return f != 0; });
}

template <class T>
bool fk_backward(const FkInputs<T>& in, const T* grad_world_rotations, const T* grad_world_positions,
                 const FkGradients<T>& grads) {
  const auto& k = kernel<T>();
  const Split s = split_batch(in.batch, in.num_joints, k.lanes);
  const int64_t scratch_size = detail::fk_scratch_size(in.num_joints, k.lanes);
  const int64_t offset_size = in.num_joints * 3;
  // Shared offsets: one running sum per task, added up in task order so the
  // result does not depend on scheduling.
  const bool sum_offsets = grads.offsets && !in.offsets_batched;
  std::vector<double> offset_sums(sum_offsets ? offset_size * s.tasks : 0, 0.0);
  std::vector<char> finite(s.tasks, 1);
  parallel_for(s.tasks, s.workers, [&](int64_t t, int) {
    const int64_t begin = t * s.chunk, end = std::min(in.batch, begin + s.chunk);
    double* sum = sum_offsets ? offset_sums.data() + t * offset_size : nullptr;
    finite[t] = k.backward(in, begin, end, detail::thread_scratch<T>(scratch_size), grad_world_rotations,
                           grad_world_positions, grads, sum);
  });
  if (sum_offsets) {
    for (int64_t i = 0; i < offset_size; ++i) {
      double total = 0.0;
      for (int64_t t = 0; t < s.tasks; ++t) total += offset_sums[t * offset_size + i];
      grads.offsets[i] = static_cast<T>(total);
    }
  }
  return std::all_of(finite.begin(), finite.end(), [](char f) { return f != 0; });
}

template bool fk_forward<float>(const FkInputs<float>&, float*, float*, bool);
template bool fk_forward<double>(const FkInputs<double>&, double*, double*, bool);
template bool fk_backward<float>(const FkInputs<float>&, const float*, const float*, const FkGradients<float>&);
template bool fk_backward<double>(const FkInputs<double>&, const double*, const double*,
                                  const FkGradients<double>&);

}  // namespace fastkin
