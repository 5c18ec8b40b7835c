// Axis-angle -> quaternion and its vector-Jacobian product, compiled once per
// instruction set (included by axis_angle_scalar.cpp, axis_angle_avx2.cpp,
// axis_angle_avx512.cpp, each with its own FASTKIN_ISA_NS).
//
// libm's sin and cos do not vectorise, so the half angle's sine and cosine
// come from a Cody-Waite reduction to [-pi/4, pi/4] and Taylor polynomials
// whose truncation error is below the rounding of the array's precision
// (float32 arrays in float, float64 in double). The kernels work on a
// vector of W rotations at a time (a 64-byte vector with AVX-512, 32 with
// AVX2, 16 otherwise); the interleaved rows (xyz, xyzw) are split into
// coordinate vectors and put back together with constant shuffles.
//
// Nothing in here calls an inline function of the standard library: one
// compiled with AVX-512 flags could be merged by the linker into the scalar
// build. The rare huge angles call libm's sin and cos (external functions).

#include <math.h>  // sqrt (an instruction here: -fno-math-errno), sin, cos (extern)

#include <cstddef>
#include <cstdint>
#include <utility>  // std::index_sequence (a type only; no code)

#include "axis_angle_kernels.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // vectors passed between this file's inline functions only
#endif

// Whether __builtin_shufflevector exists (GCC >= 12, Clang); without it the
// shuffles fall back to element-wise loops.
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define FASTKIN_AXIS_ANGLE_SHUFFLE 1
#endif
#endif
#ifndef FASTKIN_AXIS_ANGLE_SHUFFLE
#define FASTKIN_AXIS_ANGLE_SHUFFLE 0
#endif

namespace fastkin::detail::FASTKIN_ISA_NS {
namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

// The arithmetic in precision T: V holds W values of T in one vector, I
// their bits (and the masks comparisons give).
template <class T>
struct Lanes;

template <>
struct Lanes<double> {
  static constexpr int W = kVectorBytes / 8;
  typedef double V __attribute__((vector_size(kVectorBytes)));
  typedef long long I __attribute__((vector_size(kVectorBytes)));
  static constexpr int kSignShift = 62;                  // bit 1 of the quadrant -> the sign bit
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  // pi/2 in two parts: the head has 33 bits, so k * head is exact for k < 2^20.
  static constexpr double kPiOver2[3] = {1.57079632673412561417e+00, 6.07710050650619224932e-11, 0.0};
  static constexpr double kReducedLimit = 1e6;  // half angles past this go to libm

  // Taylor series of sin and cos on [-pi/4, pi/4] to r^17 and r^16: the
  // next terms are below 1e-17.
  static V sin_series(const V& r, const V& r2) {
    return r + r * r2 *
                   (-1.0 / 6 +
                    r2 * (1.0 / 120 +
                          r2 * (-1.0 / 5040 +
                                r2 * (1.0 / 362880 +
                                      r2 * (-1.0 / 39916800 +
                                            r2 * (1.0 / 6227020800.0 +
                                                  r2 * (-1.0 / 1307674368000.0 + r2 * (1.0 / 355687428096000.0))))))));
  }
  static V cos_series(const V& r2) {
    return 1.0 + r2 * (-0.5 +
                       r2 * (1.0 / 24 +
                             r2 * (-1.0 / 720 +
                                   r2 * (1.0 / 40320 +
                                         r2 * (-1.0 / 3628800 +
                                               r2 * (1.0 / 479001600.0 +
                                                     r2 * (-1.0 / 87178291200.0 + r2 * (1.0 / 20922789888000.0))))))));
  }
};

template <>
struct Lanes<float> {
  static constexpr int W = kVectorBytes / 4;
  typedef float V __attribute__((vector_size(kVectorBytes)));
  typedef int I __attribute__((vector_size(kVectorBytes)));
  static constexpr int kSignShift = 30;
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  // pi/2 in three parts of 8, 12 and 24 bits: k * the first two is exact for k < 2^12.
  static constexpr float kPiOver2[3] = {1.5703125f, 0.0004837512969970703f, 7.549790126404332e-08f};
  static constexpr float kReducedLimit = 6000.0f;  // (4096 pi/2 = 6434)

