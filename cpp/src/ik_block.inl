// Analytic IK frame solvers, compiled once per instruction set.
//
// Included by ik_scalar.cpp (baseline) and ik_avx2.cpp (-mavx2 -mfma), each
// with its own FASTKIN_ISA_NS. Frames without a reference are solved in
// blocks of kIkBlockLanes in structure-of-arrays form, whose common case
// the compiler vectorises at the file's width.
//
// One target: the smallest rotation between two vectors, from a quaternion
// built without a normalisation. Several: the least-squares rotation by
// Horn's quaternion method, its largest eigenvalue by Newton's method on
// the characteristic quartic (from an upper bound, so it converges
// monotonically) and the eigenvector as a column of the adjugate. That is
// ~0.1 us per fit where Eigen's JacobiSVD of the 3x3 covariance takes
// ~0.9 us, and it gives a proper rotation (det +1) with no reflection
// fix-up. All arithmetic is double, for float inputs too.
//
// Nothing in here calls an inline function of std:: (see ik_math.inl).

#include <cfloat>
#include <cmath>  // HUGE_VAL (a macro)
#include <cstdint>
#if defined(_MSC_VER) && !defined(__clang__)
#include <limits>
#endif

namespace fastkin::detail::FASTKIN_ISA_NS {
namespace {

#include "ik_math.inl"

// A target closer to its joint than this fraction of the rest bone has no
// usable direction in this frame.
constexpr double kZeroTarget = 1e-9;
// Swings with 1 + cos(angle) below this (within ~0.8 degrees of a half
// turn) get a second, correcting swing: there a×b is too short to give the
// axis to full precision.
constexpr double kRefine = 1e-4;
// A best fit whose covariance has a second singular value below kRankOne
// of the first (its vectors collinear to ~1e-7), or whose largest
// eigenvalue is separated by less than kDegenerate (relative), does not
// determine the rotation to working precision (the eigenvector's error
// grows like eps / gap²): the dominant direction is swung instead, which
// is within ~gap of the optimum.
constexpr double kRankOne = 1e-7;
constexpr double kDegenerate = 1e-9;
// Reference matrices must be rotations to this (max |RᵀR - I|).
constexpr double kRotationTolerance = 1e-5;

// the frame least aligned with a (ties: x, then y, then z), deterministic.
inline void half_turn(const double* a, double* out) {
  const double ax = absolute(a[0]), ay = absolute(a[1]), az = absolute(a[2]);
  const int k = (ax <= ay && ax <= az) ? 0 : (ay <= az ? 1 : 2);
  double e[3] = {0, 0, 0}, axis[3];
  e[k] = 1.0;
  cross3(a, e, axis);
  quat_matrix(axis[0], axis[1], axis[2], 0.0, out);
}

// The smallest rotation taking the direction of a onto that of b (both
// nonzero): the quaternion (a × b, |a||b| + a·b) needs no normalisation
// before quat_matrix. For angles beyond 90 degrees |a||b| + a·b is computed
// as |a × b|² / (|a||b| - a·b), which does not cancel. Returns false when a
// and b are within kRefine of opposite (out is then left unset); axis
// (a × b) and w are returned for the caller to go on from.
inline bool swing_direct(const double* a, const double* b, double* out, double* axis, double* w_out) {
  const double ab = dot3(a, b);
  const double norms = square_root(dot3(a, a) * dot3(b, b));
  cross3(a, b, axis);
  const double w = ab >= 0.0 ? norms + ab : dot3(axis, axis) / (norms - ab);
  *w_out = w;
  if (w > kRefine * norms) {
    quat_matrix(axis[0], axis[1], axis[2], w, out);
    return true;
  }
  return false;
}

// NaN in every entry: what overflowed inputs give, so the caller's
// finiteness check reports them.
inline void fill_nan(double* out) {
  for (int i = 0; i < 9; ++i) out[i] = kNaN;
}

// The smallest rotation taking the direction of a onto that of b (both
// nonzero), b's direction hit to rounding even next to a half turn; NaN when
// |a|²|b|² overflows.
void swing(const double* a, const double* b, double* out) {
  if (!(dot3(a, a) * dot3(b, b) <= DBL_MAX)) return fill_nan(out);
  double axis[3], w;
  if (swing_direct(a, b, out, axis, &w)) return;
  // Nearly opposite: the minimal swing to working precision (a half turn
  // about the fixed perpendicular when a × b is lost to rounding), then the
  // small swing that corrects what rounding left of its image of a.
  constexpr double kLost = 64.0 * DBL_EPSILON;
  const double norms2 = dot3(a, a) * dot3(b, b);
  double first[9], turned[3], second[9], axis2[3], w2;
  if (dot3(axis, axis) > kLost * kLost * norms2) {
    quat_matrix(axis[0], axis[1], axis[2], w, first);
  } else {
    half_turn(a, first);
  }
  mat_vec(first, a, turned);
  if (!swing_direct(turned, b, second, axis2, &w2)) {  // cannot happen: turned is nearly b
    copy9(first, out);
    return;
  }
  mul(second, first, out);
}

// det of the 3x3 submatrix of the 4x4 m with rows r and columns c.
inline double minor3(const double* m, const int* r, const int* c) {
  auto at = [&](int i, int k) { return m[4 * r[i] + c[k]]; };
  return at(0, 0) * (at(1, 1) * at(2, 2) - at(1, 2) * at(2, 1)) -
         at(0, 1) * (at(1, 0) * at(2, 2) - at(1, 2) * at(2, 0)) +
         at(0, 2) * (at(1, 0) * at(2, 1) - at(1, 1) * at(2, 0));
}

constexpr int kOthers[4][3] = {{1, 2, 3}, {0, 2, 3}, {0, 1, 3}, {0, 1, 2}};


inline double det4(const double* m) {
  // Laplace expansion by the 2x2 minors of the first two rows and the last two.
  const double s0 = m[0] * m[5] - m[1] * m[4], s1 = m[0] * m[6] - m[2] * m[4];
  const double s2 = m[0] * m[7] - m[3] * m[4], s3 = m[1] * m[6] - m[2] * m[5];
  const double s4 = m[1] * m[7] - m[3] * m[5], s5 = m[2] * m[7] - m[3] * m[6];
  const double c5 = m[10] * m[15] - m[11] * m[14], c4 = m[9] * m[15] - m[11] * m[13];
  const double c3 = m[9] * m[14] - m[10] * m[13], c2 = m[8] * m[15] - m[11] * m[12];
  const double c1 = m[8] * m[14] - m[10] * m[12], c0 = m[8] * m[13] - m[9] * m[12];
  return s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0;
}

// The rotation D maximising Σ_k b_k · (D a_k), i.e. minimising
// Σ_k |D a_k - b_k|², given S = Σ_k a_k b_kᵀ and bound >= Σ_k |a_k||b_k|.
// Horn (1987): with the symmetric 4x4 N built from S, the best unit
// quaternion (w, x, y, z) is N's eigenvector of the largest eigenvalue, and
// that eigenvalue is the maximum. Returns false when the maximiser is not
// unique to working precision: S of rank <= 1 (collinear vectors), or a
// top eigenvalue that is double (a reflection tie of inconsistent data).
bool best_fit(const double* S, double bound, double* out) {
  // Rank <= 1: the cofactors of S (products of two singular values) vanish
  // next to |S|² (the largest squared). Then the maximisers form a circle.
  double cofactor2 = 0.0, norm2_s = 0.0;
  for (int i = 0; i < 3; ++i) {
    double row[3];
    cross3(S + 3 * ((i + 1) % 3), S + 3 * ((i + 2) % 3), row);
    cofactor2 += dot3(row, row);
    norm2_s += dot3(S + 3 * i, S + 3 * i);
  }
  if (!(cofactor2 > kRankOne * kRankOne * norm2_s * norm2_s)) return false;
  const double xx = S[0], xy = S[1], xz = S[2], yx = S[3], yy = S[4], yz = S[5], zx = S[6], zy = S[7], zz = S[8];
  const double N[16] = {
      xx + yy + zz, yz - zy,       zx - xz,       xy - yx,
      yz - zy,      xx - yy - zz,  xy + yx,       zx + xz,
      zx - xz,      xy + yx,       -xx + yy - zz, yz + zy,
      xy - yx,      zx + xz,       yz + zy,       -xx - yy + zz,
  };
  // det(N - λI) = λ⁴ + c2 λ² + c1 λ + c0: trace(N) = 0, the λ² coefficient
  // is -|N|²/2, the λ coefficient minus the sum of the principal 3x3 minors
  // (= 8 det S for Horn's N).
  double norm2 = 0.0;
  for (double v : N) norm2 += v * v;
  const double c2 = -0.5 * norm2;
  const double c1 = -8.0 * det3(S);
  const double c0 = det4(N);
  // Newton from above the largest root of a real-rooted polynomial
  // decreases monotonically onto it. It stops when P is down to its
  // rounding error, when the steps stop shrinking, or before it would pass
  // the lower bound |S| / sqrt(3) <= σ1 <= λmax: near a double root P and
  // P' are both rounding noise and their ratio means nothing.
  const double lower = square_root(norm2_s / 3.0);
  double lambda = bound, previous = HUGE_VAL;
  for (int iteration = 0; iteration < 64; ++iteration) {
    const double l2 = lambda * lambda;
    const double p = (l2 + c2) * l2 + c1 * lambda + c0;
    const double dp = (4.0 * l2 + 2.0 * c2) * lambda + c1;
    const double noise = 16.0 * DBL_EPSILON *
                         (l2 * l2 + absolute(c2) * l2 + absolute(c1 * lambda) + absolute(c0));
    if (!(absolute(p) > noise) || !(dp > 0.0)) break;
    const double step = p / dp;
    if (!(absolute(step) < previous) || !(lambda - step >= lower)) break;
    lambda -= step;
    previous = absolute(step);
    if (previous <= 1e-15 * lambda) break;
  }
  double A[16];
  for (int i = 0; i < 16; ++i) A[i] = N[i];
  for (int i = 0; i < 4; ++i) A[5 * i] -= lambda;
  // adj(A) = μ v vᵀ for the eigenvector v: its largest diagonal entry picks
  // the best-conditioned column.
  int best = 0;
  double largest = 0.0;
  for (int i = 0; i < 4; ++i) {
    const double c = absolute(minor3(A, kOthers[i], kOthers[i]));
    if (c > largest) largest = c, best = i;
  }
  // largest >= gap1 gap2 gap3 / 4, the other two gaps >= ~lambda (bound
  // may be far larger: children whose turns nearly cancel).
  if (!(largest > kDegenerate * lambda * lambda * lambda)) return false;
  double q[4];
  for (int k = 0; k < 4; ++k) {
    const double m = minor3(A, kOthers[best], kOthers[k]);
    q[k] = ((best + k) % 2 == 0) ? m : -m;
  }
  quat_matrix(q[1], q[2], q[3], q[0], out);
  return true;
}

// For a degenerate fit: the smallest rotation taking S's dominant a-direction
// onto its dominant b-direction (S = Σ a bᵀ ≈ â mᵀ: a column of S is along
// â, Sᵀ of it along m). Identity when S vanishes.
void dominant_swing(const double* S, double* out) {
  int best = 0;
  double largest = -1.0;
  for (int c = 0; c < 3; ++c) {
    const double n = S[c] * S[c] + S[3 + c] * S[3 + c] + S[6 + c] * S[6 + c];
    if (n > largest) largest = n, best = c;
  }
  const double a[3] = {S[best], S[3 + best], S[6 + best]};
  double b[3];
  mat_t_vec(S, a, b);
  if (!(dot3(a, a) > 0.0) || !(dot3(b, b) > 0.0)) {
    copy9(kIdentity, out);
    return;
  }
  swing(a, b, out);
}

// True when all n values are finite: v - v is 0 for finite v and NaN for
// NaN or infinity, summed in 8 independent sums so the loop vectorises.
template <class T>
inline bool all_finite(const T* values, int64_t n) {
  T sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) sums[k] += values[i + k] - values[i + k];
  T total = 0;
  for (; i < n; ++i) total += values[i] - values[i];
  for (T sum : sums) total += sum;
  return total == T(0);
}

// target_position - joint_position as doubles.
template <class T>
inline void difference(const T* positions, int32_t target, int64_t joint, double* out) {
  for (int i = 0; i < 3; ++i)
    out[i] = static_cast<double>(positions[3 * target + i]) - static_cast<double>(positions[3 * joint + i]);
}

// The rotation D (in whatever frame a and b are given) that turns the rest
// vectors of joint j's targets onto the posed ones: identity when no target
// is usable, the minimal swing for one, the least-squares fit for several.
// `rest(k)` gives target k's rest vector, `posed(k, out)` its posed one.
template <class Rest, class Posed>
void fit_targets(int32_t begin, int32_t end, Rest&& rest, Posed&& posed, double* out) {
  if (end - begin == 1) {
    double b[3];
    posed(begin, b);
    const double* a = rest(begin);
    if (dot3(b, b) > kZeroTarget * kZeroTarget * dot3(a, a)) {
      swing(a, b, out);
    } else {
      copy9(kIdentity, out);
    }
    return;
  }
  double S[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  double bound = 0.0;
  int usable = 0;
  int32_t last = begin;
  for (int32_t k = begin; k < end; ++k) {
    double b[3];
    posed(k, b);
    const double* a = rest(k);
    const double aa = dot3(a, a), bb = dot3(b, b);
    if (!(bb > kZeroTarget * kZeroTarget * aa)) continue;
    for (int i = 0; i < 3; ++i)
      for (int m = 0; m < 3; ++m) S[3 * i + m] += a[i] * b[m];
    bound += square_root(aa * bb);
    ++usable;
    last = k;
  }
  if (!(bound <= DBL_MAX)) {
    fill_nan(out);
  } else if (usable == 0) {
    copy9(kIdentity, out);
  } else if (usable == 1) {
    double b[3];
    posed(last, b);
    swing(rest(last), b, out);
  } else if (!best_fit(S, bound, out)) {
    dominant_swing(S, out);
  }
}

template <class T>
inline void store9(const double* from, T* to) {
  for (int i = 0; i < 9; ++i) to[i] = static_cast<T>(from[i]);
}

// Frames solved together without a reference: the per-joint work runs
// across a block of frames, structure-of-arrays ([value][lane]), so the
// common case (one target, a swing well away from a half turn) is
// straight-line code the compiler vectorises; the rare lanes (no usable
// target, nearly opposite directions) and joints with several targets are
// then done lane by lane. Frames per block: kIkBlockLanes; leftover frames go
// one at a time (kLanes = 1) through the same code.

// The identity in every lane: the parent rotation of roots.
template <int kLanes>
struct alignas(64) LaneIdentity {
  double values[9 * kLanes];
  LaneIdentity() {
    for (int e = 0; e < 9; ++e)
      for (int l = 0; l < kLanes; ++l) values[e * kLanes + l] = kIdentity[e];
  }
};
template <int kLanes>
const LaneIdentity<kLanes> kLaneIdentity;

// out = a b for every lane (out must not alias a or b).
template <int kLanes>
inline void mul_lanes(const double* a, const double* b, double* out) {
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k)
      for (int l = 0; l < kLanes; ++l)
        out[(3 * i + k) * kLanes + l] = a[(3 * i) * kLanes + l] * b[k * kLanes + l] +
                                        a[(3 * i + 1) * kLanes + l] * b[(3 + k) * kLanes + l] +
                                        a[(3 * i + 2) * kLanes + l] * b[(6 + k) * kLanes + l];
}

// The posed target vector of lane l in the parent's frame: Wpᵀ (p_g - p_j).
template <int kLanes, class T>
inline void posed_in_parent(const T* const* frames, int l, int32_t target, int64_t joint, const double* parent_world,
                            double* out) {
  double t[3];
  difference(frames[l], target, joint, t);
  for (int i = 0; i < 3; ++i)
    out[i] = parent_world[i * kLanes + l] * t[0] + parent_world[(3 + i) * kLanes + l] * t[1] +
             parent_world[(6 + i) * kLanes + l] * t[2];
}

// The swing of joint j's single target k in every lane, into turn ([9][kLanes]).
template <int kLanes, class T>
void swing_lanes(const IkPlanView& plan, int32_t k, int64_t j, const T* const* frames,
                 const double* parent_world, double* turn) {
  const int32_t target = plan.target_joint[k];
  const double* a = plan.parent_vector + 3 * k;
  const double aa = dot3(a, a);
  alignas(64) double tx[kLanes], ty[kLanes], tz[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    double t[3];
    difference(frames[l], target, j, t);
    tx[l] = t[0], ty[l] = t[1], tz[l] = t[2];
  }
  alignas(64) double good[kLanes];
  // swing() in straight-line form: b = Wpᵀ t, then the quaternion
  // (a × b, w) to a matrix; lanes it does not cover are marked.
  const double* pw = parent_world;
  for (int l = 0; l < kLanes; ++l) {
    const double bx = pw[0 * kLanes + l] * tx[l] + pw[3 * kLanes + l] * ty[l] + pw[6 * kLanes + l] * tz[l];
    const double by = pw[1 * kLanes + l] * tx[l] + pw[4 * kLanes + l] * ty[l] + pw[7 * kLanes + l] * tz[l];
    const double bz = pw[2 * kLanes + l] * tx[l] + pw[5 * kLanes + l] * ty[l] + pw[8 * kLanes + l] * tz[l];
    const double tt = tx[l] * tx[l] + ty[l] * ty[l] + tz[l] * tz[l];  // = |b|²
    const double ab = a[0] * bx + a[1] * by + a[2] * bz;
    const double norms = square_root(aa * tt);
    double vx = a[1] * bz - a[2] * by, vy = a[2] * bx - a[0] * bz, vz = a[0] * by - a[1] * bx;
    const double vv = vx * vx + vy * vy + vz * vz;
    // Beyond 90 degrees swing() uses (v, |v|² / (norms - ab)); here that
    // quaternion times (norms - ab), the same rotation without a division.
    const double scale = ab >= 0.0 ? 1.0 : norms - ab;
    const double w = ab >= 0.0 ? norms + ab : vv;
    vx *= scale, vy *= scale, vz *= scale;
    const double qq = vx * vx + vy * vy + vz * vz + w * w;
    const double s = 2.0 / qq;
    const double xs = vx * s, ys = vy * s, zs = vz * s;
    const double xx = vx * xs, yy = vy * ys, zz = vz * zs;
    const double xy = vx * ys, xz = vx * zs, yz = vy * zs;
    const double wx = w * xs, wy = w * ys, wz = w * zs;
    turn[0 * kLanes + l] = 1.0 - (yy + zz), turn[1 * kLanes + l] = xy - wz, turn[2 * kLanes + l] = xz + wy;
    turn[3 * kLanes + l] = xy + wz, turn[4 * kLanes + l] = 1.0 - (xx + zz), turn[5 * kLanes + l] = yz - wx;
    turn[6 * kLanes + l] = xz - wy, turn[7 * kLanes + l] = yz + wx, turn[8 * kLanes + l] = 1.0 - (xx + yy);
    // Usable target, not within kRefine of a half turn (w / scale >
    // kRefine norms), and no overflow: else swing() redoes the lane.
    const bool usable = tt > kZeroTarget * kZeroTarget * aa;
    const bool clear = w > kRefine * norms * scale;
    const bool finite = qq <= DBL_MAX;
    good[l] = usable & clear & finite ? 1.0 : 0.0;
  }
  for (int l = 0; l < kLanes; ++l) {
    if (good[l] != 0.0) continue;
    double b[3], rotation[9];
    posed_in_parent<kLanes>(frames, l, target, j, parent_world, b);
    if (dot3(b, b) > kZeroTarget * kZeroTarget * aa) {
      swing(a, b, rotation);
    } else {
      copy9(kIdentity, rotation);
    }
    for (int e = 0; e < 9; ++e) turn[e * kLanes + l] = rotation[e];
  }
}

// kLanes frames (positions frames[l], local rotations local + l*J*9)
// without a reference, in the parent's frame: the start of joint j is its
// rest rotation relative to the solved parent, R0_j; D turns the rest
// vectors R0_j u onto Wpᵀ (p_g - p_j); R_j = D R0_j. world: J*9*kLanes
// scratch for the solved world rotations.
template <int kLanes, class T>
void solve_block_from_rest(const IkPlanView& plan, const T* const* frames, double* world, T* local) {
  const int64_t J = plan.num_joints;
  for (int64_t j = 0; j < J; ++j) {
    const int32_t parent = plan.parents[j];
    const double* parent_world = parent >= 0 ? world + 9 * kLanes * parent : kLaneIdentity<kLanes>.values;
    const double* rest = plan.rest_rotations + 9 * j;
    const int32_t begin = plan.target_begin[j], end = plan.target_begin[j + 1];
    alignas(64) double rotation[9 * kLanes];
    if (begin == end) {
      for (int e = 0; e < 9; ++e)
        for (int l = 0; l < kLanes; ++l) rotation[e * kLanes + l] = rest[e];
    } else {
      // R_j = D R0_j: D goes straight into `rotation` when R0_j = I.
      alignas(64) double turned[9 * kLanes];
      double* turn = plan.rest_is_identity[j] ? rotation : turned;
      if (end - begin == 1) {
        swing_lanes<kLanes>(plan, begin, j, frames, parent_world, turn);
      } else {
        for (int l = 0; l < kLanes; ++l) {
          double one[9];
          fit_targets(
              begin, end, [&](int32_t k) { return plan.parent_vector + 3 * k; },
              [&](int32_t k, double* b) { posed_in_parent<kLanes>(frames, l, plan.target_joint[k], j, parent_world, b); },
              one);
          for (int e = 0; e < 9; ++e) turn[e * kLanes + l] = one[e];
        }
      }
      if (!plan.rest_is_identity[j]) {
        for (int i = 0; i < 3; ++i)
          for (int k = 0; k < 3; ++k)
            for (int l = 0; l < kLanes; ++l)
              rotation[(3 * i + k) * kLanes + l] = turn[(3 * i) * kLanes + l] * rest[k] +
                                                   turn[(3 * i + 1) * kLanes + l] * rest[3 + k] +
                                                   turn[(3 * i + 2) * kLanes + l] * rest[6 + k];
      }
    }
    for (int l = 0; l < kLanes; ++l)
      for (int e = 0; e < 9; ++e) local[l * 9 * J + 9 * j + e] = static_cast<T>(rotation[e * kLanes + l]);
    if (plan.has_children[j]) mul_lanes<kLanes>(parent_world, rotation, world + 9 * kLanes * j);
  }
}

// Reference rotation of joint j as a matrix; false when it
// is a zero quaternion or a matrix that is not a rotation.
template <class T>
inline bool reference_matrix(const T* reference, RotationForm form, int64_t j, double* out) {
  if (form == RotationForm::Quaternion) {
    const T* q = reference + 4 * j;
    const double x = q[0], y = q[1], z = q[2], w = q[3];
    if (!(x * x + y * y + z * z + w * w >= DBL_MIN)) return false;
    quat_matrix(x, y, z, w, out);
    return true;
  }
  const T* m = reference + 9 * j;
  for (int i = 0; i < 9; ++i) out[i] = static_cast<double>(m[i]);
  double gram[9];
  mul_tn(out, out, gram);
  double error = 0.0;
  for (int i = 0; i < 9; ++i) error = error > absolute(gram[i] - kIdentity[i]) ? error : absolute(gram[i] - kIdentity[i]);
  return error <= kRotationTolerance && det3(out) > 0.0;
}

// One frame with a reference: its fk first (world rotations Wref and
// origin-relative positions pref), then, from the roots down, D in world
// turns the reference's vectors pref_g - pref_j onto p_g - p_j, W_j =
// D Wref_j and R_j = Wpᵀ W_j. scratch: J*21 doubles. False on a bad
// reference rotation.
template <class T>
bool solve_from_reference(const IkPlanView& plan, const T* positions, const T* reference, RotationForm form,
                          double* scratch, T* local) {
  const int64_t J = plan.num_joints;
  double* world = scratch;
  double* reference_world = scratch + 9 * J;
  double* reference_position = scratch + 18 * J;
  for (int64_t j = 0; j < J; ++j) {
    const int32_t parent = plan.parents[j];
    double rotation[9];
    if (!reference_matrix(reference, form, j, rotation)) return false;
    const double* offset = plan.offsets + 3 * j;
    if (parent >= 0) {
      mul(reference_world + 9 * parent, rotation, reference_world + 9 * j);
      double turned[3];
      mat_vec(reference_world + 9 * parent, offset, turned);
      for (int i = 0; i < 3; ++i) reference_position[3 * j + i] = reference_position[3 * parent + i] + turned[i];
    } else {
      copy9(rotation, reference_world + 9 * j);
      for (int i = 0; i < 3; ++i) reference_position[3 * j + i] = offset[i];
    }
  }
  for (int64_t j = 0; j < J; ++j) {
    const int32_t parent = plan.parents[j];
    const int32_t begin = plan.target_begin[j], end = plan.target_begin[j + 1];
    double* world_j = world + 9 * j;
    if (begin == end) {
      copy9(reference_world + 9 * j, world_j);
    } else {
      double turn[9], a[3];
      fit_targets(
          begin, end,
          [&](int32_t k) {
            const double* from = reference_position + 3 * j;
            const double* to = reference_position + 3 * plan.target_joint[k];
            for (int i = 0; i < 3; ++i) a[i] = to[i] - from[i];
            return static_cast<const double*>(a);
          },
          [&](int32_t k, double* b) { difference(positions, plan.target_joint[k], j, b); }, turn);
      mul(turn, reference_world + 9 * j, world_j);
    }
    double rotation[9];
    if (parent >= 0) {
      mul_tn(world + 9 * parent, world_j, rotation);
    } else {
      copy9(world_j, rotation);
    }
    store9(rotation, local + 9 * j);
  }
  return true;
}

// Frames [begin, end) of a call: local rotations and root translations.
// False when an input or output is not finite or a reference rotation is
// bad. Finiteness is checked block by block, while the values are in cache.
// scratch: ik_scratch_size(J) doubles.
template <class T>
bool solve_range(const IkPlanView& plan, const AnalyticIkInputs<T>& in, int64_t begin, int64_t end,
                 double* scratch, T* local_rotations, T* root_translation) {
  const int64_t J = plan.num_joints;
  const int64_t reference_size = J * (in.reference_form == RotationForm::Quaternion ? 4 : 9);
  if (in.reference) {
    for (int64_t b = begin; b < end; ++b) {
      const T* positions = in.positions + b * J * 3;
      const T* reference = in.reference + (in.reference_batched ? b * reference_size : 0);
      T* local = local_rotations + b * J * 9;
      if (!all_finite(positions, 3 * J) || !all_finite(reference, reference_size) ||
          !solve_from_reference(plan, positions, reference, in.reference_form, scratch, local) ||
          !all_finite(local, 9 * J))
        return false;
    }
  } else {
    for (int64_t b = begin; b < end;) {
      const int lanes = end - b >= kIkBlockLanes ? kIkBlockLanes : 1;
      if (!all_finite(in.positions + b * J * 3, lanes * J * 3)) return false;
      const T* frames[kIkBlockLanes];
      for (int l = 0; l < lanes; ++l) frames[l] = in.positions + (b + l) * J * 3;
      if (lanes == kIkBlockLanes) {
        solve_block_from_rest<kIkBlockLanes>(plan, frames, scratch, local_rotations + b * J * 9);
      } else {
        solve_block_from_rest<1>(plan, frames, scratch, local_rotations + b * J * 9);
      }
      if (!all_finite(local_rotations + b * J * 9, lanes * J * 9)) return false;
      b += lanes;
    }
  }
  const double* root_offset = plan.offsets + 3 * plan.first_root;
  for (int64_t b = begin; b < end; ++b)
    for (int i = 0; i < 3; ++i)
      root_translation[3 * b + i] =
          static_cast<T>(static_cast<double>(in.positions[b * J * 3 + 3 * plan.first_root + i]) - root_offset[i]);
  return all_finite(root_translation + begin * 3, (end - begin) * 3);
}

}  // namespace
}  // namespace fastkin::detail::FASTKIN_ISA_NS

// FASTKIN_EXPORT_IK(namespace, name): the file's entry points
// ik_range_<name>() for the dispatcher.
#define FASTKIN_EXPORT_IK(NS, NAME)                                                                \
  namespace fastkin::detail {                                                                      \
  template <>                                                                                      \
  IkRange<float> ik_range_##NAME<float>() { return &NS::solve_range<float>; }                     \
  template <>                                                                                      \
  IkRange<double> ik_range_##NAME<double>() { return &NS::solve_range<double>; }                  \
  }
