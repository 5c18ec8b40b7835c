// Small 3x3 and quaternion helpers of analytic IK, included into an
// anonymous or per-instruction-set namespace by ik_analytic.cpp and
// ik_block.inl, so every copy has internal linkage. Nothing here may be an
// inline function of std:: (the linker could merge a copy compiled with
// -mavx2 into the baseline build): square roots are builtins, limits macros.

#if defined(_MSC_VER) && !defined(__clang__)
inline double square_root(double x) { return std::sqrt(x); }  // MSVC builds only the baseline kernels
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
#else
inline double square_root(double x) { return __builtin_sqrt(x); }
constexpr double kNaN = __builtin_nan("");
#endif

inline double absolute(double x) { return x < 0.0 ? -x : x; }

constexpr double kIdentity[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};

inline double dot3(const double* a, const double* b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

inline void cross3(const double* a, const double* b, double* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

// out = m v
inline void mat_vec(const double* m, const double* v, double* out) {
  for (int i = 0; i < 3; ++i) out[i] = m[3 * i] * v[0] + m[3 * i + 1] * v[1] + m[3 * i + 2] * v[2];
}

// out = mᵀ v
inline void mat_t_vec(const double* m, const double* v, double* out) {
  for (int i = 0; i < 3; ++i) out[i] = m[i] * v[0] + m[3 + i] * v[1] + m[6 + i] * v[2];
}

// out = a b (out must not alias a or b)
inline void mul(const double* a, const double* b, double* out) {
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) out[3 * i + k] = a[3 * i] * b[k] + a[3 * i + 1] * b[3 + k] + a[3 * i + 2] * b[6 + k];
}

// out = aᵀ b (out must not alias a or b)
inline void mul_tn(const double* a, const double* b, double* out) {
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) out[3 * i + k] = a[i] * b[k] + a[3 + i] * b[3 + k] + a[6 + i] * b[6 + k];
}

inline void copy9(const double* from, double* to) {
  for (int i = 0; i < 9; ++i) to[i] = from[i];
}

// The rotation matrix of the quaternion (x, y, z, w) / |q|, |q| > 0.
inline void quat_matrix(double x, double y, double z, double w, double* out) {
  const double s = 2.0 / (x * x + y * y + z * z + w * w);
  const double xs = x * s, ys = y * s, zs = z * s;
  const double xx = x * xs, yy = y * ys, zz = z * zs;
  const double xy = x * ys, xz = x * zs, yz = y * zs;
  const double wx = w * xs, wy = w * ys, wz = w * zs;
  out[0] = 1.0 - (yy + zz), out[1] = xy - wz, out[2] = xz + wy;
  out[3] = xy + wz, out[4] = 1.0 - (xx + zz), out[5] = yz - wx;
  out[6] = xz - wy, out[7] = yz + wx, out[8] = 1.0 - (xx + yy);
}

// A half turn about an axis perpendicular to a: a × e, with e the axis of

inline double det3(const double* m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
         m[2] * (m[3] * m[7] - m[4] * m[6]);
}