  // To r^9 and r^10: the next terms are below 2e-9.
  static V sin_series(const V& r, const V& r2) {
    return r + r * r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880))));
  }
  static V cos_series(const V& r2) {
    return 1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320 + r2 * (-1.0f / 3628800)))));
  }
};

// -- loads, stores and the row <-> coordinate shuffles --------------------------------------

template <class T>
inline typename Lanes<T>::V load(const T* p) {
  typename Lanes<T>::V v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

template <class T>
inline void store(T* p, const typename Lanes<T>::V& v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// Component C of W rows of n values held in v[0..n-1].
template <int W, int n, int C>
struct Column {
  static constexpr int at(int lane) { return n * lane + C; }
};
// Vector M of W rows of n values interleaved from n coordinate vectors v[0..n-1].
template <int W, int n, int M>
struct Row {
  static constexpr int at(int lane) { return ((M * W + lane) % n) * W + (M * W + lane) / n; }
};

// Lane l of the result is element E::at(l) of v[0] v[1] v[2] v[3] laid end to end.
template <class E, class V, std::size_t... L>
inline V gather(const V* v, std::index_sequence<L...>) {
  constexpr int W = sizeof...(L);
#if FASTKIN_AXIS_ANGLE_SHUFFLE
  const V low = __builtin_shufflevector(v[0], v[1], (E::at(L) < 2 * W ? E::at(L) : 0)...);
  const V high = __builtin_shufflevector(v[2], v[3], (E::at(L) >= 2 * W ? E::at(L) - 2 * W : 0)...);
  return __builtin_shufflevector(low, high, (E::at(L) < 2 * W ? int(L) : W + int(L))...);
#else
  V out;
  for (int l = 0; l < W; ++l) out[l] = v[E::at(l) / W][E::at(l) % W];
  return out;
#endif
}

// The n coordinate vectors of W rows of n values at p (coordinates has room for 4).
template <int n, class T, std::size_t... C>
inline void load_columns(const T* p, typename Lanes<T>::V* coordinates, std::index_sequence<C...>) {
  constexpr int W = Lanes<T>::W;
  typename Lanes<T>::V v[4];
  for (int k = 0; k < n; ++k) v[k] = load(p + k * W);
  for (int k = n; k < 4; ++k) v[k] = v[n - 1];
  ((coordinates[C] = gather<Column<W, n, C>>(v, std::make_index_sequence<W>{})), ...);
}

// W rows of n values to p from n coordinate vectors (c has room for 4).
template <int n, class T, std::size_t... M>
inline void store_rows(T* p, typename Lanes<T>::V* c, std::index_sequence<M...>) {
  constexpr int W = Lanes<T>::W;
  for (int k = n; k < 4; ++k) c[k] = c[n - 1];
  (store(p + M * W, gather<Row<W, n, M>>(c, std::make_index_sequence<W>{})), ...);
}

// Rows [i, i + W) of width n: in place when all are there, else copied into
// `buffer` and padded with zeros (the kernels never read past the end).
template <int n, class T, int size>
inline const T* whole_rows(const T* rows, int64_t count, int64_t i, T (&buffer)[size]) {
  constexpr int W = size / n;
  if (i + W <= count) return rows + n * i;
  for (int k = 0; k < size; ++k) buffer[k] = k < n * (count - i) ? rows[n * i + k] : T(0);
  return buffer;
}

// Output rows [i, i + W) of width n: in place when all are there, else the
// buffer, copied out by finish_rows.
template <int n, class T, int size>
inline T* output_rows(T* rows, int64_t count, int64_t i, T (&buffer)[size]) {
  return i + size / n <= count ? rows + n * i : buffer;
}

template <int n, class T, int size>
inline void finish_rows(T* rows, int64_t count, int64_t i, const T (&buffer)[size]) {
  if (i + size / n > count)
    for (int k = 0; k < n * (count - i); ++k) rows[n * i + k] = buffer[k];
}

// -- the math --------------------------------------------------------------------------------

template <class V>
inline V square_root(V x) {
  for (int l = 0; l < int(sizeof(V) / sizeof(x[0])); ++l) x[l] = ::sqrt(x[l]);
  return x;
}

// sin and cos of h in [0, kReducedLimit]: h = k pi/2 + r, |r| <= pi/4.
template <class T>
inline void sin_cos(const typename Lanes<T>::V& h, typename Lanes<T>::V& s, typename Lanes<T>::V& c) {
  using L = Lanes<T>;
  using V = typename L::V;
  using I = typename L::I;
  // Adding 1.5 * 2^(mantissa bits) rounds to an integer and leaves it in the low bits.
  const V shifted = h * T(0.63661977236758134308) + L::kRound;
  const I k = (I)shifted;
  const V kd = shifted - L::kRound;
  const V r = ((h - kd * L::kPiOver2[0]) - kd * L::kPiOver2[1]) - kd * L::kPiOver2[2];
  const V r2 = r * r;
  const V sin_r = L::sin_series(r, r2), cos_r = L::cos_series(r2);
  // Quadrant k mod 4: sin(r + k pi/2) is sin r, cos r, -sin r, -cos r; the
  // sign goes in by flipping the sign bit.
  const I odd = (k & 1) != 0;
  s = (V)((I)(odd ? cos_r : sin_r) ^ ((k & 2) << L::kSignShift));
  c = (V)((I)(odd ? sin_r : cos_r) ^ (((k + 1) & 2) << L::kSignShift));
}

// theta^2, 1 / theta^2 (0 at 0), f = sin(theta/2) / theta (1/2 at 0) and
// cos(theta/2) of W axis-angles. Lanes whose half angle is past
// kReducedLimit (or NaN) are marked in `outside` and left wrong: the caller
// redoes their rows with libm (rare, so not worth a check per block).
template <class T>
struct HalfAngle {
  typename Lanes<T>::V theta2, inverse_theta2, f, c;
};

template <class T, class V = typename Lanes<T>::V, class I = typename Lanes<T>::I>
inline HalfAngle<T> half_angle(const V& x, const V& y, const V& z, I& outside) {
  HalfAngle<T> a;
  a.theta2 = x * x + y * y + z * z;
  const I positive = a.theta2 > T(0);
  const V inverse_theta = T(1) / square_root(positive ? a.theta2 : T(1));
  const V h = T(0.5) * a.theta2 * inverse_theta;
  const I inside = h <= Lanes<T>::kReducedLimit;
  outside |= ~inside;
  V s;
  sin_cos<T>(inside ? h : T(0), s, a.c);
  a.f = positive ? s * inverse_theta : T(0.5);
  a.inverse_theta2 = positive ? inverse_theta * inverse_theta : T(0);
  return a;
}

template <class I>
inline bool any(const I& mask) {
  bool set = false;
  for (int l = 0; l < int(sizeof(I) / sizeof(mask[0])); ++l) set |= mask[l] != 0;
  return set;
}

// Whether row i is one the vector code may have left out (its half angle
// near or past kReducedLimit, or NaN): those rows are redone with libm, in
// double. The margin covers the vector code's own rounding of the angle.
template <class T>
inline bool redo_with_libm(const T* v, double& theta2) {
  theta2 = double(v[0]) * v[0] + double(v[1]) * v[1] + double(v[2]) * v[2];
  const double from = 0.999 * Lanes<T>::kReducedLimit;
  return !(0.25 * theta2 <= from * from);
}

// f, cos(theta/2) and f'(theta) / theta of one axis-angle with libm.
inline void half_angle_libm(double theta2, double& f, double& c, double& df) {
  const double theta = ::sqrt(theta2), h = 0.5 * theta;
  f = ::sin(h) / theta;
  c = ::cos(h);
  df = (0.5 * c - f) / theta2;
}

template <class T>
void forward(const T* axis_angle, int64_t count, T* quaternions) {
  using L = Lanes<T>;
  constexpr int W = L::W;
  T in_tail[3 * W], out_tail[4 * W];
  typename L::I outside = {};
  for (int64_t i = 0; i < count; i += W) {
    typename L::V v[4];
    load_columns<3>(whole_rows<3>(axis_angle, count, i, in_tail), v, std::make_index_sequence<3>{});
    const HalfAngle<T> a = half_angle<T>(v[0], v[1], v[2], outside);
    typename L::V q[4] = {v[0] * a.f, v[1] * a.f, v[2] * a.f, a.c};
    store_rows<4>(output_rows<4>(quaternions, count, i, out_tail), q, std::make_index_sequence<4>{});
    finish_rows<4>(quaternions, count, i, out_tail);
  }
  if (!any(outside)) return;
  for (int64_t i = 0; i < count; ++i) {
    const T* v = axis_angle + 3 * i;
    double theta2, f, c, df;
    if (!redo_with_libm(v, theta2)) continue;
    half_angle_libm(theta2, f, c, df);
    T* q = quaternions + 4 * i;
    for (int k = 0; k < 3; ++k) q[k] = static_cast<T>(v[k] * f);
    q[3] = static_cast<T>(c);
  }
}

// d(v f, cos(theta/2)) / dv applied to g: f g_xyz + v (g_xyz . v f'(theta) / theta - f / 2 g_w).
template <class T>
void backward(const T* axis_angle, const T* grad_quaternions, int64_t count, T* grad_axis_angle) {
  using L = Lanes<T>;
  using V = typename L::V;
  constexpr int W = L::W;
  T in_tail[3 * W], grad_tail[4 * W], out_tail[3 * W];
  typename L::I outside = {};
  for (int64_t i = 0; i < count; i += W) {
    V v[4], g[4];
    load_columns<3>(whole_rows<3>(axis_angle, count, i, in_tail), v, std::make_index_sequence<3>{});
    load_columns<4>(whole_rows<4>(grad_quaternions, count, i, grad_tail), g, std::make_index_sequence<4>{});
    const HalfAngle<T> a = half_angle<T>(v[0], v[1], v[2], outside);
    // f'(theta) / theta: its series below theta = 0.1, where the closed form
    // (cos(theta/2) / 2 - f) / theta^2 starts to cancel.
    const V t2 = a.theta2;
    const V series = T(-1.0 / 24) + t2 * (T(1.0 / 960) + t2 * (T(-1.0 / 107520) + t2 * T(1.0 / 23224320.0)));
    const V df = t2 < T(0.01) ? series : (T(0.5) * a.c - a.f) * a.inverse_theta2;
    const V along = df * (g[0] * v[0] + g[1] * v[1] + g[2] * v[2]) - T(0.5) * a.f * g[3];
    V grad[4] = {a.f * g[0] + along * v[0], a.f * g[1] + along * v[1], a.f * g[2] + along * v[2], {}};
    store_rows<3>(output_rows<3>(grad_axis_angle, count, i, out_tail), grad, std::make_index_sequence<3>{});
    finish_rows<3>(grad_axis_angle, count, i, out_tail);
  }
  if (!any(outside)) return;
  for (int64_t i = 0; i < count; ++i) {
    const T* v = axis_angle + 3 * i;
    double theta2, f, c, df;
    if (!redo_with_libm(v, theta2)) continue;
    half_angle_libm(theta2, f, c, df);
    const T* g = grad_quaternions + 4 * i;
    const double along = df * (double(g[0]) * v[0] + double(g[1]) * v[1] + double(g[2]) * v[2]) - 0.5 * f * g[3];
    for (int k = 0; k < 3; ++k) grad_axis_angle[3 * i + k] = static_cast<T>(f * g[k] + along * v[k]);
  }
}

}  // namespace

template <class T>
AxisAngleKernel<T> make_axis_angle_kernel() {
  return {&forward<T>, &backward<T>};
}

}  // namespace fastkin::detail::FASTKIN_ISA_NS

// Defines fastkin::detail::axis_angle_kernel_<NS><T>() for this file's ISA.
#define FASTKIN_EXPORT_AXIS_ANGLE_KERNELS(NS)                                                                   \
  namespace fastkin::detail {                                                                                  \
  template <>                                                                                                  \
  AxisAngleKernel<float> axis_angle_kernel_##NS<float>() { return NS::make_axis_angle_kernel<float>(); }       \
  template <>                                                                                                  \
  AxisAngleKernel<double> axis_angle_kernel_##NS<double>() { return NS::make_axis_angle_kernel<double>(); }    \
  }
