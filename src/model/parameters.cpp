// Parameter naming, shapes and the counter-based initialisation (docs/model.md, "Parameters").
#include "model/parameters.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "kernels/cpu/parallel.h"

namespace hydraulis::model {

namespace {

// SplitMix64's finaliser: a bijective 64-bit mix (Steele, Lea, Flood 2014).
uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in (0, 1]: the top 53 bits, shifted by one ulp so log() never sees 0.
double unit_open(uint64_t bits) {
  return double((bits >> 11) + 1) * 0x1.0p-53;
}

}  // namespace

double init_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  // key = mix(mix(seed) ^ stream) ^ index; two draws per element; Box-Muller's cosine branch.
  uint64_t key = mix64(mix64(seed) ^ stream) ^ (index * 2);
  double u1 = unit_open(mix64(key));
  double u2 = unit_open(mix64(key ^ 1));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t ModelPart::layer_count(const LlamaConfig& config) const {
  return num_layers < 0 ? config.num_layers - first_layer : num_layers;
}

std::vector<ParameterSpec> parameter_specs(const LlamaConfig& config) {
  const int64_t C = config.hidden, F = config.ffn_hidden, V = config.vocab_size;
  // GPT-2 / Megatron init: N(0, 0.02²); projections into the residual stream (o_proj,
  // down_proj) scaled by 1/sqrt(2L) so the residual's variance does not grow with depth.
  constexpr double kStd = 0.02;
  const double residual_std = kStd / std::sqrt(2.0 * double(config.num_layers));
  std::vector<ParameterSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {V, C}, WeightDecay::kApply, -1, kStd});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    std::string p = fmt::format("model.layers.{}.", i);
    using L = LayerParameterIds;
    const int64_t q = config.q_width(), kv = config.kv_width();
    const WeightDecay no = WeightDecay::kNone, yes = WeightDecay::kApply;
    specs.push_back({p + "input_layernorm.weight", {C}, no, i, 0, &L::input_norm});
    specs.push_back({p + "self_attn.q_proj.weight", {q, C}, yes, i, kStd, &L::q_proj});
    specs.push_back({p + "self_attn.k_proj.weight", {kv, C}, yes, i, kStd, &L::k_proj});
    specs.push_back({p + "self_attn.v_proj.weight", {kv, C}, yes, i, kStd, &L::v_proj});
    specs.push_back({p + "self_attn.o_proj.weight", {C, q}, yes, i, residual_std, &L::o_proj});
    specs.push_back(
        {p + "post_attention_layernorm.weight", {C}, no, i, 0, &L::post_attention_norm});
    specs.push_back({p + "mlp.gate_up_proj.weight", {2 * F, C}, yes, i, kStd, &L::gate_up_proj});
    specs.push_back({p + "mlp.down_proj.weight", {C, F}, yes, i, residual_std, &L::down_proj});
  }
  specs.push_back({"model.norm.weight", {C}, WeightDecay::kNone, -1, 0});
  if (config.lm_head == LmHead::kUntied) {
    specs.push_back({"lm_head.weight", {V, C}, WeightDecay::kApply, -1, kStd});
  }
  return specs;
}

float init_value(uint64_t seed, uint64_t stream, uint64_t index, double init_std) {
  return init_std == 0 ? 1.0f : float(init_std * init_normal(seed, stream, index));
}

