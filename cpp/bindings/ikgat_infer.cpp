// Bindings for IKGAT inference: the model's tensors (a dict of numpy arrays
// named as in IKGAT.state_dict()) checked and packed once, then forward()
// with shapes, dtypes and finiteness checked and the GIL released.
#include "fastkin/ikgat_infer.h"

#include <nanobind/stl/string.h>

#include <cmath>
#include <string>
#include <vector>

#include "arrays.h"
#include "module.h"

namespace fastkin::bindings {
namespace {

std::string dtype_name(nb::dlpack::dtype t) {
  if (t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bool)) return "bool";
  const char* kind = t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float)  ? "float"
                     : t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Int)  ? "int"
                     : t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::UInt) ? "uint"
                                                                                    : "other";
  return kind + std::to_string(t.bits);
}

// `name` must have dtype T, this exact shape, and be C-contiguous.
template <class T, class A>
const T* exact(const A& a, const std::string& name, const std::vector<int64_t>& shape, const char* dtype) {
  if (a.dtype() != nb::dtype<T>())
    throw nb::type_error((name + " must have dtype " + dtype + ", got " + dtype_name(a.dtype())).c_str());
  if (shape_of(a) != shape)
    throw nb::value_error((name + " must have shape " + shape_string(shape) + ", got " + shape_string(shape_of(a))).c_str());
  require_c_contiguous(a, name.c_str());
  return static_cast<const T*>(a.data());
}

class Tensors {
 public:
  explicit Tensors(const nb::dict& d) : dict_(d) {}

  ConstArray get(const std::string& key) const {
    if (!dict_.contains(key.c_str())) throw nb::value_error(("weights has no '" + key + "'").c_str());
    ConstArray a;
    if (!nb::try_cast(dict_[key.c_str()], a))
      throw nb::type_error(("weights['" + key + "'] must be a numpy array on the CPU").c_str());
    kept_.push_back(a);
    return a;
  }

  const float* floats(const std::string& key, const std::vector<int64_t>& shape) const {
    const ConstArray a = get(key);
    const float* p = exact<float>(a, "weights['" + key + "']", shape, "float32");
    for (size_t i = 0; i < a.size(); ++i)
      if (!std::isfinite(p[i])) throw nb::value_error(("weights['" + key + "'] holds NaN or infinity").c_str());
    return p;
  }

 private:
  const nb::dict& dict_;
  mutable std::vector<ConstArray> kept_;  // alive until the weights are packed
};

class IkgatInference {
 public:
  IkgatInference(const nb::dict& weights, int heads, int layers, bool from_positions) {
    if (heads < 1) throw nb::value_error("heads must be >= 1");
    if (layers < 0) throw nb::value_error("layers must be >= 0");
    const Tensors t(weights);
    const ConstArray embed = t.get("embed_weight");
    if (embed.ndim() != 3 || (from_positions && embed.shape(1) != 6) || embed.shape(0) < 1 || embed.shape(1) < 1 ||
        embed.shape(2) < 1)
      throw nb::value_error(("weights['embed_weight'] must have shape (J, " + std::string(from_positions ? "6" : "F") +
                             ", W), got " + shape_string(shape_of(embed))).c_str());
    const int64_t J = static_cast<int64_t>(embed.shape(0)), F = static_cast<int64_t>(embed.shape(1)),
                  W = static_cast<int64_t>(embed.shape(2));
    if (W % heads) throw nb::value_error(("heads (" + std::to_string(heads) + ") must divide width (" +
                                          std::to_string(W) + ")").c_str());
    IkgatParams p;
    p.joints = static_cast<int>(J);
    p.width = static_cast<int>(W);
    p.heads = heads;
    p.parents = exact<int32_t>(t.get("parents"), "weights['parents']", {J}, "int32");
    p.has_bone = reinterpret_cast<const uint8_t*>(exact<bool>(t.get("has_bone"), "weights['has_bone']", {J}, "bool"));
    p.blocked = reinterpret_cast<const uint8_t*>(exact<bool>(t.get("blocked"), "weights['blocked']", {J, J}, "bool"));
    p.from_positions = from_positions;
    p.features = static_cast<int>(F);
    p.embed_weight = t.floats("embed_weight", {J, F, W});
    p.embed_bias = t.floats("embed_bias", {J, W});
    int64_t E = 0;
    for (int l = 0; l < layers; ++l) {
      const std::string b = "blocks." + std::to_string(l) + ".";
      if (l == 0) {
        const ConstArray mlp = t.get(b + "mlp.0.weight");
        E = mlp.ndim() == 2 ? static_cast<int64_t>(mlp.shape(0)) : 0;
        if (E < 1) throw nb::value_error(("weights['" + b + "mlp.0.weight'] must have shape (E, " + std::to_string(W) +
                                          "), got " + shape_string(shape_of(mlp))).c_str());
      }
      p.blocks.push_back({t.floats(b + "norm1.weight", {W}), t.floats(b + "norm1.bias", {W}),
                          t.floats(b + "qkv.weight", {3 * W, W}), t.floats(b + "qkv.bias", {3 * W}),
                          t.floats(b + "pair_bias", {heads, J, J}), t.floats(b + "out.weight", {W, W}),
                          t.floats(b + "out.bias", {W}), t.floats(b + "norm2.weight", {W}),
                          t.floats(b + "norm2.bias", {W}), t.floats(b + "mlp.0.weight", {E, W}),
                          t.floats(b + "mlp.0.bias", {E}), t.floats(b + "mlp.2.weight", {W, E}),
                          t.floats(b + "mlp.2.bias", {W})});
    }
    p.hidden = static_cast<int>(layers ? E : 1);
    p.norm_weight = t.floats("norm.weight", {W});
    p.norm_bias = t.floats("norm.bias", {W});
    p.head_weight = t.floats("head_weight", {J, W, 6});
    p.head_bias = t.floats("head_bias", {J, 6});
    weights_ = make_ikgat_weights(p);  // std::invalid_argument -> ValueError
  }

