// Levenberg-Marquardt IK (see fastkin/ik_solve.h for the parametrisation):
// one frame at a time, frames spread over the thread pool.
#include "fastkin/ik_solve.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fastkin/parallel.h"

namespace fastkin {
namespace {

// -- 3x3 and 3-vector helpers (row-major) ---------------------------------------------------------

// Small fixed-size helpers, called in the innermost loops: always inlined.
#define FASTKIN_INLINE inline __attribute__((always_inline))

template <class T>
FASTKIN_INLINE void mul(const T* a, const T* b, T* out) {  // out = a b (out must not alias)
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) out[3 * i + k] = a[3 * i] * b[k] + a[3 * i + 1] * b[3 + k] + a[3 * i + 2] * b[6 + k];
}
template <class T>
FASTKIN_INLINE void mul_at_b(const T* a, const T* b, T* out) {  // out = aᵀ b
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) out[3 * i + k] = a[i] * b[k] + a[3 + i] * b[3 + k] + a[6 + i] * b[6 + k];
}
template <class T>
FASTKIN_INLINE void mul_a_bt(const T* a, const T* b, T* out) {  // out = a bᵀ
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k)
      out[3 * i + k] = a[3 * i] * b[3 * k] + a[3 * i + 1] * b[3 * k + 1] + a[3 * i + 2] * b[3 * k + 2];
}
template <class T>
FASTKIN_INLINE void apply(const T* m, const T* v, T* out) {  // out = m v
  for (int i = 0; i < 3; ++i) out[i] = m[3 * i] * v[0] + m[3 * i + 1] * v[1] + m[3 * i + 2] * v[2];
}
template <class T>
FASTKIN_INLINE void apply_t(const T* m, const T* v, T* out) {  // out = mᵀ v
  for (int i = 0; i < 3; ++i) out[i] = m[i] * v[0] + m[3 + i] * v[1] + m[6 + i] * v[2];
}
template <class T>
FASTKIN_INLINE void cross(const T* a, const T* b, T* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}
template <class T>
FASTKIN_INLINE T dot(const T* a, const T* b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

// Rotation matrix exp([v]x) (Rodrigues; series near zero).
template <class T>
FASTKIN_INLINE void exp_map(const T* v, T* r) {
  const T t2 = dot(v, v);
  T a, b;
  if (t2 < T(1e-4)) {  // series to the rounding floor of double: the late, small steps skip sin and cos
    a = T(1) - t2 / T(6) * (T(1) - t2 / T(20) * (T(1) - t2 / T(42)));
    b = T(0.5) - t2 / T(24) * (T(1) - t2 / T(30) * (T(1) - t2 / T(56)));
  } else {
    const T t = std::sqrt(t2);
    a = std::sin(t) / t;
    b = (T(1) - std::cos(t)) / t2;
  }
  const T x = v[0], y = v[1], z = v[2];
  r[0] = T(1) - b * (y * y + z * z);
  r[1] = -a * z + b * x * y;
  r[2] = a * y + b * x * z;
  r[3] = a * z + b * x * y;
  r[4] = T(1) - b * (x * x + z * z);
  r[5] = -a * x + b * y * z;
  r[6] = -a * y + b * x * z;
  r[7] = a * x + b * y * z;
  r[8] = T(1) - b * (x * x + y * y);
}

// xyzw unit quaternion (w >= 0) of a rotation matrix, by the best
// conditioned of Shepperd's four formulas.
template <class T>
FASTKIN_INLINE void matrix_to_quat(const T* m, T* q) {
  const T trace = m[0] + m[4] + m[8];
  if (trace >= m[0] && trace >= m[4] && trace >= m[8]) {
    const T s = T(2) * std::sqrt(std::max(T(1) + trace, T(0)));
    q[3] = s / 4;
    q[0] = (m[7] - m[5]) / s;
    q[1] = (m[2] - m[6]) / s;
    q[2] = (m[3] - m[1]) / s;
  } else {
    const int a = m[0] >= m[4] && m[0] >= m[8] ? 0 : (m[4] >= m[8] ? 1 : 2);
    const int b = (a + 1) % 3, c = (a + 2) % 3;
    const T s = T(2) * std::sqrt(std::max(T(1) + m[4 * a] - m[4 * b] - m[4 * c], T(0)));
    q[a] = s / 4;
    q[3] = (m[3 * c + b] - m[3 * b + c]) / s;
    q[b] = (m[3 * b + a] + m[3 * a + b]) / s;
    q[c] = (m[3 * c + a] + m[3 * a + c]) / s;
  }
  if (q[3] < 0)
    for (int i = 0; i < 4; ++i) q[i] = -q[i];
}

// Rotation matrix of the xyzw quaternion q / |q|.
template <class T>
FASTKIN_INLINE void quat_to_matrix(const T* q, T* m) {
  const T x = q[0], y = q[1], z = q[2], w = q[3];
  const T s = T(2) / (x * x + y * y + z * z + w * w);
  m[0] = T(1) - s * (y * y + z * z), m[1] = s * (x * y - w * z), m[2] = s * (x * z + w * y);
  m[3] = s * (x * y + w * z), m[4] = T(1) - s * (x * x + z * z), m[5] = s * (y * z - w * x);
  m[6] = s * (x * z - w * y), m[7] = s * (y * z + w * x), m[8] = T(1) - s * (x * x + y * y);
}

// Rotation vector of a rotation matrix, through its quaternion: accurate up
// to and including 180 degrees.
template <class T>
FASTKIN_INLINE void log_map(const T* m, T* v) {
  T q[4];
  matrix_to_quat(m, q);
  const T n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
  // angle / sin(angle / 2), with its series where n is tiny
  const T scale = n < T(1e-6) ? T(2) / q[3] * (T(1) - n * n / (T(3) * q[3] * q[3])) : T(2) * std::atan2(n, q[3]) / n;
  for (int i = 0; i < 3; ++i) v[i] = scale * q[i];
}

// Lower Cholesky factor of a symmetric 3x3, in place (reads the lower
// triangle). The unused upper triangle keeps the reciprocals of the
// diagonal, so the solves below multiply instead of divide. False if not
// positive definite.
template <class T>
FASTKIN_INLINE bool cholesky3(T* a) {
  if (!(a[0] > 0)) return false;
  const T c00 = std::sqrt(a[0]), i00 = T(1) / c00;
  const T c10 = a[3] * i00, c20 = a[6] * i00;
  const T d11 = a[4] - c10 * c10;
  if (!(d11 > 0)) return false;
  const T c11 = std::sqrt(d11), i11 = T(1) / c11;
  const T c21 = (a[7] - c20 * c10) * i11;
  const T d22 = a[8] - c20 * c20 - c21 * c21;
  if (!(d22 > 0)) return false;
  const T c22 = std::sqrt(d22);
  a[0] = c00, a[1] = i00, a[2] = i11;
  a[3] = c10, a[4] = c11, a[5] = T(1) / c22;
  a[6] = c20, a[7] = c21, a[8] = c22;
  return true;
}
template <class T>
FASTKIN_INLINE void solve_lower(const T* c, T* v) {  // v <- c⁻¹ v
  v[0] = v[0] * c[1];
  v[1] = (v[1] - c[3] * v[0]) * c[2];
  v[2] = (v[2] - c[6] * v[0] - c[7] * v[1]) * c[5];
}
template <class T>
FASTKIN_INLINE void solve_upper(const T* c, T* v) {  // v <- c⁻ᵀ v
  v[2] = v[2] * c[5];
  v[1] = (v[1] - c[7] * v[2]) * c[2];
  v[0] = (v[0] - c[3] * v[1] - c[6] * v[2]) * c[1];
}

// A step that lowers the cost by less than this fraction ends the solve:
// the targets cannot be met exactly (noise, out of reach) and the pose is
// as good as it gets. Exact fits never trigger it: their cost falls by
// large fractions until the tolerance is met.
template <class T>
constexpr T kStationary = sizeof(T) == 4 ? T(1e-6) : T(1e-10);

// The state of one frame and everything derived from it.
template <class T>
struct State {
  std::vector<T> local, world, position;  // (J, 9), (J, 9), (J, 3)
  T root[3];
  T cost = 0;
  T error = 0;  // largest target distance
};

template <class T>
class Solver {
 public:
  // Prepares for the frames of problem p. A Solver is kept per thread and
  // reused, so a call allocates nothing once the thread has seen a
  // skeleton this size.
  void reset(const IkProblem<T>& p) {
    p_ = &p;
    J_ = p.num_joints;
    for (auto* v : {&inertia_, &articulated_}) v->resize((J_ + 1) * 36);
    for (auto* v : {&linear_, &bias_, &gradient6_}) v->resize((J_ + 1) * 6);
    for (auto* v : {&g_, &x_}) v->resize((J_ + 1) * 3);
    factor_.resize(J_ * 9);
    torque_.resize(J_ * 3);
    pull_.resize(J_ * 3);
    pull_curvature_.assign(J_ * 9, T(0));
    twist_.resize(J_ * 6);
    for (State<T>* s : {&now_, &next_}) {
      s->local.resize(J_ * 9);
      s->world.resize(J_ * 9);
      s->position.resize(J_ * 3);
    }
    prior_.resize(J_ * 9);
    has_target_.assign(J_, 0);
    for (int64_t t = 0; t < p.num_targets; ++t) has_target_[p.target_joints[t]] = 1;
    first_root_ = 0;
    while (first_root_ < J_ && p.parents[first_root_] >= 0) ++first_root_;
    root_target_ = -1;
    for (int64_t t = p.num_targets; t-- > 0;)
      if (p.target_joints[t] == first_root_) root_target_ = t;
    find_free_rotations();
  }

  // Solves frame b from (start, start_root) in the given form, regularised towards them.
  void solve(int64_t b, const T* start, RotationForm form, const T* start_root, const IkSolution<T>& out) {
    targets_ = p_->targets + b * p_->num_targets * 3;
    orientations_ = p_->orientation_targets ? p_->orientation_targets + b * p_->num_targets * 9 : nullptr;
    for (int64_t j = 0; j < J_; ++j) {
      if (form == RotationForm::Quaternion) {
        quat_to_matrix(start + j * 4, &now_.local[j * 9]);
      } else {
        std::copy(start + j * 9, start + j * 9 + 9, &now_.local[j * 9]);
      }
    }
    std::copy(now_.local.begin(), now_.local.end(), prior_.begin());
    if (start_root) {
      std::copy(start_root, start_root + 3, now_.root);
    } else {  // the first root's target minus its offset, when it has one
      for (int i = 0; i < 3; ++i)
        now_.root[i] = root_target_ < 0 ? T(0) : targets_[root_target_ * 3 + i] - p_->offsets[first_root_ * 3 + i];
    }
    std::copy(now_.root, now_.root + 3, prior_root_);
    project(now_);
    evaluate(now_);
    int iterations = 0;
    bool converged = now_.error <= p_->tol;
    T mu = -1, nu = 2;
    while (!converged && iterations < p_->max_iters && std::isfinite(now_.cost)) {
      ++iterations;
      build_model(now_);
      if (mu < 0) {  // small against the largest possible curvature: nearly Gauss-Newton
        T total = 0;
        for (int64_t t = 0; t < p_->num_targets; ++t) total += p_->target_weights ? p_->target_weights[t] : T(1);
        mu = T(1e-6) * std::max(total * (reach_ * reach_ + T(1)), std::numeric_limits<T>::min());
      }
      bool stepped = false, stationary = false;
      while (!stepped) {
        if (!step(mu)) {  // the damped matrix was not positive definite
          mu *= nu, nu *= 2;
          if (nu > T(1e30)) break;
          continue;
        }
        // How far the step moves any joint, at most: a turn of t radians
        // moves points within reach r of the joint by t r.
        T turn = 0, shift = 0, predicted = 0;
        for (int64_t i = 0; i < (J_ + 1) * 3; ++i) {
          (i < J_ * 3 ? turn : shift) = std::max(i < J_ * 3 ? turn : shift, std::abs(x_[i]));
          predicted += T(0.5) * x_[i] * (mu * x_[i] - g_[i]);
        }
        if (turn * reach_ + shift <= T(1e-3) * p_->tol || !(predicted > 0)) {
          stationary = true;
          break;
        }
        take_step(now_, next_);
        const T gain = (now_.cost - next_.cost) / predicted;
        if (gain > 0 && std::isfinite(next_.cost)) {
          const T relative = (now_.cost - next_.cost) / std::max(now_.cost, std::numeric_limits<T>::min());
          std::swap(now_, next_);
          const T shrink = T(1) - std::pow(T(2) * gain - T(1), T(3));
          mu *= std::max(T(1) / T(3), shrink);
          nu = 2;
          stepped = true;
          if (relative <= kStationary<T>) stationary = true;
        } else {
          mu *= nu, nu *= 2;
          if (nu > T(1e30)) {
            stationary = true;  // no descent direction left: a (local) minimum
            break;
          }
        }
      }
      converged = now_.error <= p_->tol || stationary;
      if (!stepped && !stationary) break;  // could not factor even heavily damped: give up, flagged
    }
    keep_free_parts_of_start(now_);
    for (int64_t j = 0; j < J_; ++j) matrix_to_quat(&now_.local[j * 9], out.rotations + (b * J_ + j) * 4);
    std::copy(now_.root, now_.root + 3, out.root_translation + b * 3);
    out.error[b] = now_.error;
    out.iterations[b] = iterations;
    out.converged[b] = converged && std::isfinite(now_.cost) ? 1 : 0;
  }

  void set_reach(T reach) { reach_ = reach; }

  // Which rotations the targets leave free (they do not depend on the frame).
  void find_free_rotations() {
    // Targets strictly below / at or below each joint; children holding targets.
    std::vector<uint8_t>& position_below = position_below_;
    std::vector<uint8_t>& orientation_at = orientation_at_;
    std::vector<int32_t>& targeted_children = targeted_children_;
    position_below.assign(J_, 0);
    orientation_at.assign(J_, 0);
    targeted_children.assign(J_, 0);
    for (int64_t t = 0; t < p_->num_targets; ++t) {
      const int32_t k = p_->target_joints[t];
      if (p_->parents[k] >= 0) position_below[p_->parents[k]] = 1;
      if (p_->orientation_targets) orientation_at[k] = 1;
    }
    free_child_.assign(J_, -1);
    pass_through_.assign(J_, 1);  // until a targeted child with a bone is found
    for (int64_t j = J_; j-- > 0;) {
      const int32_t parent = p_->parents[j];
      if (parent < 0) continue;
      if (position_below[j]) position_below[parent] = 1;
      orientation_at[parent] |= orientation_at[j];
      if (position_below[j] || has_target_[j]) {
        ++targeted_children[parent];
        free_child_[parent] = static_cast<int32_t>(j);
        const T* o = p_->offsets + j * 3;
        if (dot(o, o) > T(0)) pass_through_[parent] = 0;
      }
    }
    whole_free_.assign(J_, 0);
    for (int64_t j = 0; j < J_; ++j) {
      const bool pinned = orientation_at[j] || p_->limits;
      whole_free_[j] = !pinned && !position_below[j];
      pass_through_[j] = pass_through_[j] && !pinned && targeted_children[j] > 0;
      if (pinned || targeted_children[j] != 1 || pass_through_[j]) free_child_[j] = -1;  // no single free twist axis
    }
  }

  // A joint whose targeted children all sit on it (zero-length bones, as in
  // CMU skeletons) shares its rotation with them: only the products
  // R_j R_c matter. R_j <- R_j G, R_c <- Gᵀ R_c keeps every product, and G,
  // the rotation nearest to the mean of R_c P_cᵀ over the children (P: the
  // start), keeps the children as near their start as one G can.
  void keep_children_near_start(State<T>& s, int64_t j) const {
    T mean[9] = {};
    for (int64_t c = j + 1; c < J_; ++c) {
      if (p_->parents[c] != j) continue;
      T d[9];
      mul_a_bt(&s.local[c * 9], &prior_[c * 9], d);
      for (int i = 0; i < 9; ++i) mean[i] += d[i];
    }
    T g[9];
    if (!nearest_rotation(mean, g)) return;  // the children's turns cancel: leave them
    T out[9];
    mul(&s.local[j * 9], g, out);
    std::copy(out, out + 9, &s.local[j * 9]);
    for (int64_t c = j + 1; c < J_; ++c) {
      if (p_->parents[c] != j) continue;
      mul_at_b(g, &s.local[c * 9], out);
      std::copy(out, out + 9, &s.local[c * 9]);
    }
  }

  // The rotation nearest to m (its polar factor) by Newton's iteration
  // Q <- (Q + Q⁻ᵀ) / 2. False when m is (nearly) singular or a reflection.
  static bool nearest_rotation(const T* m, T* q) {
    std::copy(m, m + 9, q);
    for (int iteration = 0; iteration < 30; ++iteration) {
      const T det = q[0] * (q[4] * q[8] - q[5] * q[7]) - q[1] * (q[3] * q[8] - q[5] * q[6]) +
                    q[2] * (q[3] * q[7] - q[4] * q[6]);
      if (!(det > T(1e-12) * (dot(q, q) + dot(q + 3, q + 3) + dot(q + 6, q + 6)))) return false;
      // Q⁻ᵀ = cofactor(Q) / det
      const T cof[9] = {q[4] * q[8] - q[5] * q[7], q[5] * q[6] - q[3] * q[8], q[3] * q[7] - q[4] * q[6],
                        q[2] * q[7] - q[1] * q[8], q[0] * q[8] - q[2] * q[6], q[1] * q[6] - q[0] * q[7],
                        q[1] * q[5] - q[2] * q[4], q[2] * q[3] - q[0] * q[5], q[0] * q[4] - q[1] * q[3]};
      T change = 0;
      for (int i = 0; i < 9; ++i) {
        const T next = T(0.5) * (q[i] + cof[i] / det);
        change = std::max(change, std::abs(next - q[i]));
        q[i] = next;
      }
      if (change <= T(4) * std::numeric_limits<T>::epsilon()) return true;
    }
    return true;
  }

  // Where the targets leave a rotation free, the start's is kept: a joint
  // with no target below it keeps its start rotation; a joint whose targets
  // all hang off one child keeps its start twist about that child's bone
  // (the child is counter-rotated, so no joint moves). The solve itself
  // only moves such directions incidentally.
  void keep_free_parts_of_start(State<T>& s) const {
    for (int64_t j = 0; j < J_; ++j) {
      T* r = &s.local[j * 9];
      if (whole_free_[j]) {
        std::copy(&prior_[j * 9], &prior_[j * 9] + 9, r);
        continue;
      }
      if (pass_through_[j]) {
        keep_children_near_start(s, j);
        continue;
      }
      const int32_t c = free_child_[j];
      if (c < 0) continue;
      const T* o = p_->offsets + c * 3;
      const T length = std::sqrt(dot(o, o));
      if (!(length > T(0))) continue;
      const T axis[3] = {o[0] / length, o[1] / length, o[2] / length};
      // Twist of Rᵀ P about the axis (swing-twist decomposition of its quaternion).
      T d[9], q[4];
      mul_at_b(r, &prior_[j * 9], d);
      matrix_to_quat(d, q);
      const T angle = T(2) * std::atan2(dot(axis, q), q[3]);
      if (angle == T(0)) continue;
      T v[3] = {angle * axis[0], angle * axis[1], angle * axis[2]}, turn[9], out[9];
      exp_map(v, turn);
      mul(r, turn, out);
      std::copy(out, out + 9, r);
      mul_at_b(turn, &s.local[c * 9], out);  // the inverse turn is the transpose
      std::copy(out, out + 9, &s.local[c * 9]);
    }
  }

 private:
  // World transforms, residuals and cost of a state.
  void evaluate(State<T>& s) const {
    for (int64_t j = 0; j < J_; ++j) {
      const int32_t parent = p_->parents[j];
      T* w = &s.world[j * 9];
      T* pos = &s.position[j * 3];
      const T* offset = p_->offsets + j * 3;
      if (parent < 0) {
        std::copy(&s.local[j * 9], &s.local[j * 9] + 9, w);
        for (int i = 0; i < 3; ++i) pos[i] = offset[i] + s.root[i];
      } else {
        mul(&s.world[parent * 9], &s.local[j * 9], w);
        apply(&s.world[parent * 9], offset, pos);
        for (int i = 0; i < 3; ++i) pos[i] += s.position[parent * 3 + i];
      }
    }
    T cost = 0, error = 0;
    for (int64_t t = 0; t < p_->num_targets; ++t) {
      const int32_t k = p_->target_joints[t];
      T r[3];
      for (int i = 0; i < 3; ++i) r[i] = s.position[k * 3 + i] - targets_[t * 3 + i];
      const T n2 = dot(r, r), n = std::sqrt(n2);
      const T w = p_->target_weights ? p_->target_weights[t] : T(1);
      error = std::max(error, n);
      cost += w * (p_->huber_delta > 0 && n > p_->huber_delta ? p_->huber_delta * (n - T(0.5) * p_->huber_delta)
                                                             : T(0.5) * n2);
      if (orientations_) {
        T e[3];
        orientation_residual(s, t, e);
        cost += T(0.5) * p_->orientation_weight * w * dot(e, e);
      }
    }
    if (p_->regularization > 0) {
      for (int64_t j = 0; j < J_; ++j) {
        T d[9], e[3];
        mul_at_b(&prior_[j * 9], &s.local[j * 9], d);
        log_map(d, e);
        cost += T(0.5) * p_->regularization * dot(e, e);
      }
    }
    if (p_->root_regularization > 0 && !p_->fixed_root) {
      T d[3];
      for (int i = 0; i < 3; ++i) d[i] = s.root[i] - prior_root_[i];
      cost += T(0.5) * p_->root_regularization * dot(d, d);
    }
    s.cost = cost;
    s.error = error;
  }

  // log(W_k Oᵀ): the world rotation taking target orientation O to joint k's.
  void orientation_residual(const State<T>& s, int64_t t, T* e) const {
    T d[9];
    mul_a_bt(&s.world[p_->target_joints[t] * 9], orientations_ + t * 9, d);
    log_map(d, e);
  }

  // The Gauss-Newton model at state s as an articulated-body problem.
  //
  // Each joint j carries a body (j's frame, on which j's children sit)
  // whose small motion is a twist V_j = (rotation, velocity of the point
  // p_j), V_j = X_j V_parent + (w_j, 0) with X_j moving the parent's twist
  // to p_j. A position target at joint k sits on k's parent's body (the
  // base, a pure root translation, for roots): its residual changes by
  // [-[p_k - p_body]x | I] V. An orientation target sits on k's own body:
  // [I | 0] V. So the cost is a sum over bodies of quadratics in V (6x6
  // "inertias" I_j, linear terms b_j), and minimising over the w_j is
  // Featherstone's articulated-body recursion: O(J) 6x6 work per iteration.
  void build_model(const State<T>& s) {
    positions_ = s.position.data();
    std::fill(inertia_.begin(), inertia_.end(), T(0));
    std::fill(linear_.begin(), linear_.end(), T(0));
    for (int64_t t = 0; t < p_->num_targets; ++t) {
      const int32_t k = p_->target_joints[t];
      const T* pk = &s.position[k * 3];
      T r[3];
      for (int i = 0; i < 3; ++i) r[i] = pk[i] - targets_[t * 3 + i];
      const T weight = p_->target_weights ? p_->target_weights[t] : T(1);
      T w = weight;
      if (p_->huber_delta > 0) {
        const T n = std::sqrt(dot(r, r));
        if (n > p_->huber_delta) w *= p_->huber_delta / n;  // Huber as reweighted least squares
      }
      const int32_t parent = p_->parents[k];
      const int64_t body = parent < 0 ? J_ : parent;
      T e[3] = {0, 0, 0};  // lever from the body's origin (the base has no rotation: none)
      if (parent >= 0)
        for (int i = 0; i < 3; ++i) e[i] = pk[i] - s.position[parent * 3 + i];
      add_point(&inertia_[body * 36], &linear_[body * 6], e, r, w);
      if (orientations_) {
        T o[3];
        orientation_residual(s, t, o);
        const T wo = p_->orientation_weight * weight;
        T* m = &inertia_[k * 36];
        for (int i = 0; i < 3; ++i) {
          m[7 * i] += wo;
          linear_[k * 6 + i] += wo * o[i];
        }
      }
    }
    // Regularisation of each local rotation, e = log(P_jᵀ R_j): moving w_j
    // changes e by J_r⁻¹(e) W_jᵀ w_j (J_r: the right Jacobian of SO(3)), so
    // the gradient is λ W_j e (J_r⁻ᵀ e = e) and the curvature
    // λ W_j J_r⁻ᵀ J_r⁻¹ W_jᵀ, exact for large e too.
    std::fill(pull_.begin(), pull_.end(), T(0));
    if (p_->regularization > 0) {
      for (int64_t j = 0; j < J_; ++j) {
        T d[9], e[3];
        mul_at_b(&prior_[j * 9], &s.local[j * 9], d);
        log_map(d, e);
        apply(&s.world[j * 9], e, &pull_[j * 3]);
        for (int i = 0; i < 3; ++i) pull_[j * 3 + i] *= p_->regularization;
        // J_r⁻¹(e) = I + ½[e]x + c [e]x², c = 1/θ² - (1 + cos θ) / (2 θ sin θ) (1/12 near 0).
        const T t2 = dot(e, e), t = std::sqrt(t2);
        const T c = t < T(1e-4) ? T(1) / T(12) + t2 / T(720) : T(1) / t2 - (T(1) + std::cos(t)) / (T(2) * t * std::sin(t));
        const T ex[9] = {0, -e[2], e[1], e[2], 0, -e[0], -e[1], e[0], 0};
        T ex2[9], inverse[9], jtj[9], wj[9];
        mul(ex, ex, ex2);
        for (int i = 0; i < 9; ++i) inverse[i] = (i % 4 == 0 ? T(1) : T(0)) + T(0.5) * ex[i] + c * ex2[i];
        mul_at_b(inverse, inverse, jtj);
        mul(&s.world[j * 9], jtj, wj);
        mul_a_bt(wj, &s.world[j * 9], &pull_curvature_[j * 9]);
        for (int i = 0; i < 9; ++i) pull_curvature_[j * 9 + i] *= p_->regularization;
      }
    }
    // The plain gradient (for the predicted decrease): G_j = b_j + sum over
    // children of X_cᵀ G_c; g(w_j) = rotation part of G_j.
    std::copy(linear_.begin(), linear_.end(), gradient6_.begin());
    for (int64_t j = J_; j-- > 0;) {
      const int32_t parent = p_->parents[j];
      const T* G = &gradient6_[j * 6];
      for (int i = 0; i < 3; ++i) g_[j * 3 + i] = G[i] + pull_[j * 3 + i];
      if (parent < 0) {
        for (int i = 0; i < 3; ++i) gradient6_[J_ * 6 + 3 + i] += G[3 + i];
      } else {
        T d[3], dv[3];
        for (int i = 0; i < 3; ++i) d[i] = s.position[j * 3 + i] - s.position[parent * 3 + i];
        cross(d, G + 3, dv);  // X_cᵀ (f, v) = (f + d x v, v)
        T* P = &gradient6_[parent * 6];
        for (int i = 0; i < 3; ++i) P[i] += G[i] + dv[i], P[3 + i] += G[3 + i];
      }
    }
    for (int i = 0; i < 3; ++i) {
      root_pull_[i] = p_->fixed_root ? T(0) : p_->root_regularization * (s.root[i] - prior_root_[i]);
      g_[J_ * 3 + i] = p_->fixed_root ? T(0) : gradient6_[J_ * 6 + 3 + i] + root_pull_[i];
    }
  }

  // m += w Aᵀ A, b += w Aᵀ r for A = [-[e]x | I] (a point at lever e).
  static void add_point(T* m, T* b, const T* e, const T* r, T w) {
    // Aᵀ A: top-left [e]xᵀ [e]x = |e|² I - e eᵀ, top-right [e]x, bottom-right I.
    const T ee = dot(e, e);
    for (int i = 0; i < 3; ++i)
      for (int c = 0; c < 3; ++c) m[6 * i + c] += w * ((i == c ? ee : T(0)) - e[i] * e[c]);
    const T ex[9] = {0, -e[2], e[1], e[2], 0, -e[0], -e[1], e[0], 0};  // [e]x
    for (int i = 0; i < 3; ++i)
      for (int c = 0; c < 3; ++c) {
        m[6 * i + 3 + c] += w * ex[3 * i + c];    // (-[e]x)ᵀ I = [e]x
        m[6 * (3 + i) + c] += w * ex[3 * c + i];  // its transpose
      }
    for (int i = 0; i < 3; ++i) m[7 * (3 + i)] += w;
    T er[3];
    cross(e, r, er);  // (-[e]x)ᵀ r = e x r
    for (int i = 0; i < 3; ++i) b[i] += w * er[i], b[3 + i] += w * r[i];
  }

  // Solves the damped model (H + mu I) x = -g by the articulated-body
  // recursion. False when a damped block is not positive definite.
  bool step(T mu) {
    std::copy(inertia_.begin(), inertia_.end(), articulated_.begin());
    std::copy(linear_.begin(), linear_.end(), bias_.begin());
    for (int64_t j = J_; j-- > 0;) {
      T* M = &articulated_[j * 36];
      T* b = &bias_[j * 6];
      // With M = [[A, B], [Bᵀ, C]] (3x3 blocks; S = [I; 0] picks the rotation)
      // and L the rotation's own damping (regularisation curvature + mu I),
      // D = A + L. Eliminating w_j leaves the parent the Schur complement
      //   A - A D⁻¹ A = L - L D⁻¹ L,   B - A D⁻¹ B = L D⁻¹ B,   C - Bᵀ D⁻¹ B,
      // (A = D - L), which is cheaper and free of A's cancellation.
      T A[9], B[9], C[9], L[9];
      for (int i = 0; i < 3; ++i)
        for (int c = 0; c < 3; ++c) {
          A[3 * i + c] = M[6 * i + c];
          B[3 * i + c] = M[6 * i + 3 + c];
          C[3 * i + c] = M[6 * (3 + i) + 3 + c];
          L[3 * i + c] = pull_curvature_[j * 9 + 3 * i + c] + (i == c ? mu : T(0));
        }
      T factor[9];
      for (int i = 0; i < 9; ++i) factor[i] = A[i] + L[i];
      if (!cholesky3(factor)) return false;
      T* Dinv = &factor_[j * 9];  // kept for the forward pass
      for (int c = 0; c < 3; ++c) {
        T e[3] = {T(c == 0), T(c == 1), T(c == 2)};
        solve_lower(factor, e);
        solve_upper(factor, e);
        for (int i = 0; i < 3; ++i) Dinv[3 * i + c] = e[i];
      }
      T* u = &torque_[j * 3];
      for (int i = 0; i < 3; ++i) u[i] = b[i] + pull_[j * 3 + i];
      T Y[9], Du[3], BtDu[3], LDu[3], LDL[9], LY[9], BtY[9];
      mul(Dinv, B, Y);       // D⁻¹ B
      apply(Dinv, u, Du);    // D⁻¹ u
      apply_t(B, Du, BtDu);  // Bᵀ D⁻¹ u
      mul_at_b(B, Y, BtY);
      if (p_->regularization > 0) {
        T LDinv[9];
        mul(L, Dinv, LDinv);
        mul(LDinv, L, LDL);
        mul(L, Y, LY);
        apply(L, Du, LDu);
      } else {  // L = mu I: scalar products
        for (int i = 0; i < 9; ++i) LDL[i] = mu * mu * Dinv[i], LY[i] = mu * Y[i];
        for (int i = 0; i < 3; ++i) LDu[i] = mu * Du[i];
      }
      T rb[6];
      for (int i = 0; i < 9; ++i) {
        A[i] = L[i] - LDL[i];
        B[i] = LY[i];
        C[i] -= BtY[i];
      }
      for (int i = 0; i < 3; ++i) {
        rb[i] = b[i] - u[i] + LDu[i];  // b - A D⁻¹ u with A D⁻¹ = I - L D⁻¹
        rb[3 + i] = b[3 + i] - BtDu[i];
      }
      const int32_t parent = p_->parents[j];
      if (parent < 0) {  // the base only translates: keep the velocity-velocity part
        T* P = &articulated_[J_ * 36];
        for (int i = 0; i < 3; ++i) {
          for (int c = 0; c < 3; ++c) P[6 * (3 + i) + 3 + c] += C[3 * i + c];
          bias_[J_ * 6 + 3 + i] += rb[3 + i];
        }
        continue;
      }
      // Xᵀ reduced X, Xᵀ rb with X = [[I, 0], [-[d]x, I]], d = p_j - p_parent.
      // With the reduced inertia [[A, B], [Bᵀ, C]] that is
      // [[A - B[d]x + [d]xBᵀ - [d]xC[d]x, B + [d]xC], [(B + [d]xC)ᵀ, C]];
      // each product with [d]x is three cross products (b[d]x = b x d for a row b).
      T d[3];
      for (int i = 0; i < 3; ++i) d[i] = positions_[j * 3 + i] - positions_[parent * 3 + i];
      T* P = &articulated_[parent * 36];
      T* pb = &bias_[parent * 6];
      T Bd[9], dC[9], dCd[9];  // rows of B x d; columns d x C (stored by column); rows of ([d]xC) x d
      for (int i = 0; i < 3; ++i) {
        cross(&B[3 * i], d, &Bd[3 * i]);        // row i of B[d]x
        const T column[3] = {C[i], C[3 + i], C[6 + i]};
        cross(d, column, &dC[3 * i]);          // column i of [d]xC
      }
      T dC_rows[9];  // [d]xC row-major
      for (int i = 0; i < 3; ++i)
        for (int c = 0; c < 3; ++c) dC_rows[3 * i + c] = dC[3 * c + i];
      for (int i = 0; i < 3; ++i) cross(&dC_rows[3 * i], d, &dCd[3 * i]);  // row i of [d]xC[d]x
      // [d]xBᵀ = -(B[d]x)ᵀ
      for (int i = 0; i < 3; ++i)
        for (int c = 0; c < 3; ++c) {
          const int ic = 3 * i + c;
          P[6 * i + c] += A[ic] - Bd[ic] - Bd[3 * c + i] - dCd[ic];
          const T top = B[ic] + dC_rows[ic];
          P[6 * i + 3 + c] += top;
          P[6 * (3 + c) + i] += top;
          P[6 * (3 + i) + 3 + c] += C[ic];
        }
      T dv[3];
      cross(d, rb + 3, dv);
      for (int i = 0; i < 3; ++i) pb[i] += rb[i] + dv[i], pb[3 + i] += rb[3 + i];
    }
    // The root translation: minimise ½ tᵀ (C + (λ_t + mu) I) t + (b + pull)ᵀ t.
    T base[6] = {0, 0, 0, 0, 0, 0};
    if (!p_->fixed_root) {
      T C[9], t[3];
      const T* P = &articulated_[J_ * 36];
      for (int i = 0; i < 3; ++i)
        for (int c = 0; c < 3; ++c) C[3 * i + c] = P[6 * (3 + i) + 3 + c] + (i == c ? p_->root_regularization + mu : T(0));
      if (!cholesky3(C)) return false;
      for (int i = 0; i < 3; ++i) t[i] = -(bias_[J_ * 6 + 3 + i] + root_pull_[i]);
      solve_lower(C, t);
      solve_upper(C, t);
      for (int i = 0; i < 3; ++i) base[3 + i] = x_[J_ * 3 + i] = t[i];
    } else {
      for (int i = 0; i < 3; ++i) x_[J_ * 3 + i] = 0;
    }
    // Forward: w_j = -D⁻¹ (Uᵀ X V_parent + u), V_j = X V_parent + (w_j, 0).
    for (int64_t j = 0; j < J_; ++j) {
      const int32_t parent = p_->parents[j];
      T V[6];
      if (parent < 0) {
        std::copy(base, base + 6, V);
      } else {
        const T* Vp = &twist_[parent * 6];
        T d[3], wd[3];
        for (int i = 0; i < 3; ++i) d[i] = positions_[j * 3 + i] - positions_[parent * 3 + i];
        cross(Vp, d, wd);  // v_j = v_p + w_p x d
        for (int i = 0; i < 3; ++i) V[i] = Vp[i], V[3 + i] = Vp[3 + i] + wd[i];
      }
      const T* M = &articulated_[j * 36];  // Uᵀ = the rotation rows of j's articulated inertia
      T r[3], w[3];
      for (int i = 0; i < 3; ++i) {
        T s = torque_[j * 3 + i];
        for (int c = 0; c < 6; ++c) s += M[6 * i + c] * V[c];
        r[i] = -s;
      }
      apply(&factor_[j * 9], r, w);  // D⁻¹, kept by the elimination
      for (int i = 0; i < 3; ++i) {
        x_[j * 3 + i] = w[i];
        V[i] += w[i];
      }
      std::copy(V, V + 6, &twist_[j * 6]);
    }
    return true;
  }


  // next = now moved by x: R_j <- R_j exp(W_jᵀ x_j), root += x_root; then limits.
  void take_step(const State<T>& now, State<T>& next) {
    for (int64_t j = 0; j < J_; ++j) {
      T local_step[3], turn[9];
      apply_t(&now.world[j * 9], &x_[j * 3], local_step);
      exp_map(local_step, turn);
      mul(&now.local[j * 9], turn, &next.local[j * 9]);
    }
    for (int i = 0; i < 3; ++i) next.root[i] = now.root[i] + x_[J_ * 3 + i];
    project(next);
    evaluate(next);
  }

  // Clamps each joint's rotation vector relative to rest into its box.
  void project(State<T>& s) const {
    if (!p_->limits) return;
    for (int64_t j = 0; j < J_; ++j) {
      const T* box = p_->limits + j * 6;
      T relative[9], v[3];
      mul_at_b(p_->rest_rotations + j * 9, &s.local[j * 9], relative);
      log_map(relative, v);
      bool clamped = false;
      for (int i = 0; i < 3; ++i) {
        const T c = std::min(std::max(v[i], box[2 * i]), box[2 * i + 1]);
        clamped |= c != v[i];
        v[i] = c;
      }
      if (!clamped) continue;
      exp_map(v, relative);
      mul(p_->rest_rotations + j * 9, relative, &s.local[j * 9]);
    }
  }

  const IkProblem<T>* p_ = nullptr;
  int64_t J_ = 0;
  // Per body (joints, then the base at index J): model inertia and linear
  // term, their articulated versions, and the plain gradient.
  std::vector<T> inertia_, articulated_, linear_, bias_, gradient6_;
  std::vector<T> g_, x_;                         // gradient and step: w_j per joint, then the root translation
  std::vector<T> factor_, torque_, pull_, pull_curvature_, twist_;  // per joint: D⁻¹, u, pull, its curvature, V
  std::vector<T> prior_;
  std::vector<uint8_t> has_target_, whole_free_, pass_through_;  // per joint
  int64_t first_root_ = 0, root_target_ = -1;       // the first root, and its position target or -1
  std::vector<int32_t> free_child_;              // per joint: the child whose bone its free twist turns about, or -1
  std::vector<uint8_t> position_below_, orientation_at_;  // scratch of find_free_rotations
  std::vector<int32_t> targeted_children_;
  const T* positions_ = nullptr;  // joint positions of the state the model was built at
  T prior_root_[3] = {0, 0, 0};
  T root_pull_[3] = {0, 0, 0};  // gradient of the root translation's regularisation
  State<T> now_, next_;
  const T* targets_ = nullptr;
  const T* orientations_ = nullptr;
  T reach_ = 1;  // largest distance between two joints of the skeleton, at most
};

// This thread's solver (its buffers outlive the call).
template <class T>
Solver<T>& thread_solver() {
  thread_local Solver<T> solver;
  return solver;
}

}  // namespace