ParameterStore ParameterStore::create(const LlamaConfig& config, core::DType dtype,
                                      const ModelPart& part) {
  HYD_CHECK(config.validate().is_ok(), "ParameterStore::create: invalid config: {}",
            config.validate().message());
  const int64_t part_layers = part.layer_count(config);
  HYD_CHECK(part.first_layer >= 0 && part_layers >= 0 &&
                part.first_layer + part_layers <= config.num_layers,
            "ParameterStore::create: layers [{}, {}) outside the model's {} layers",
            part.first_layer, part.first_layer + part_layers, config.num_layers);
  HYD_CHECK(dtype == core::DType::kF32 || dtype == core::DType::kF64,
            "master weights are f32 (or f64 for tests), got {}", core::dtype_name(dtype));
  ParameterStore store;
  store.dtype_ = dtype;
  store.ops_ = make_ops(core::Device::kCpu).value();
  store.part_ = part;
  store.part_.num_layers = part_layers;
  const int64_t last = part.first_layer + part_layers;
  const std::vector<ParameterSpec> specs = parameter_specs(config);
  const ParameterSpec& embedding = specs.front();
  for (const ParameterSpec& spec : specs) {
    const bool in_part = spec.layer >= 0 ? spec.layer >= part.first_layer && spec.layer < last
                         : &spec == &embedding ? part.embedding
                                               : part.head;
    if (!in_part) continue;
    const size_t index = store.add(spec.name, spec.shape, spec.decay, spec.layer, spec.init_std);
    if (spec.slot != nullptr) {
      if (spec.slot == &LayerParameterIds::input_norm) store.layers_.emplace_back();
      store.layers_.back().*spec.slot = index;
    } else if (&spec == &embedding) {
      store.embedding_ = index;
    } else if (spec.name == "model.norm.weight") {
      store.final_norm_ = index;
    } else {
      store.lm_head_ = index;  // lm_head.weight
    }
  }
  if (part.head && config.lm_head == LmHead::kTied) {
    // A head-only part holds its own copy of the table (listed last), as the layouts expect.
    store.lm_head_ = part.embedding ? store.embedding_
                                    : store.add(embedding.name, embedding.shape, embedding.decay,
                                                embedding.layer, embedding.init_std);
  }
  return store;
}

size_t ParameterStore::add(std::string name, const core::Shape& shape, WeightDecay decay,
                           int64_t layer, double init_std) {
  Parameter p;
  p.name = std::move(name);
  p.value = core::Tensor::zeros(shape, dtype_);
  p.grad = core::Tensor::zeros(shape, dtype_);
  p.decay = decay;
  p.layer = layer;
  p.init_std = init_std;
  params_.push_back(std::move(p));
  return params_.size() - 1;
}

void ParameterStore::init(uint64_t seed) {
  for (size_t s = 0; s < params_.size(); ++s) {
    Parameter& p = params_[s];
    const double std_dev = p.init_std;
    const bool f64 = dtype_ == core::DType::kF64;
    void* data = p.value.raw_data();
    cpu::parallel_for(p.value.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float v = init_value(seed, s, uint64_t(i), std_dev);
        if (f64) {
          static_cast<double*>(data)[i] = v;
        } else {
          static_cast<float*>(data)[i] = v;
        }
      }
    });
  }
}

void ParameterStore::zero_grads() {
  for (Parameter& p : params_) {
    ops_->fill_zero(p.grad);
    p.grad_unwritten = false;
  }
}

void ParameterStore::defer_zero_grads() {
  for (Parameter& p : params_) p.grad_unwritten = true;
}

void ParameterStore::finish_deferred_zero() {
  for (Parameter& p : params_) {
    if (p.grad_unwritten) ops_->fill_zero(p.grad);
    p.grad_unwritten = false;
  }
}

ParameterStore ParameterStore::copy_to(std::shared_ptr<const Ops> ops) const {
  HYD_CHECK(ops != nullptr, "ParameterStore::copy_to: no backend");
  HYD_CHECK(device() == core::Device::kCpu, "ParameterStore::copy_to: copy from a CPU store");
  ParameterStore store;
  const bool on_cpu = ops->device() == core::Device::kCpu;
  store.dtype_ = on_cpu ? dtype_ : core::DType::kF32;
  store.ops_ = ops;
  store.layers_ = layers_;
  store.part_ = part_;
  store.embedding_ = embedding_;
  store.final_norm_ = final_norm_;
  store.lm_head_ = lm_head_;
  const core::DType compute = ops->compute_dtype(store.dtype_);
  // On a device with a compute copy, each layer's q, k, v compute weights and gradients are
  // adjacent rows of one allocation, so the layer runs one fused projection GEMM (fused_qkv).
  // param index → (fused tensors, first row) of its layer's q/k/v allocation.
  std::vector<std::pair<const FusedQkv*, int64_t>> fused_rows(params_.size(), {nullptr, 0});
  if (!on_cpu && compute != store.dtype_) {
    store.fused_qkv_.resize(layers_.size());
    for (size_t l = 0; l < layers_.size(); ++l) {
      const LayerParameterIds& ids = layers_[l];
      const int64_t C = params_[ids.q_proj].value.size(1);
      int64_t rows = 0;
      for (size_t id : {ids.q_proj, ids.k_proj, ids.v_proj}) {
        fused_rows[id] = {&store.fused_qkv_[l], rows};
        rows += params_[id].value.size(0);
      }
      store.fused_qkv_[l].weight = ops->empty({rows, C}, compute);
      store.fused_qkv_[l].grad = ops->zeros({rows, C}, store.dtype_);
    }
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    Parameter q = p;
    q.value = on_cpu ? p.value.clone() : ops->upload_as(p.value, store.dtype_);
    q.compute = core::Tensor();
    if (const auto [fused, row] = fused_rows[i]; fused != nullptr) {
      const int64_t n = p.value.size(0);
      q.grad = fused->grad.narrow_rows(row, row + n);
      q.compute = fused->weight.narrow_rows(row, row + n);
    } else {
      q.grad = ops->zeros(p.value.shape(), store.dtype_);
      if (compute != store.dtype_) q.compute = ops->empty(p.value.shape(), compute);
    }
    store.params_.push_back(std::move(q));
  }
  store.refresh_compute();
  return store;
}

