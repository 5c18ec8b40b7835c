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

template <class T>
void mul(const T* a, const T* b, T* out) {  // out = a b (out must not alias)
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) out[3 * i + k] = a[3 * i] * b[k] + a[3 * i + 1] * b[3 + k] + a[3 * i + 2] * b[6 + k];
}
template <class T>
void mul_at_b(const T* a, const T* b, T* out) {  // out = aᵀ b
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) out[3 * i + k] = a[i] * b[k] + a[3 + i] * b[3 + k] + a[6 + i] * b[6 + k];
}
template <class T>
void mul_a_bt(const T* a, const T* b, T* out) {  // out = a bᵀ
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k)
      out[3 * i + k] = a[3 * i] * b[3 * k] + a[3 * i + 1] * b[3 * k + 1] + a[3 * i + 2] * b[3 * k + 2];
}
template <class T>
void apply(const T* m, const T* v, T* out) {  // out = m v
  for (int i = 0; i < 3; ++i) out[i] = m[3 * i] * v[0] + m[3 * i + 1] * v[1] + m[3 * i + 2] * v[2];
}
template <class T>
void apply_t(const T* m, const T* v, T* out) {  // out = mᵀ v
  for (int i = 0; i < 3; ++i) out[i] = m[i] * v[0] + m[3 + i] * v[1] + m[6 + i] * v[2];
}
template <class T>
void cross(const T* a, const T* b, T* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}
template <class T>
T dot(const T* a, const T* b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

// Rotation matrix exp([v]x) (Rodrigues; series near zero).
template <class T>
void exp_map(const T* v, T* r) {
  const T t2 = dot(v, v);
  T a, b;
  if (t2 < T(1e-8)) {
    a = T(1) - t2 / T(6);
    b = T(0.5) - t2 / T(24);
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
void matrix_to_quat(const T* m, T* q) {
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
void quat_to_matrix(const T* q, T* m) {
  const T x = q[0], y = q[1], z = q[2], w = q[3];
  const T s = T(2) / (x * x + y * y + z * z + w * w);
  m[0] = T(1) - s * (y * y + z * z), m[1] = s * (x * y - w * z), m[2] = s * (x * z + w * y);
  m[3] = s * (x * y + w * z), m[4] = T(1) - s * (x * x + z * z), m[5] = s * (y * z - w * x);
  m[6] = s * (x * z - w * y), m[7] = s * (y * z + w * x), m[8] = T(1) - s * (x * x + y * y);
}

// Rotation vector of a rotation matrix, through its quaternion: accurate up
// to and including 180 degrees.
template <class T>
void log_map(const T* m, T* v) {
  T q[4];
  matrix_to_quat(m, q);
  const T n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
  // angle / sin(angle / 2), with its series where n is tiny
  const T scale = n < T(1e-6) ? T(2) / q[3] * (T(1) - n * n / (T(3) * q[3] * q[3])) : T(2) * std::atan2(n, q[3]) / n;
  for (int i = 0; i < 3; ++i) v[i] = scale * q[i];
}

// Lower Cholesky factor of a symmetric 3x3 (in place). False if not
// positive definite.
template <class T>
bool cholesky3(T* a) {
  const T l00 = a[0];
  if (!(l00 > 0)) return false;
  const T c00 = std::sqrt(l00);
  const T c10 = a[3] / c00, c20 = a[6] / c00;
  const T d11 = a[4] - c10 * c10;
  if (!(d11 > 0)) return false;
  const T c11 = std::sqrt(d11);
  const T c21 = (a[7] - c20 * c10) / c11;
  const T d22 = a[8] - c20 * c20 - c21 * c21;
  if (!(d22 > 0)) return false;
  const T c22 = std::sqrt(d22);
  a[0] = c00, a[1] = 0, a[2] = 0;
  a[3] = c10, a[4] = c11, a[5] = 0;
  a[6] = c20, a[7] = c21, a[8] = c22;
  return true;
}
template <class T>
void solve_lower(const T* c, T* v) {  // v <- c⁻¹ v
  v[0] = v[0] / c[0];
  v[1] = (v[1] - c[3] * v[0]) / c[4];
  v[2] = (v[2] - c[6] * v[0] - c[7] * v[1]) / c[8];
}
template <class T>
void solve_upper(const T* c, T* v) {  // v <- c⁻ᵀ v
  v[2] = v[2] / c[8];
  v[1] = (v[1] - c[7] * v[2]) / c[4];
  v[0] = (v[0] - c[3] * v[1] - c[6] * v[2]) / c[0];
}

// A step that lowers the cost by less than this fraction ends the solve:
// the targets cannot be met exactly (noise, out of reach) and the pose is
// as good as it gets. Exact fits never trigger it: their cost falls by
// large fractions until the tolerance is met.
template <class T>
constexpr T kStationary = sizeof(T) == 4 ? T(1e-6) : T(1e-10);

// -- the joint tree as the solver sees it ---------------------------------------------------------

// Nodes are the J joints plus, when the root moves, node J: the root
// translation, an ancestor of every root. Node n's chain is n, its parent,
// ..., its root (, node J); the normal matrix keeps one 3x3 block per chain
// entry, block (n, a) = J_nᵀ J_a with a an ancestor-or-self of n.
struct Tree {
  int64_t joints = 0, nodes = 0;
  std::vector<int64_t> depth;        // node J: -1
  std::vector<int64_t> chain_start;  // first block of each node's chain
  std::vector<int64_t> chain;        // node of each block
  int64_t blocks = 0;

  Tree(const int32_t* parents, int64_t J, bool root_moves) : joints(J), nodes(J + (root_moves ? 1 : 0)) {
    depth.assign(nodes, -1);
    chain_start.assign(nodes + 1, 0);
    for (int64_t j = 0; j < J; ++j) depth[j] = parents[j] < 0 ? 0 : depth[parents[j]] + 1;
    for (int64_t n = 0; n < nodes; ++n) {
      chain_start[n] = static_cast<int64_t>(chain.size());
      for (int64_t a = n; a >= 0 && a < J; a = parents[a]) chain.push_back(a);
      if (root_moves) chain.push_back(J);
    }
    chain_start[nodes] = blocks = static_cast<int64_t>(chain.size());
  }
  int64_t length(int64_t n) const { return chain_start[n + 1] - chain_start[n]; }
  // Block (a, b) for b an ancestor-or-self of a.
  int64_t block(int64_t a, int64_t b) const { return chain_start[a] + depth[a] - depth[b]; }
};

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
  Solver(const IkProblem<T>& p, const Tree& tree)
      : p_(p), tree_(tree), J_(p.num_joints), H_(tree.blocks * 9), L_(tree.blocks * 9), g_(tree.nodes * 3),
        x_(tree.nodes * 3), rhs_(tree.nodes * 3), own_(p.num_joints), below_(p.num_joints) {
    for (State<T>* s : {&now_, &next_}) {
      s->local.resize(J_ * 9);
      s->world.resize(J_ * 9);
      s->position.resize(J_ * 3);
    }
    prior_.resize(J_ * 9);
  }

  // Solves frame b from (start, start_root) in the given form, regularised towards them.
  void solve(int64_t b, const T* start, RotationForm form, const T* start_root, const IkSolution<T>& out) {
    targets_ = p_.targets + b * p_.num_targets * 3;
    orientations_ = p_.orientation_targets ? p_.orientation_targets + b * p_.num_targets * 9 : nullptr;
    for (int64_t j = 0; j < J_; ++j) {
      if (form == RotationForm::Quaternion) {
        quat_to_matrix(start + j * 4, &now_.local[j * 9]);
      } else {
        std::copy(start + j * 9, start + j * 9 + 9, &now_.local[j * 9]);
      }
    }
    std::copy(now_.local.begin(), now_.local.end(), prior_.begin());
    std::copy(start_root, start_root + 3, now_.root);
    std::copy(start_root, start_root + 3, prior_root_);
    project(now_);
    evaluate(now_);
    int iterations = 0;
    bool converged = now_.error <= p_.tol;
    T mu = -1, nu = 2;
    while (!converged && iterations < p_.max_iters && std::isfinite(now_.cost)) {
      ++iterations;
      build_normal_equations(now_);
      if (mu < 0) {  // damping starts small against the largest curvature: nearly Gauss-Newton
        T largest = 0;
        for (int64_t n = 0; n < tree_.nodes; ++n)
          for (int i = 0; i < 3; ++i) largest = std::max(largest, H_[tree_.chain_start[n] * 9 + 4 * i]);
        mu = T(1e-6) * std::max(largest, std::numeric_limits<T>::min());
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
        for (int64_t i = 0; i < tree_.nodes * 3; ++i) {
          (i < J_ * 3 ? turn : shift) = std::max(i < J_ * 3 ? turn : shift, std::abs(x_[i]));
          predicted += T(0.5) * x_[i] * (mu * x_[i] - g_[i]);
        }
        if (turn * reach_ + shift <= T(1e-3) * p_.tol || !(predicted > 0)) {
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
      converged = now_.error <= p_.tol || stationary;
      if (!stepped && !stationary) break;  // could not factor even heavily damped: give up, flagged
    }
    for (int64_t j = 0; j < J_; ++j) matrix_to_quat(&now_.local[j * 9], out.rotations + (b * J_ + j) * 4);
    std::copy(now_.root, now_.root + 3, out.root_translation + b * 3);
    out.error[b] = now_.error;
    out.iterations[b] = iterations;
    out.converged[b] = converged && std::isfinite(now_.cost) ? 1 : 0;
  }

  void set_reach(T reach) { reach_ = reach; }

 private:
  // World transforms, residuals and cost of a state.
  void evaluate(State<T>& s) const {
    for (int64_t j = 0; j < J_; ++j) {
      const int32_t parent = p_.parents[j];
      T* w = &s.world[j * 9];
      T* pos = &s.position[j * 3];
      const T* offset = p_.offsets + j * 3;
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
    for (int64_t t = 0; t < p_.num_targets; ++t) {
      const int32_t k = p_.target_joints[t];
      T r[3];
      for (int i = 0; i < 3; ++i) r[i] = s.position[k * 3 + i] - targets_[t * 3 + i];
      const T n2 = dot(r, r), n = std::sqrt(n2);
      const T w = p_.target_weights ? p_.target_weights[t] : T(1);
      error = std::max(error, n);
      cost += w * (p_.huber_delta > 0 && n > p_.huber_delta ? p_.huber_delta * (n - T(0.5) * p_.huber_delta)
                                                             : T(0.5) * n2);
      if (orientations_) {
        T e[3];
        orientation_residual(s, t, e);
        cost += T(0.5) * p_.orientation_weight * w * dot(e, e);
      }
    }
    if (p_.regularization > 0) {
      for (int64_t j = 0; j < J_; ++j) {
        T d[9], e[3];
        mul_at_b(&prior_[j * 9], &s.local[j * 9], d);
        log_map(d, e);
        cost += T(0.5) * p_.regularization * dot(e, e);
      }
    }
    if (p_.root_regularization > 0 && !p_.fixed_root) {
      T d[3];
      for (int i = 0; i < 3; ++i) d[i] = s.root[i] - prior_root_[i];
      cost += T(0.5) * p_.root_regularization * dot(d, d);
    }
    s.cost = cost;
    s.error = error;
  }

  // log(W_k Oᵀ): the world rotation taking target orientation O to joint k's.
  void orientation_residual(const State<T>& s, int64_t t, T* e) const {
    T d[9];
    mul_a_bt(&s.world[p_.target_joints[t] * 9], orientations_ + t * 9, d);
    log_map(d, e);
  }

  // Sums over the targets of a joint or a subtree, from which every
  // normal-matrix block follows in O(1) (see build_normal_equations).
  struct Moments {
    T w = 0;              // position targets: sum of weights
    T p[3] = {0, 0, 0};   // sum of w p_k
    T pp[9] = {};         // sum of w p_k p_kᵀ
    T r[3] = {0, 0, 0};   // sum of w r_t
    T pr[3] = {0, 0, 0};  // sum of w p_k x r_t
    T o = 0;              // orientation targets: sum of weights
    T e[3] = {0, 0, 0};   // sum of w e_t
    void add(const Moments& m) {
      w += m.w, o += m.o;
      for (int i = 0; i < 3; ++i) p[i] += m.p[i], r[i] += m.r[i], pr[i] += m.pr[i], e[i] += m.e[i];
      for (int i = 0; i < 9; ++i) pp[i] += m.pp[i];
    }
  };

  // H = JᵀJ (blocks) and g = Jᵀr at state s (Huber as reweighting).
  //
  // Joint a's rotation moves the position targets strictly below it: with
  // d = p_k - p_a, J_a = -[d]x, so block (a, b) (b above a) is
  // sum_t w [(d_a . d_b) I - d_b d_aᵀ] over those targets, which expands
  // into moments of their positions; g_a = sum w d_a x r
  // = sum w p_k x r - p_a x sum w r. Orientation targets at or below a add
  // w I to every block of a and w e to g_a.
  void build_normal_equations(const State<T>& s) {
    const int64_t root_node = tree_.nodes > J_ ? J_ : -1;
    std::fill(own_.begin(), own_.end(), Moments{});
    for (int64_t t = 0; t < p_.num_targets; ++t) {
      const int32_t k = p_.target_joints[t];
      const T* pk = &s.position[k * 3];
      T r[3];
      for (int i = 0; i < 3; ++i) r[i] = pk[i] - targets_[t * 3 + i];
      const T weight = p_.target_weights ? p_.target_weights[t] : T(1);
      T w = weight;
      if (p_.huber_delta > 0) {
        const T n = std::sqrt(dot(r, r));
        if (n > p_.huber_delta) w *= p_.huber_delta / n;
      }
      Moments& m = own_[k];
      T pr[3];
      cross(pk, r, pr);
      m.w += w;
      for (int i = 0; i < 3; ++i) {
        m.p[i] += w * pk[i], m.r[i] += w * r[i], m.pr[i] += w * pr[i];
        for (int c = 0; c < 3; ++c) m.pp[3 * i + c] += w * pk[i] * pk[c];
      }
      if (orientations_) {
        T e[3];
        orientation_residual(s, t, e);
        const T wo = p_.orientation_weight * weight;
        m.o += wo;
        for (int i = 0; i < 3; ++i) m.e[i] += wo * e[i];
      }
    }
    // below_[j]: position targets strictly below j, orientation targets at or below j.
    for (int64_t j = 0; j < J_; ++j) {
      below_[j] = Moments{};
      below_[j].o = own_[j].o;
      for (int i = 0; i < 3; ++i) below_[j].e[i] = own_[j].e[i];
    }
    Moments all;  // every position target: the root translation's rows
    for (int64_t j = J_; j-- > 0;) {
      Moments up = below_[j];  // j's subtree as its parent sees it: j's own position targets too
      Moments own = own_[j];
      own.o = 0;
      for (int i = 0; i < 3; ++i) own.e[i] = 0;
      up.add(own);
      if (p_.parents[j] >= 0) {
        below_[p_.parents[j]].add(up);
      } else {
        all.add(up);
      }
    }
    for (int64_t a = 0; a < J_; ++a) {
      const Moments& m = below_[a];
      const T* pa = &s.position[a * 3];
      T pa_r[3];
      cross(pa, m.r, pa_r);
      for (int i = 0; i < 3; ++i) g_[a * 3 + i] = m.pr[i] - pa_r[i] + m.e[i];
      const T trace = m.pp[0] + m.pp[4] + m.pp[8];
      for (int64_t ib = tree_.chain_start[a]; ib < tree_.chain_start[a + 1]; ++ib) {
        const int64_t b = tree_.chain[ib];
        T* h = &H_[ib * 9];
        if (b == root_node) {  // J_aᵀ I summed: [sum w (p_k - p_a)]x
          T d[3];
          for (int i = 0; i < 3; ++i) d[i] = m.p[i] - m.w * pa[i];
          h[0] = 0, h[1] = -d[2], h[2] = d[1];
          h[3] = d[2], h[4] = 0, h[5] = -d[0];
          h[6] = -d[1], h[7] = d[0], h[8] = 0;
          continue;
        }
        const T* pb = &s.position[b * 3];
        const T diagonal = trace - dot(pa, m.p) - dot(pb, m.p) + m.w * dot(pa, pb) + m.o;
        for (int i = 0; i < 3; ++i)
          for (int c = 0; c < 3; ++c)
            h[3 * i + c] = (i == c ? diagonal : T(0)) -
                           (m.pp[3 * i + c] - pb[i] * m.p[c] - m.p[i] * pa[c] + m.w * pb[i] * pa[c]);
      }
    }
    if (root_node >= 0) {
      T* h = &H_[tree_.chain_start[root_node] * 9];
      for (int i = 0; i < 9; ++i) h[i] = 0;
      for (int i = 0; i < 3; ++i) {
        h[4 * i] = all.w;
        g_[root_node * 3 + i] = all.r[i];
      }
    }
    if (p_.regularization > 0) {
      // log(Pᵀ R_j exp(W_jᵀ w)) ~ e + W_jᵀ w: J = W_jᵀ, JᵀJ = I.
      for (int64_t j = 0; j < J_; ++j) {
        T d[9], e[3], we[3];
        mul_at_b(&prior_[j * 9], &s.local[j * 9], d);
        log_map(d, e);
        apply(&s.world[j * 9], e, we);
        T* h = &H_[tree_.chain_start[j] * 9];
        for (int i = 0; i < 3; ++i) {
          g_[j * 3 + i] += p_.regularization * we[i];
          h[4 * i] += p_.regularization;
        }
      }
    }
    if (p_.root_regularization > 0 && root_node >= 0) {
      T* h = &H_[tree_.chain_start[root_node] * 9];
      for (int i = 0; i < 3; ++i) {
        g_[root_node * 3 + i] += p_.root_regularization * (s.root[i] - prior_root_[i]);
        h[4 * i] += p_.root_regularization;
      }
    }
  }

  // Solves (H + mu I) x = -g by block Cholesky, leaves first. False when
  // the damped matrix is not positive definite.
  bool step(T mu) {
    std::copy(H_.begin(), H_.end(), L_.begin());
    for (int64_t n = 0; n < tree_.nodes; ++n)
      for (int i = 0; i < 3; ++i) L_[tree_.chain_start[n] * 9 + 4 * i] += mu;
    for (int64_t i = 0; i < tree_.nodes * 3; ++i) rhs_[i] = -g_[i];
    // Node order nodes-1 ... 0 is leaves first except for the root
    // translation (node J, an ancestor of all), which goes last.
    for (int64_t q = 0; q < tree_.nodes; ++q) {
      const int64_t n = elimination_order(q);
      T* c = &L_[tree_.chain_start[n] * 9];
      if (!cholesky3(c)) return false;  // reads the lower triangle of the symmetric block
      const int64_t first = tree_.chain_start[n] + 1, last = tree_.chain_start[n + 1];
      // M_na = C⁻¹ H_na for each ancestor a (in place).
      for (int64_t ia = first; ia < last; ++ia) {
        T* m = &L_[ia * 9];
        for (int col = 0; col < 3; ++col) {
          T v[3] = {m[col], m[3 + col], m[6 + col]};
          solve_lower(c, v);
          m[col] = v[0], m[3 + col] = v[1], m[6 + col] = v[2];
        }
      }
      // Ancestor pairs: H_ab -= M_naᵀ M_nb (a at or below b).
      for (int64_t ia = first; ia < last; ++ia) {
        const int64_t a = tree_.chain[ia];
        for (int64_t ib = ia; ib < last; ++ib) {
          const int64_t b = tree_.chain[ib];
          T prod[9];
          mul_at_b(&L_[ia * 9], &L_[ib * 9], prod);
          T* h = &L_[tree_.block(a, b) * 9];
          for (int i = 0; i < 9; ++i) h[i] -= prod[i];
        }
      }
    }
    // Forward: y_n = C_n⁻¹ b_n, then b_a -= M_naᵀ y_n.
    for (int64_t q = 0; q < tree_.nodes; ++q) {
      const int64_t n = elimination_order(q);
      T* y = &rhs_[n * 3];
      solve_lower(&L_[tree_.chain_start[n] * 9], y);
      for (int64_t ia = tree_.chain_start[n] + 1; ia < tree_.chain_start[n + 1]; ++ia) {
        T u[3];
        apply_t(&L_[ia * 9], y, u);
        for (int i = 0; i < 3; ++i) rhs_[tree_.chain[ia] * 3 + i] -= u[i];
      }
    }
    // Backward: x_n = C_n⁻ᵀ (y_n - sum_a M_na x_a), ancestors first.
    for (int64_t q = tree_.nodes; q-- > 0;) {
      const int64_t n = elimination_order(q);
      T v[3] = {rhs_[n * 3], rhs_[n * 3 + 1], rhs_[n * 3 + 2]};
      for (int64_t ia = tree_.chain_start[n] + 1; ia < tree_.chain_start[n + 1]; ++ia) {
        T u[3];
        apply(&L_[ia * 9], &x_[tree_.chain[ia] * 3], u);
        for (int i = 0; i < 3; ++i) v[i] -= u[i];
      }
      solve_upper(&L_[tree_.chain_start[n] * 9], v);
      for (int i = 0; i < 3; ++i) x_[n * 3 + i] = v[i];
    }
    return true;
  }

  int64_t elimination_order(int64_t q) const { return q < J_ ? J_ - 1 - q : J_; }

  // next = now moved by x: R_j <- R_j exp(W_jᵀ x_j), root += x_root; then limits.
  void take_step(const State<T>& now, State<T>& next) {
    for (int64_t j = 0; j < J_; ++j) {
      T local_step[3], turn[9];
      apply_t(&now.world[j * 9], &x_[j * 3], local_step);
      exp_map(local_step, turn);
      mul(&now.local[j * 9], turn, &next.local[j * 9]);
    }
    for (int i = 0; i < 3; ++i) next.root[i] = now.root[i] + (tree_.nodes > J_ ? x_[J_ * 3 + i] : T(0));
    project(next);
    evaluate(next);
  }

  // Clamps each joint's rotation vector relative to rest into its box.
  void project(State<T>& s) const {
    if (!p_.limits) return;
    for (int64_t j = 0; j < J_; ++j) {
      const T* box = p_.limits + j * 6;
      T relative[9], v[3];
      mul_at_b(p_.rest_rotations + j * 9, &s.local[j * 9], relative);
      log_map(relative, v);
      bool clamped = false;
      for (int i = 0; i < 3; ++i) {
        const T c = std::min(std::max(v[i], box[2 * i]), box[2 * i + 1]);
        clamped |= c != v[i];
        v[i] = c;
      }
      if (!clamped) continue;
      exp_map(v, relative);
      mul(p_.rest_rotations + j * 9, relative, &s.local[j * 9]);
    }
  }

  const IkProblem<T>& p_;
  const Tree& tree_;
  int64_t J_;
  std::vector<T> H_, L_, g_, x_, rhs_, prior_;
  std::vector<Moments> own_, below_;
  T prior_root_[3] = {0, 0, 0};
  State<T> now_, next_;
  const T* targets_ = nullptr;
  const T* orientations_ = nullptr;
  T reach_ = 1;  // largest distance between two joints of the skeleton, at most
};

}  // namespace

template <class T>
void ik_solve(const IkProblem<T>& p, const IkSolution<T>& out) {
  const Tree tree(p.parents, p.num_joints, !p.fixed_root);
  // Step sizes are judged by how far they can move a joint: twice the
  // longest root-to-joint path bounds every lever arm.
  const int64_t J = p.num_joints;
  std::vector<T> path(J, T(0));
  T reach = 0;
  for (int64_t j = 0; j < J; ++j) {
    const T* o = p.offsets + j * 3;
    path[j] = (p.parents[j] < 0 ? T(0) : path[p.parents[j]] + std::sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2]));
    reach = std::max(reach, T(2) * path[j]);
  }
  const int64_t rotation_size = p.init_form == RotationForm::Quaternion ? 4 : 9;
  const auto start_of = [&](int64_t b) { return p.init_rotations + (p.init_shared ? 0 : b * J * rotation_size); };
  const auto root_of = [&](int64_t b) { return p.init_root + (p.init_shared ? 0 : b * 3); };
  if (p.sequential) {
    Solver<T> solver(p, tree);
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
    Solver<T> solver(p, tree);
    solver.set_reach(reach);
    for (int64_t b = begin; b < end; ++b) solver.solve(b, start_of(b), p.init_form, root_of(b), out);
  });
}

template void ik_solve<float>(const IkProblem<float>&, const IkSolution<float>&);
template void ik_solve<double>(const IkProblem<double>&, const IkSolution<double>&);

}  // namespace fastkin