template <class T>
void ik_solve(const IkProblem<T>& p, const IkSolution<T>& out) {
  // Step sizes are judged by how far they can move a joint: twice the
  // longest root-to-joint path bounds every lever arm.
  const int64_t J = p.num_joints;
  thread_local std::vector<T> path;
  path.assign(J, T(0));
  T reach = 0;
  for (int64_t j = 0; j < J; ++j) {
    const T* o = p.offsets + j * 3;
    path[j] = (p.parents[j] < 0 ? T(0) : path[p.parents[j]] + std::sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2]));
    reach = std::max(reach, T(2) * path[j]);
  }
  const int64_t rotation_size = p.init_form == RotationForm::Quaternion ? 4 : 9;
  const auto start_of = [&](int64_t b) { return p.init_rotations + (p.init_shared ? 0 : b * J * rotation_size); };
  const auto root_of = [&](int64_t b) -> const T* {
    return p.init_root ? p.init_root + (p.init_shared ? 0 : b * 3) : nullptr;
  };
  if (p.sequential) {
    Solver<T>& solver = thread_solver<T>();
    solver.reset(p);
    solver.set_reach(reach);
    for (int64_t b = 0; b < p.batch; ++b) {
      if (b == 0) {
        solver.solve(b, start_of(0), p.init_form, root_of(0), out);
      } else {
        solver.solve(b, out.rotations + (b - 1) * J * 4, RotationForm::Quaternion, out.root_translation + (b - 1) * 3,
                     out);
      }
    }
    return;
  }
  // A frame costs roughly (targets x depth^2) block updates per iteration.
  parallel_ranges(p.batch, 2048 * std::max<int64_t>(1, p.num_targets), 32768, [&](int64_t begin, int64_t end) {
    Solver<T>& solver = thread_solver<T>();
    solver.reset(p);
    solver.set_reach(reach);
    for (int64_t b = begin; b < end; ++b) solver.solve(b, start_of(b), p.init_form, root_of(b), out);
  });
}

template void ik_solve<float>(const IkProblem<float>&, const IkSolution<float>&);
template void ik_solve<double>(const IkProblem<double>&, const IkSolution<double>&);

}  // namespace fastkin
