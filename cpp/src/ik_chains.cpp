// Two-bone IK and FABRIK: per-frame scalar code (a handful of square roots
// per bone and pass); big batches are split over the pool by frames.
#include "fastkin/ik_chains.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "dispatch.h"
#include "fastkin/parallel.h"

namespace fastkin {
namespace {

// Below this many frames per worker (two-bone) or bone updates per worker
// (FABRIK) the pool costs more than it saves.
constexpr int64_t kMinTwoBoneFramesPerThread = 4096;
constexpr int64_t kMinFabrikBoneUpdatesPerThread = 32768;

// A direction or a plane is degenerate when its defining vector is shorter
// than this fraction of the lengths it is made of (1024 ulps: rounding
// noise, not geometry).
template <class T>
constexpr T kTiny = T(1024) * std::numeric_limits<T>::epsilon();

// FABRIK has stalled when no joint moves by more than this fraction of the
// tolerance in a pass: the targets are out of reach, or the chain lies on a
// line through its targets, where FABRIK never leaves the line. The first
// stall bends the active bones by this angle (radians), alternately one way
// and the other, and the passes go on; the second one stops the frame.
constexpr double kStallFraction = 1e-3;
constexpr double kKickAngle = 0.2;

template <class T>
struct V3 {
  T x, y, z;
};

template <class T>
inline V3<T> load(const T* p) {
  return {p[0], p[1], p[2]};
}
template <class T>
inline void store(const V3<T>& v, T* p) {
  p[0] = v.x;
  p[1] = v.y;
  p[2] = v.z;
}
template <class T>
inline V3<T> operator+(const V3<T>& a, const V3<T>& b) {
  return {a.x + b.x, a.y + b.y, a.z + b.z};
}
template <class T>
inline V3<T> operator-(const V3<T>& a, const V3<T>& b) {
  return {a.x - b.x, a.y - b.y, a.z - b.z};
}
template <class T>
inline V3<T> operator*(const V3<T>& a, T s) {
  return {a.x * s, a.y * s, a.z * s};
}
template <class T>
inline V3<T> operator/(const V3<T>& a, T s) {
  return {a.x / s, a.y / s, a.z / s};
}
template <class T>
inline T dot(const V3<T>& a, const V3<T>& b) {
  return a.x * b.x + a.y * b.y + a.z * b.z;
}
template <class T>
inline V3<T> cross(const V3<T>& a, const V3<T>& b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
template <class T>
inline T norm(const V3<T>& a) {
  return std::sqrt(dot(a, a));
}
// The part of w perpendicular to the unit vector u.
template <class T>
inline V3<T> reject(const V3<T>& w, const V3<T>& u) {
  return w - u * dot(w, u);
}

// A unit vector perpendicular to the unit vector u: the world axis least
// aligned with u (ties: x, then y, then z) made orthogonal to it.
template <class T>
V3<T> perpendicular_to(const V3<T>& u) {
  const T ax = std::abs(u.x), ay = std::abs(u.y), az = std::abs(u.z);
  const V3<T> axis = ax <= ay && ax <= az ? V3<T>{1, 0, 0} : ay <= az ? V3<T>{0, 1, 0} : V3<T>{0, 0, 1};
  const V3<T> w = reject(axis, u);
  return w / norm(w);  // |w| >= sqrt(2/3)
}

// Row-major rotation R = F_new F_oldᵀ, where F = [e1 e2 e3] is the frame
// with e1 the unit `direction` and e2 along the part of the unit `normal`
// perpendicular to it (Gram-Schmidt, so R is orthonormal even when the
// normal is a little off): R takes old_direction to new_direction and
// old_normal to new_normal (when each normal is perpendicular to its
// direction).
template <class T>
inline void frame_of(const V3<T>& direction, const V3<T>& normal, V3<T> frame[3]) {
  frame[0] = direction;
  const V3<T> w = reject(normal, direction);
  const T n = norm(w);
  frame[1] = n > kTiny<T> ? w * (T(1) / n) : perpendicular_to(direction);
  frame[2] = cross(frame[0], frame[1]);
}

template <class T>
inline void rotation_between_frames(const V3<T>& old_direction, const V3<T>& old_normal, const V3<T>& new_direction,
                             const V3<T>& new_normal, T* rotation) {
  V3<T> before[3], after[3];
  frame_of(old_direction, old_normal, before);
  frame_of(new_direction, new_normal, after);
  const T a[3][3] = {{after[0].x, after[1].x, after[2].x},
                     {after[0].y, after[1].y, after[2].y},
                     {after[0].z, after[1].z, after[2].z}};
  const T b[3][3] = {{before[0].x, before[1].x, before[2].x},
                     {before[0].y, before[1].y, before[2].y},
                     {before[0].z, before[1].z, before[2].z}};
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) rotation[3 * i + k] = a[i][0] * b[k][0] + a[i][1] * b[k][1] + a[i][2] * b[k][2];
}

template <class T>
void identity(T* rotation) {
  for (int i = 0; i < 9; ++i) rotation[i] = i % 4 == 0 ? T(1) : T(0);
}

// True when all n values are finite (x - x is 0 only for finite x).
template <class T>
bool all_finite(const T* values, int64_t n) {
  int finite = 1;
  for (int64_t i = 0; i < n; ++i) finite &= (values[i] - values[i] == T(0));
  return finite != 0;
}

// -- two-bone -------------------------------------------------------------------------------------

template <class T>
void two_bone_frame(const T* root, const T* mid, const T* end, const T* target, const T* pole, T* new_mid,
                    T* new_end, T* upper_rotation, T* lower_rotation) {
  const T tiny = kTiny<T>;
  const V3<T> a = load(root);
  const V3<T> upper = load(mid) - a, lower = load(end) - load(mid), to_end = load(end) - a;
  const V3<T> to_target = load(target) - a;
  const T l1 = norm(upper), l2 = norm(lower), end_distance = norm(to_end), distance = norm(to_target);
  const T reach = l1 + l2;

  // u: unit direction from the root to the target. A target on the root
  // has none: the current end's direction, else a bone's, else x.
  V3<T> u;
  if (distance > tiny * std::max(reach, distance))
    u = to_target / distance;
  else if (end_distance > tiny * reach)
    u = to_end / end_distance;
  else if (l1 > tiny * reach)
    u = upper / l1;
  else if (l2 > tiny * reach)
    u = lower / l2;
  else
    u = {1, 0, 0};

  // The current bend plane's unit normal (upper x root-to-end), when the
  // limb is bent.
  V3<T> normal = cross(upper, to_end);
  const T normal_length = norm(normal);
  const bool bent = normal_length > tiny * l1 * end_distance;
  if (bent) normal = normal / normal_length;

  // v: unit direction, perpendicular to u, in which the mid leaves the
  // root-target line. First choice that is not degenerate: towards the pole;
  // the current plane turned as little as possible to contain u; the
  // current mid's side of the line; the current end's side; an axis.
  V3<T> v{0, 0, 0};
  bool found = false;
  auto take = [&](const V3<T>& w, T scale) {
    const T n = norm(w);
    if (n > tiny * scale) {
      v = w / n;
      found = true;
    }
  };
  if (pole) {
    const V3<T> to_pole = load(pole) - a;
    take(reject(to_pole, u), norm(to_pole));
  }
  if (!found && bent) take(cross(u, normal), T(1));
  if (!found) take(reject(upper, u), l1);
  if (!found) take(reject(to_end, u), end_distance);
  if (!found) v = perpendicular_to(u);

  // The end at the nearest reachable distance along u; the mid by the law
  // of cosines: x along u, h along v, with h from Heron's formula (accurate
  // near the stretched and folded poses).
  const T d = std::min(std::max(distance, std::abs(l1 - l2)), reach);
  T x = T(0), h = l1;
  if (d > T(0)) {
    x = std::min(std::max((d * d + (l1 - l2) * (l1 + l2)) / (T(2) * d), -l1), l1);
    const T f1 = std::max(reach - d, T(0)), f2 = std::max(d + l2 - l1, T(0)), f3 = std::max(d + l1 - l2, T(0));
    h = std::min(std::sqrt(f1 * (d + reach)) * std::sqrt(f2) * std::sqrt(f3) / (T(2) * d), l1);
  }
  const V3<T> mid_out = a + u * x + v * h, end_out = a + u * d;
  store(mid_out, new_mid);
  store(end_out, new_end);
  if (!upper_rotation) return;

  // Rotations taking each old bone to its new one and the old bend normal
  // to the new one (v x u, the normal of the new plane with the same
  // orientation as upper x root-to-end). A straight old limb has no normal:
  // the new one stands in. A zero-length bone turns with the other bone.
  const V3<T> new_normal = cross(v, u);
  const V3<T> old_normal = bent ? normal : new_normal;
  const bool upper_usable = l1 > tiny * reach, lower_usable = l2 > tiny * reach;
  if (!upper_usable && !lower_usable) {
    identity(upper_rotation);
    identity(lower_rotation);
    return;
  }
  // Unit bone directions before and after (the new bones have the old
  // lengths, to rounding).
  const T inverse_l1 = upper_usable ? T(1) / l1 : T(0), inverse_l2 = lower_usable ? T(1) / l2 : T(0);
  const V3<T> upper_before = upper * inverse_l1, upper_after = (mid_out - a) * inverse_l1;
  const V3<T> lower_before = lower * inverse_l2, lower_after = (end_out - mid_out) * inverse_l2;
  if (upper_usable)
    rotation_between_frames(upper_before, old_normal, upper_after, new_normal, upper_rotation);
  else
    rotation_between_frames(lower_before, old_normal, lower_after, new_normal, upper_rotation);
  if (lower_usable)
    rotation_between_frames(lower_before, old_normal, lower_after, new_normal, lower_rotation);
  else
    rotation_between_frames(upper_before, old_normal, upper_after, new_normal, lower_rotation);
}

// -- FABRIK ---------------------------------------------------------------------------------------

// The roles of the joints in a call, shared by every frame (int32 each):
// contributions[j] = number of active children + 1 if j has a target (an
// active joint, one that leads to a target, has at least one);
// target_of[j] = index of j's target or -1; anchor[j] = the nearest active
// ancestor-or-self of j, or -1 when its tree has no target.
struct FabrikPlan {
  const int32_t* contributions;
  const int32_t* target_of;
  const int32_t* anchor;
};

FabrikPlan make_plan(const int32_t* parents, int64_t J, const int32_t* target_joints, int64_t num_targets,
                     int32_t* storage) {
  int32_t* contributions = storage;
  int32_t* target_of = storage + J;
  int32_t* anchor = storage + 2 * J;
  for (int64_t j = 0; j < J; ++j) {
    contributions[j] = 0;
    target_of[j] = -1;
  }
  for (int64_t t = 0; t < num_targets; ++t) target_of[target_joints[t]] = static_cast<int32_t>(t);
  for (int64_t j = J - 1; j >= 0; --j) {  // children (higher indices) first
    contributions[j] += target_of[j] >= 0;
    if (contributions[j] > 0 && parents[j] >= 0) ++contributions[parents[j]];
  }
  for (int64_t j = 0; j < J; ++j)
    anchor[j] = contributions[j] > 0 ? static_cast<int32_t>(j) : parents[j] >= 0 ? anchor[parents[j]] : -1;
  return {contributions, target_of, anchor};
}

// w turned by the smallest rotation taking unit a to unit b.
template <class T>
V3<T> swing(const V3<T>& a, const V3<T>& b, const V3<T>& w) {
  const T c = dot(a, b);
  const V3<T> k = cross(a, b);  // sin(angle) * axis
  if (c > T(-0.999)) return w * c + cross(k, w) + k * (dot(k, w) / (T(1) + c));
  const T s = norm(k);
  const V3<T> axis = s > kTiny<T> ? k / s : perpendicular_to(a);
  return w * c + cross(axis, w) * s + axis * (dot(axis, w) * (T(1) - c));
}

template <class T>
struct FabrikFrame {
  const int32_t* parents;
  int64_t J;
  const int32_t* target_joints;
  int64_t num_targets;
  FabrikPlan plan;
  const FabrikOptions<T>* options;
};

// Largest distance from an end effector to its target.
template <class T>
T target_error(const FabrikFrame<T>& f, const T* positions, const T* targets) {
  T worst = T(0);
  for (int64_t t = 0; t < f.num_targets; ++t) {
    const T e = norm(load(positions + 3 * f.target_joints[t]) - load(targets + 3 * t));
    worst = e > worst || e != e ? e : worst;  // NaN wins
  }
  return worst;
}

// Solves one frame: `initial` (J, 3) -> `positions` (J, 3). `scratch` holds
// 4 J scalars: bone lengths, then backward-pass positions. Returns false
// when a length or distance overflowed (or the input was not finite).
template <class T>
bool fabrik_frame(const FabrikFrame<T>& f, const T* initial, const T* targets, T* scratch, T* positions,
                  int32_t* iterations, uint8_t* converged) {
  const int64_t J = f.J;
  const int32_t* parents = f.parents;
  const FabrikPlan& plan = f.plan;
  T* lengths = scratch;
  T* backward = scratch + J;
  T reach = T(0);
  for (int64_t j = 0; j < J; ++j) {
    for (int i = 0; i < 3; ++i) positions[3 * j + i] = initial[3 * j + i];
    const int32_t p = parents[j];
    lengths[j] = p >= 0 ? norm(load(initial + 3 * j) - load(initial + 3 * p)) : T(0);
    if (plan.contributions[j] > 0) reach += lengths[j];
  }
  if (!(reach <= std::numeric_limits<T>::max())) {  // an overflowed (or NaN) length
    *iterations = 0;
    *converged = 0;
    return false;
  }
  const T tol = f.options->tol + f.options->relative_tol * reach;
  const T stall = T(kStallFraction) * tol;
  const bool fixed_root = f.options->fixed_root;

  // The unit direction from `from` to `to` for joint j's bone, or, when
  // they (nearly) coincide, the bone's direction now, else in the input
  // (`now` and `before`, oriented like to - from). Zero for a zero-length
  // bone, which has no direction and needs none.
  auto direction = [&](const V3<T>& from, const V3<T>& to, int64_t j, const V3<T>& now, const V3<T>& before) {
    const T length = lengths[j];
    if (!(length > T(0))) return V3<T>{0, 0, 0};
    const V3<T> w = to - from;
    const T n = norm(w);
    if (n > kTiny<T> * length) return w / n;
    const T m = norm(now);
    if (m > kTiny<T> * length) return now / m;
    return before / length;  // |before| = length
  };

  // Bends every active bone by kKickAngle about the world axis least
  // aligned with it (made perpendicular), + for even joints and - for odd
  // ones, keeping its length: a straight chain becomes a zigzag.
  auto kick = [&]() {
    const T c = static_cast<T>(std::cos(kKickAngle)), s = static_cast<T>(std::sin(kKickAngle));
    for (int64_t j = 0; j < J; ++j) {  // bone directions first (backward is free now)
      const int32_t p = parents[j];
      if (plan.contributions[j] == 0 || p < 0 || !(lengths[j] > T(0))) continue;
      const V3<T> bone = load(positions + 3 * j) - load(positions + 3 * p);
      store(bone * (T(1) / norm(bone)), backward + 3 * j);
    }
    for (int64_t j = 0; j < J; ++j) {
      const int32_t p = parents[j];
      if (plan.contributions[j] == 0 || p < 0 || !(lengths[j] > T(0))) continue;
      const V3<T> d = load(backward + 3 * j);
      const V3<T> turned = d * c + cross(perpendicular_to(d), d) * (j % 2 == 0 ? s : -s);
      store(load(positions + 3 * p) + turned * lengths[j], positions + 3 * j);
    }
  };

  T error = target_error(f, positions, targets);
  int32_t passes = 0;
  bool kicked = false;
  if (!(error <= tol) && error == error && f.num_targets == 1 && fixed_root) {
    // One end effector: its chain stretches straight at the target when the
    // target is at or beyond the chain's reach (FABRIK's reachability test).
    int64_t root = f.target_joints[0];
    while (parents[root] >= 0) root = parents[root];
    const V3<T> base = load(positions + 3 * root);
    const V3<T> to_target = load(targets) - base;
    const T distance = norm(to_target);
    if (distance >= reach && distance > T(0)) {
      const V3<T> u = to_target / distance;
      for (int64_t j = root + 1; j < J; ++j)
        if (plan.contributions[j] > 0) store(load(positions + 3 * parents[j]) + u * lengths[j], positions + 3 * j);
      passes = 1;
      error = target_error(f, positions, targets);
    }
  }
  if (passes == 0) {
    while (!(error <= tol) && error == error && passes < f.options->max_iters) {
      ++passes;
      // Backward: from the end effectors in, each active joint goes to the
      // centroid of its target and its children's proposals; a child c at
      // q_c proposes its parent at q_c + L_c * unit(p_parent - q_c).
      for (int64_t j = 0; j < J; ++j)
        if (plan.contributions[j] > 0) store(V3<T>{0, 0, 0}, backward + 3 * j);
      for (int64_t j = J - 1; j >= 0; --j) {
        const int32_t count = plan.contributions[j];
        if (count == 0) continue;
        V3<T> q = load(backward + 3 * j);
        if (plan.target_of[j] >= 0) q = q + load(targets + 3 * plan.target_of[j]);
        q = q / static_cast<T>(count);
        store(q, backward + 3 * j);
        const int32_t p = parents[j];
        if (p < 0) continue;
        const V3<T> parent_now = load(positions + 3 * p);
        const V3<T> proposal = q + direction(q, parent_now, j, parent_now - load(positions + 3 * j),
                                             load(initial + 3 * p) - load(initial + 3 * j)) *
                                       lengths[j];
        store(load(backward + 3 * p) + proposal, backward + 3 * p);
      }
      // Forward: from the roots out, each active joint on the line from its
      // (already placed) parent to its backward position, at its bone length.
      T moved = T(0);
      for (int64_t j = 0; j < J; ++j) {
        if (plan.contributions[j] == 0) continue;
        const int32_t p = parents[j];
        const V3<T> now = load(positions + 3 * j);
        V3<T> next;
        if (p < 0) {
          next = fixed_root ? now : load(backward + 3 * j);
        } else {
          const V3<T> parent = load(positions + 3 * p);
          next = parent + direction(parent, load(backward + 3 * j), j, now - parent,
                                    load(initial + 3 * j) - load(initial + 3 * p)) *
                              lengths[j];
        }
        const V3<T> step = next - now;
        moved = std::max(moved, dot(step, step));
        store(next, positions + 3 * j);
      }
      error = target_error(f, positions, targets);
      if (std::sqrt(moved) <= stall && !(error <= tol)) {
        if (kicked) break;
        kicked = true;
        kick();
        error = target_error(f, positions, targets);
      }
    }
  }
  // Joints that lead to no target move rigidly with their anchor, turned by
  // the smallest rotation that takes the anchor's bone from its input
  // direction to its new one (roots: translated only).
  for (int64_t j = 0; j < J && passes > 0; ++j) {
    const int32_t anchor = plan.anchor[j];
    if (plan.contributions[j] > 0 || anchor < 0) continue;
    const int32_t p = parents[j];
    const V3<T> offset = load(initial + 3 * j) - load(initial + 3 * p);
    V3<T> turned = offset;
    const int32_t above = parents[anchor];
    if (above >= 0 && lengths[anchor] > T(0)) {
      const V3<T> before = load(initial + 3 * anchor) - load(initial + 3 * above);
      const V3<T> after = load(positions + 3 * anchor) - load(positions + 3 * above);
      turned = swing(before / norm(before), after / norm(after), offset);
    }
    store(load(positions + 3 * p) + turned, positions + 3 * j);
  }
  *iterations = passes;
  *converged = error <= tol ? 1 : 0;
  return error <= std::numeric_limits<T>::max();
}

}  // namespace

template <class T>
bool two_bone_ik(const T* roots, int64_t root_stride, const T* mids, int64_t mid_stride, const T* ends,
                 int64_t end_stride, const T* targets, int64_t target_stride, const T* poles, int64_t pole_stride,
                 int64_t batch, T* new_mids, T* new_ends, T* upper_rotations, T* lower_rotations) {
  std::atomic<bool> finite{true};
  parallel_ranges(batch, 1, kMinTwoBoneFramesPerThread, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      two_bone_frame(roots + b * root_stride, mids + b * mid_stride, ends + b * end_stride,
                     targets + b * target_stride, poles ? poles + b * pole_stride : nullptr, new_mids + 3 * b,
                     new_ends + 3 * b, upper_rotations ? upper_rotations + 9 * b : nullptr,
                     lower_rotations ? lower_rotations + 9 * b : nullptr);
    // Non-finite input (a NaN pole could otherwise just be ignored) or output.
    auto finite_points = [&](const T* points, int64_t stride) {
      return !points || (stride == 0 ? all_finite(points, 3) : all_finite(points + 3 * begin, 3 * (end - begin)));
    };
    bool ok = finite_points(roots, root_stride) && finite_points(mids, mid_stride) && finite_points(ends, end_stride) &&
              finite_points(targets, target_stride) && finite_points(poles, pole_stride) &&
              all_finite(new_mids + 3 * begin, 3 * (end - begin)) && all_finite(new_ends + 3 * begin, 3 * (end - begin));
    if (upper_rotations)
      ok = ok && all_finite(upper_rotations + 9 * begin, 9 * (end - begin)) &&
           all_finite(lower_rotations + 9 * begin, 9 * (end - begin));
    if (!ok) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

template <class T>
bool fabrik(const int32_t* parents, int64_t num_joints, const int32_t* target_joints, int64_t num_targets,
            const T* positions, int64_t positions_stride, const T* targets, int64_t targets_stride, int64_t batch,
            const FabrikOptions<T>& options, T* out_positions, int32_t* iterations, uint8_t* converged) {
  const int64_t J = num_joints;
  // The plan lives in the calling thread's scratch; workers only read it.
  int32_t* plan_storage = detail::thread_scratch<int32_t, 4>(3 * J);
  const FabrikFrame<T> frame{parents, J, target_joints, num_targets,
                             make_plan(parents, J, target_joints, num_targets, plan_storage), &options};
  const int64_t bone_updates = 2 * J * std::min<int64_t>(options.max_iters, 16);
  std::atomic<bool> finite{true};
  parallel_ranges(batch, bone_updates, kMinFabrikBoneUpdatesPerThread, [&](int64_t begin, int64_t end) {
    T* scratch = detail::thread_scratch<T, 4>(4 * J);
    bool ok = true;
    for (int64_t b = begin; b < end; ++b)
      ok &= fabrik_frame(frame, positions + b * positions_stride, targets + b * targets_stride, scratch,
                         out_positions + b * J * 3, iterations + b, converged + b);
    if (!ok || !all_finite(out_positions + begin * J * 3, (end - begin) * J * 3))
      finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

template bool two_bone_ik<float>(const float*, int64_t, const float*, int64_t, const float*, int64_t, const float*,
                                 int64_t, const float*, int64_t, int64_t, float*, float*, float*, float*);
template bool two_bone_ik<double>(const double*, int64_t, const double*, int64_t, const double*, int64_t,
                                  const double*, int64_t, const double*, int64_t, int64_t, double*, double*, double*,
                                  double*);
template bool fabrik<float>(const int32_t*, int64_t, const int32_t*, int64_t, const float*, int64_t, const float*,
                            int64_t, int64_t, const FabrikOptions<float>&, float*, int32_t*, uint8_t*);
template bool fabrik<double>(const int32_t*, int64_t, const int32_t*, int64_t, const double*, int64_t, const double*,
                             int64_t, int64_t, const FabrikOptions<double>&, double*, int32_t*, uint8_t*);

}  // namespace fastkin