bool ParameterStore::fused_qkv(int64_t i, core::Tensor& weight, core::Tensor& grad) const {
  if (fused_qkv_.empty()) return false;
  const FusedQkv& f = fused_qkv_[static_cast<size_t>(i)];
  const LayerParameterIds& ids = layers_[static_cast<size_t>(i)];
  // Still the views copy_to made (a caller may have replaced a parameter's tensors since).
  const auto* w = static_cast<const char*>(f.weight.raw_data());
  const auto* g = static_cast<const char*>(f.grad.raw_data());
  for (size_t id : {ids.q_proj, ids.k_proj, ids.v_proj}) {
    const Parameter& p = params_[id];
    if (!p.compute.defined() || !p.grad.defined() || p.compute.raw_data() != w || p.grad.raw_data() != g ||
        p.compute.dtype() != f.weight.dtype() || p.grad.dtype() != f.grad.dtype()) {
      return false;
    }
    w += p.compute.nbytes();
    g += p.grad.nbytes();
  }
  // ... and together exactly the fused rows.
  if (w != static_cast<const char*>(f.weight.raw_data()) + f.weight.nbytes() ||
      g != static_cast<const char*>(f.grad.raw_data()) + f.grad.nbytes()) {
    return false;
  }
  weight = f.weight;
  grad = f.grad;
  return true;
}

void ParameterStore::refresh_compute() {
  for (Parameter& p : params_) {
    if (p.compute.defined()) ops_->convert(p.value, p.compute);
  }
}

Parameter* ParameterStore::find(const std::string& name) {
  for (Parameter& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const Parameter* ParameterStore::find(const std::string& name) const {
  for (const Parameter& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

void matmul_bwd_to_grad(const Ops& ops, const core::Tensor& dy, const core::Tensor& x,
                        const core::Tensor& w, core::Tensor& dx, core::Tensor& dw,
                        std::initializer_list<Parameter*> owners) {
  bool all = true;
  for (const Parameter* p : owners) all = all && p->grad_unwritten;
  if (all) {
    ops.matmul_bwd_write_dw(dy, x, w, dx, dw);
  } else {
    for (Parameter* p : owners) grad_to_accumulate(ops, *p);
    ops.matmul_bwd(dy, x, w, dx, dw);
  }
  for (Parameter* p : owners) p->grad_unwritten = false;
}

void matmul_bwd_to_grad(const Ops& ops, const core::Tensor& dy, const core::Tensor& x,
                        core::Tensor& dx, Parameter& p) {
  matmul_bwd_to_grad(ops, dy, x, p.weight(), dx, p.grad, {&p});
}

core::Tensor& grad_to_accumulate(const Ops& ops, Parameter& p) {
  if (p.grad_unwritten) ops.fill_zero(p.grad);
  p.grad_unwritten = false;
  return p.grad;
}

int64_t ParameterStore::num_elements() const {
  int64_t n = 0;
  for (const Parameter& p : params_) n += p.value.numel();
  return n;
}

}  // namespace hydraulis::model
