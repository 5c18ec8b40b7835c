// Axis-angle -> quaternion and its vector-Jacobian product, compiled once per
// instruction set (included by axis_angle_scalar.cpp, axis_angle_avx2.cpp,
// axis_angle_avx512.cpp, each with its own FASTKIN_ISA_NS).
//
// libm's sin and cos do not vectorise, so the half angle's sine and cosine
// come from a Cody-Waite reduction to [-pi/4, pi/4] and Taylor polynomials
// whose truncation error is below double rounding. The kernels work on W
// rotations at a time in double vectors (W = 8 with AVX-512, 4 with AVX2, 2
// otherwise), also for float32 arrays: a float result is then correctly
// rounded or nearly so. The interleaved rows (xyz, xyzw) are split into
// coordinate vectors and put back together with constant shuffles.
//
// Nothing in here calls an inline function of the standard library: one
// compiled with AVX-512 flags could be merged by the linker into the scalar
// build. The rare huge angles call libm's sin and cos (external functions).

#include <math.h>  // sqrt (an instruction here: -fno-math-errno), sin, cos (extern)

#include <cstddef>
#include <cstdint>
#include <utility>  // std::index_sequence (a type only; no code)
#if defined(__SSE2__)
#include <immintrin.h>  // simd_vectors.inl's intrinsics
#endif

#include "axis_angle_kernels.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // vectors passed between this file's inline functions only
#endif