  void forward(const ConstArray& inputs, Array& out) const {
    const int64_t J = weights_.joints, F = weights_.from_positions ? 3 : weights_.features;
    const std::string name = weights_.from_positions ? "positions" : "features";
    if (inputs.dtype() != nb::dtype<float>())
      throw nb::type_error((name + " must have dtype float32, got " + dtype_name(inputs.dtype())).c_str());
    if (inputs.ndim() != 3 || static_cast<int64_t>(inputs.shape(1)) != J || static_cast<int64_t>(inputs.shape(2)) != F)
      throw nb::value_error((name + " must have shape (B, " + std::to_string(J) + ", " + std::to_string(F) +
                             "), got " + shape_string(shape_of(inputs))).c_str());
    const int64_t batch = static_cast<int64_t>(inputs.shape(0));
    const float* p = exact<float>(inputs, name, {batch, J, F}, "float32");
    float* o = const_cast<float*>(exact<float>(out, "out", {batch, J, 3, 3}, "float32"));
    for (int64_t i = 0; i < batch * J * F; ++i)
      if (!std::isfinite(p[i])) throw nb::value_error((name + " must be finite (they hold NaN or infinity)").c_str());
    nb::gil_scoped_release release;
    ikgat_forward(weights_, p, batch, o);
  }

  int joints() const { return weights_.joints; }
  int64_t flops_per_frame() const { return ikgat_flops_per_frame(weights_); }

 private:
  IkgatWeights weights_;
};

}  // namespace

void bind_ikgat_infer(nb::module_& m) {
  nb::class_<IkgatInference>(m, "IKGATInference",
                             "IKGAT's forward pass compiled: weights is IKGAT.state_dict() as numpy arrays "
                             "(float32; parents int32, has_bone and blocked bool). from_positions=False: the "
                             "tokens' F inputs are given to forward (embed_weight (J, F, W)).")
      .def(nb::init<const nb::dict&, int, int, bool>(), nb::arg("weights"), nb::arg("heads"), nb::arg("layers"),
           nb::arg("from_positions") = true)
      .def("forward", &IkgatInference::forward, nb::arg("inputs"), nb::arg("out"),
           "inputs float32 (B, J, 3) positions, or (B, J, F) features -> out float32 (B, J, 3, 3) rotations "
           "(6D head, Gram-Schmidt).")
      .def_prop_ro("joints", &IkgatInference::joints)
      .def_prop_ro("flops_per_frame", &IkgatInference::flops_per_frame);
}

}  // namespace fastkin::bindings