namespace fastkin::detail::FASTKIN_ISA_NS {
namespace {

#include "simd_vectors.inl"

#if defined(__AVX512F__)
constexpr int W = 8;
#elif defined(__AVX2__)
constexpr int W = 4;
#else
constexpr int W = 2;
#endif

using D = Vec<double, W>;
typedef long long I __attribute__((vector_size(W * 8)));  // the lanes' bits and masks
typedef float F __attribute__((vector_size(W * 4)));

// Half angles up to this are reduced in the vector code (k * kPiOver2Head
// below is exact for k < 2^20). Larger ones, and NaN, go to libm.
constexpr double kReducedLimit = 1e6;

// -- loads, stores and the row <-> coordinate shuffles --------------------------------------

template <class T>
inline D load(const T* p) {
  if constexpr (sizeof(T) == 8) {
    D v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
  } else {
    F v;
    __builtin_memcpy(&v, p, sizeof(v));
    return __builtin_convertvector(v, D);
  }
}

template <class T>
inline void store(T* p, const D& v) {
  if constexpr (sizeof(T) == 8) {
    __builtin_memcpy(p, &v, sizeof(v));
  } else {
    const F f = __builtin_convertvector(v, F);
    __builtin_memcpy(p, &f, sizeof(f));
  }
}

// Component C of W rows of n values held in v[0..n-1].
template <int n, int C>
struct Column {
  static constexpr int at(int lane) { return n * lane + C; }
};
// Vector M of W rows of n values interleaved from n coordinate vectors v[0..n-1].
template <int n, int M>
struct Row {
  static constexpr int at(int lane) { return ((M * W + lane) % n) * W + (M * W + lane) / n; }
};

// Lane l of the result is element E::at(l) of v[0] v[1] v[2] v[3] laid end to end.
template <class E, std::size_t... L>
inline D gather(const D* v, std::index_sequence<L...>) {
#if FASTKIN_SHUFFLE
  const D low = __builtin_shufflevector(v[0], v[1], (E::at(L) < 2 * W ? E::at(L) : 0)...);
  const D high = __builtin_shufflevector(v[2], v[3], (E::at(L) >= 2 * W ? E::at(L) - 2 * W : 0)...);
  return __builtin_shufflevector(low, high, (E::at(L) < 2 * W ? int(L) : W + int(L))...);
#else
  D out;
  for (int l = 0; l < W; ++l) out[l] = v[E::at(l) / W][E::at(l) % W];
  return out;
#endif
}

// The n coordinate vectors of W rows of n values at p (v has room for 4).
template <int n, class T, std::size_t... C>
inline void load_columns(const T* p, D* coordinates, std::index_sequence<C...>) {
  D v[4];
  for (int k = 0; k < n; ++k) v[k] = load(p + k * W);
  for (int k = n; k < 4; ++k) v[k] = v[n - 1];
  ((coordinates[C] = gather<Column<n, C>>(v, std::make_index_sequence<W>{})), ...);
}

// W rows of n values to p from n coordinate vectors (c has room for 4).
template <int n, class T, std::size_t... M>
inline void store_rows(T* p, D* c, std::index_sequence<M...>) {
  for (int k = n; k < 4; ++k) c[k] = c[n - 1];
  (store(p + M * W, gather<Row<n, M>>(c, std::make_index_sequence<W>{})), ...);
}

// Rows [i, i + W) of width n: in place when all are there, else copied into
// `buffer` and padded with zeros (the kernels never read past the end).
template <int n, class T>
inline const T* whole_rows(const T* rows, int64_t count, int64_t i, T (&buffer)[n * W]) {
  if (i + W <= count) return rows + n * i;
  for (int k = 0; k < n * W; ++k) buffer[k] = k < n * (count - i) ? rows[n * i + k] : T(0);
  return buffer;
}

// Output rows [i, i + W) of width n: in place when all are there, else the
// buffer, copied out by finish_rows.
template <int n, class T>
inline T* output_rows(T* rows, int64_t count, int64_t i, T (&buffer)[n * W]) {
  return i + W <= count ? rows + n * i : buffer;
}

template <int n, class T>
inline void finish_rows(T* rows, int64_t count, int64_t i, const T (&buffer)[n * W]) {
  if (i + W > count)
    for (int k = 0; k < n * (count - i); ++k) rows[n * i + k] = buffer[k];
}

// -- the math --------------------------------------------------------------------------------

inline D square_root(D x) {
  for (int l = 0; l < W; ++l) x[l] = ::sqrt(x[l]);
  return x;
}

// sin and cos of h in [0, kReducedLimit]: h = k pi/2 + r, |r| <= pi/4.
inline void sin_cos(const D& h, D& s, D& c) {
  constexpr double kTwoOverPi = 0.63661977236758134308;
  constexpr double kPiOver2Head = 1.57079632673412561417e+00;  // pi/2 to 33 bits
  constexpr double kPiOver2Tail = 6.07710050650619224932e-11;  // pi/2 - head
  // Adding 1.5 * 2^52 rounds to an integer and leaves it in the low bits.
  constexpr double kRound = 6755399441055744.0;
  const D shifted = h * kTwoOverPi + kRound;
  const I k = (I)shifted;
  const D kd = shifted - kRound;
  const D r = (h - kd * kPiOver2Head) - kd * kPiOver2Tail;
  const D r2 = r * r;
  // Taylor series to r^17 and r^16: the next terms are below 1e-17 at pi/4.
  const D sin_r =
      r + r * r2 *
              (-1.0 / 6 +
               r2 * (1.0 / 120 +
                     r2 * (-1.0 / 5040 +
                           r2 * (1.0 / 362880 +
                                 r2 * (-1.0 / 39916800 +
                                       r2 * (1.0 / 6227020800.0 +
                                             r2 * (-1.0 / 1307674368000.0 + r2 * (1.0 / 355687428096000.0))))))));
  const D cos_r =
      1.0 + r2 * (-0.5 +
                  r2 * (1.0 / 24 +
                        r2 * (-1.0 / 720 +
                              r2 * (1.0 / 40320 +
                                    r2 * (-1.0 / 3628800 +
                                          r2 * (1.0 / 479001600.0 +
                                                r2 * (-1.0 / 87178291200.0 + r2 * (1.0 / 20922789888000.0))))))));
  // Quadrant k mod 4: sin(r + k pi/2) is sin r, cos r, -sin r, -cos r; the
  // sign goes in by flipping the sign bit.
  const I odd = (k & 1) != 0;
  s = (D)((I)(odd ? cos_r : sin_r) ^ ((k & 2) << 62));
  c = (D)((I)(odd ? sin_r : cos_r) ^ (((k + 1) & 2) << 62));
}

// theta^2, 1 / theta^2 (0 at 0), f = sin(theta/2) / theta (1/2 at 0) and
// cos(theta/2) of W axis-angles. Lanes whose half angle is past
// kReducedLimit (or NaN) are marked in `outside` and left wrong: the caller
// redoes their rows with libm (rare, so not worth a check per block).
struct HalfAngle {
  D theta2, inverse_theta2, f, c;
};

inline HalfAngle half_angle(const D& x, const D& y, const D& z, I& outside) {
  HalfAngle a;
  a.theta2 = x * x + y * y + z * z;
  const I positive = a.theta2 > 0.0;
  const D inverse_theta = 1.0 / square_root(positive ? a.theta2 : 1.0);
  const D h = 0.5 * a.theta2 * inverse_theta;
  const I inside = h <= kReducedLimit;
  outside |= ~inside;
  D s;
  sin_cos(inside ? h : 0.0, s, a.c);
  a.f = positive ? s * inverse_theta : 0.5;
  a.inverse_theta2 = positive ? inverse_theta * inverse_theta : 0.0;
  return a;
}

inline bool any(const I& mask) {
  long long bits = 0;
  for (int l = 0; l < W; ++l) bits |= mask[l];
  return bits != 0;
}

// f, cos(theta/2) and f'(theta) / theta of one axis-angle with libm, for
// the rows the vector code leaves out.
inline void half_angle_libm(double theta2, double& f, double& c, double& df) {
  const double theta = ::sqrt(theta2), h = 0.5 * theta;
  f = ::sin(h) / theta;
  c = ::cos(h);
  df = (0.5 * c - f) / theta2;
}

template <class T>
void forward(const T* axis_angle, int64_t count, T* quaternions) {
  T in_tail[3 * W], out_tail[4 * W];
  I outside = {};
  for (int64_t i = 0; i < count; i += W) {
    D v[4];
    load_columns<3>(whole_rows<3>(axis_angle, count, i, in_tail), v, std::make_index_sequence<3>{});
    const HalfAngle a = half_angle(v[0], v[1], v[2], outside);
    D q[4] = {v[0] * a.f, v[1] * a.f, v[2] * a.f, a.c};
    store_rows<4>(output_rows<4>(quaternions, count, i, out_tail), q, std::make_index_sequence<4>{});
    finish_rows<4>(quaternions, count, i, out_tail);
  }
  if (!any(outside)) return;
  for (int64_t i = 0; i < count; ++i) {
    const double x = axis_angle[3 * i], y = axis_angle[3 * i + 1], z = axis_angle[3 * i + 2];
    const double theta2 = x * x + y * y + z * z;
    if (0.25 * theta2 <= kReducedLimit * kReducedLimit) continue;
    double f, c, df;
    half_angle_libm(theta2, f, c, df);
    T* q = quaternions + 4 * i;
    q[0] = static_cast<T>(x * f), q[1] = static_cast<T>(y * f), q[2] = static_cast<T>(z * f);
    q[3] = static_cast<T>(c);
  }
}

// d(v f, cos(theta/2)) / dv applied to g: f g_xyz + v (g_xyz . v f'(theta) / theta - f / 2 g_w).
template <class T>
void backward(const T* axis_angle, const T* grad_quaternions, int64_t count, T* grad_axis_angle) {
  T in_tail[3 * W], grad_tail[4 * W], out_tail[3 * W];
  I outside = {};
  for (int64_t i = 0; i < count; i += W) {
    D v[4], g[4];
    load_columns<3>(whole_rows<3>(axis_angle, count, i, in_tail), v, std::make_index_sequence<3>{});
    load_columns<4>(whole_rows<4>(grad_quaternions, count, i, grad_tail), g, std::make_index_sequence<4>{});
    const HalfAngle a = half_angle(v[0], v[1], v[2], outside);
    // f'(theta) / theta: its series below theta = 0.1, where the closed form
    // (cos(theta/2) / 2 - f) / theta^2 starts to cancel.
    const D t2 = a.theta2;
    const D series = -1.0 / 24 + t2 * (1.0 / 960 + t2 * (-1.0 / 107520 + t2 * (1.0 / 23224320.0)));
    const D df = t2 < 0.01 ? series : (0.5 * a.c - a.f) * a.inverse_theta2;
    const D along = df * (g[0] * v[0] + g[1] * v[1] + g[2] * v[2]) - 0.5 * a.f * g[3];
    D grad[4] = {a.f * g[0] + along * v[0], a.f * g[1] + along * v[1], a.f * g[2] + along * v[2], {}};
    store_rows<3>(output_rows<3>(grad_axis_angle, count, i, out_tail), grad, std::make_index_sequence<3>{});
    finish_rows<3>(grad_axis_angle, count, i, out_tail);
  }
  if (!any(outside)) return;
  for (int64_t i = 0; i < count; ++i) {
    const T* v = axis_angle + 3 * i;
    const double theta2 = double(v[0]) * v[0] + double(v[1]) * v[1] + double(v[2]) * v[2];
    if (0.25 * theta2 <= kReducedLimit * kReducedLimit) continue;
    double f, c, df;
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
