// jaxconv's convolution family on oneDNN: XLA FFI handlers for three maps, 1-D to 3-D, in two
// input types: float32 (jaxconv_conv_{fwd,bwd_data,bwd_weights}_f32) and bfloat16 (..._bf16).
//
// The same three maps as jaxconv's pure-JAX lowerings (jaxconv/convolution/lowering/), in the
// layouts jaxconv works in ("channels-last"): x (N, *S, C), w (*K, C_g, F), y (N, *O, F), with
// G groups, C_g = C / G input channels per group and output channel f = g * F_g + o. One spatial
// dim shown (every dim alike), stride s, dilation d, padding (lo, hi), x_p = x zero-padded:
//
//   forward         y[n, j, f]  = sum_{m, c} x_p[n, j*s + m*d, g*C_g + c] * w[m, c, f]
//   backward data   dx          = the transpose of the forward in x: g zero-dilated by s,
//                                 correlated with the 180-degree rotated kernel whose in/out
//                                 channels are regrouped (a transposed convolution)
//   backward weights dw[m, c, f] = sum_{n, j} x_p[n, j*s + m*d, g*C_g + c] * g[n, j, f]
//
// Both operands of a handler have its input type; its result is float32 in both. With bfloat16
// inputs oneDNN multiplies bf16 x bf16 and accumulates in float32, as jaxconv's pure-JAX
// lowerings do (preferred_element_type=float32), and y (f32 dst), dx (f32 diff_src) and dw
// (f32 diff_weights) are written unrounded; the caller casts them to the dtype it returns.
//
// Activations are handed to oneDNN in their own channels-last layout (format tags nwc / nhwc /
// ndhwc); weights are described by their strides and reordered into the layout the primitive
// prefers (format_tag::any), and dw back out of it. Primitives, their descriptors and the
// reorders are cached per (kind, input type, shapes, settings) in a bounded LRU map. A call's
// temporary memory -- oneDNN's scratchpad and the weights in oneDNN's layout -- lives in a
// second result of the custom call, a byte buffer XLA allocates (so it shows in the compiled
// program's memory analysis and XLA reuses it), sized while tracing by
// jaxconv_conv_workspace_bytes; a call that finds it too small (another thread count than the
// one it was sized for) allocates its own. Concurrent calls of one shape are safe.
// Every bad input returns an ffi::Error naming the handler; nothing is written out of bounds.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Dims = memory::dims;

namespace {

enum class Kind : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// The inputs' element type: float32 or bfloat16 (the result is float32 either way).
using Type = memory::data_type;

// The handler's name, as exported: the kind and the inputs' type.
std::string KindName(Kind kind, Type type) {
  const char* base = kind == Kind::kForward         ? "jaxconv_conv_fwd_"
                     : kind == Kind::kBackwardData ? "jaxconv_conv_bwd_data_"
                                                   : "jaxconv_conv_bwd_weights_";
  return std::string(base) + (type == Type::bf16 ? "bf16" : "f32");
}

// The layer, as checked shapes and settings (jaxconv's conventions: dilation 1 = dense).
struct Layer {
  Type type = Type::f32;  // the inputs' element type
  int64_t threads = 1;    // oneDNN's OpenMP threads (the plan is made for this many)
  int64_t n = 0, c = 0, f = 0, groups = 1;
  std::vector<int64_t> in, k, out, stride, lo, hi, dilation;  // spatial, one entry per dim

  int64_t nd() const { return static_cast<int64_t>(in.size()); }
  // N prod(O) F prod(K) C_g: the multiply-adds of each of the three convolutions.
  int64_t Macs() const {
    int64_t macs = n * f * (c / groups);
    for (size_t i = 0; i < in.size(); ++i) macs *= out[i] * k[i];
    return macs;
  }
  std::vector<int64_t> Key(Kind kind) const {
    std::vector<int64_t> key = {static_cast<int64_t>(kind), static_cast<int64_t>(type), threads,
                                n, c, f, groups};
    for (const auto* v : {&in, &k, &out, &stride, &lo, &hi, &dilation}) {
      key.insert(key.end(), v->begin(), v->end());
    }
    return key;
  }
};

std::string Join(ffi::Span<const int64_t> v) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << ")";
  return s.str();
}

// Validate the buffers' shapes against each other and the settings; fill `layer` (its `type`
// is the inputs' element type, set by the caller).
// x_dims (N, *S, C), w_dims (*K, C_g, F), y_dims (N, *O, F): whichever of the three the
// handler has as an input or an output; all three are checked.
ffi::Error Describe(Kind kind, ffi::Span<const int64_t> x_dims, ffi::Span<const int64_t> w_dims,
                    ffi::Span<const int64_t> y_dims, ffi::Span<const int64_t> stride,
                    ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                    ffi::Span<const int64_t> dilation, int64_t groups, Layer* layer) {
  const std::string who = KindName(kind, layer->type);
  // The buffers' names in this handler's messages (its inputs and its result).
  const std::string xn = kind == Kind::kBackwardData ? "dx" : "x";
  const std::string wn = kind == Kind::kBackwardWeights ? "dw" : "w";
  const std::string yn = kind == Kind::kForward ? "y" : "g";
  const int64_t rank = static_cast<int64_t>(x_dims.size());
  const int64_t nd = rank - 2;
  if (nd < 1 || nd > 3) {
    return ffi::Error::InvalidArgument(who + ": 1 to 3 spatial dims, got " + xn + " of rank " +
                                       std::to_string(rank));
  }
  if (static_cast<int64_t>(w_dims.size()) != rank || static_cast<int64_t>(y_dims.size()) != rank) {
    return ffi::Error::InvalidArgument(who + ": " + xn + ", " + wn + " and " + yn +
                                       " must have the same rank, got " + xn + " " + Join(x_dims) +
                                       ", " + wn + " " + Join(w_dims) + ", " + yn + " " +
                                       Join(y_dims));
  }
  for (auto* attr : {&stride, &pad_lo, &pad_hi, &dilation}) {
    if (static_cast<int64_t>(attr->size()) != nd) {
      return ffi::Error::InvalidArgument(who + ": stride, pad_lo, pad_hi and dilation need " +
                                         std::to_string(nd) + " entries each");
    }
  }
  Layer& l = *layer;
  l.n = x_dims[0];
  l.c = x_dims[rank - 1];
  l.f = w_dims[rank - 1];
  l.groups = groups;
  if (groups < 1 || l.c % groups != 0 || l.f % groups != 0 || w_dims[rank - 2] * groups != l.c) {
    return ffi::Error::InvalidArgument(
        who + ": groups=" + std::to_string(groups) + " must divide C=" + std::to_string(l.c) +
        " and F=" + std::to_string(l.f) + ", and " + wn + " " + Join(w_dims) +
        " must have C/groups input channels");
  }
  if (y_dims[0] != l.n || y_dims[rank - 1] != l.f) {
    return ffi::Error::InvalidArgument(who + ": " + yn + " " + Join(y_dims) + " does not match " +
                                       xn + " " + Join(x_dims) + " and " + wn + " " +
                                       Join(w_dims) + " (batch or output channels)");
  }
  l.in.clear(), l.k.clear(), l.out.clear(), l.stride.clear(), l.lo.clear(), l.hi.clear(),
      l.dilation.clear();
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t s = stride[i], lo = pad_lo[i], hi = pad_hi[i], d = dilation[i];
    if (s < 1 || d < 1 || lo < 0 || hi < 0) {
      return ffi::Error::InvalidArgument(
          who + ": stride and dilation must be >= 1 and padding >= 0, got stride " +
          Join(stride) + ", dilation " + Join(dilation) + ", padding " + Join(pad_lo) + " / " +
          Join(pad_hi));
    }
    const int64_t k_eff = (w_dims[i] - 1) * d + 1;
    const int64_t span = x_dims[i + 1] + lo + hi - k_eff;
    const int64_t o = span < 0 ? 0 : span / s + 1;
    if (o != y_dims[i + 1]) {
      return ffi::Error::InvalidArgument(who + ": " + yn + " " + Join(y_dims) +
                                         " has the wrong size in spatial dim " + std::to_string(i) +
                                         " (expected " + std::to_string(o) + " from " + xn + " " +
                                         Join(x_dims) + " and " + wn + " " + Join(w_dims) + ")");
    }
    l.in.push_back(x_dims[i + 1]);
    l.k.push_back(w_dims[i]);
    l.out.push_back(o);
    l.stride.push_back(s);
    l.lo.push_back(lo);
    l.hi.push_back(hi);
    l.dilation.push_back(d - 1);  // oneDNN counts the gaps: 0 = dense
  }
  return ffi::Error::Success();
}

memory::format_tag ChannelsLast(int64_t nd) {
  return nd == 1 ? memory::format_tag::nwc
                 : nd == 2 ? memory::format_tag::nhwc : memory::format_tag::ndhwc;
}

// x or y: logical dims {N, C, *spatial}, channels-last in memory, elements of `type`.
memory::desc ActivationDesc(int64_t n, int64_t c, const std::vector<int64_t>& spatial,
                            Type type) {
  Dims dims = {n, c};
  dims.insert(dims.end(), spatial.begin(), spatial.end());
  return memory::desc(dims, type, ChannelsLast(spatial.size()));
}

// The weights' logical dims: {G, F_g, C_g, *K} grouped, {F, C, *K} otherwise.
Dims WeightDims(const Layer& l) {
  Dims dims = l.groups > 1 ? Dims{l.groups, l.f / l.groups, l.c / l.groups} : Dims{l.f, l.c};
  dims.insert(dims.end(), l.k.begin(), l.k.end());
  return dims;
}

// jaxconv's kernel (*K, C_g, F) described by strides over WeightDims: F innermost (o: 1, the
// group: F_g), then C_g (stride F), then the spatial dims row-major; elements of `type`.
memory::desc UserWeightDesc(const Layer& l, Type type) {
  const int64_t cg = l.c / l.groups;
  std::vector<int64_t> k_strides(l.k.size());
  int64_t acc = cg * l.f;
  for (int64_t i = static_cast<int64_t>(l.k.size()) - 1; i >= 0; --i) {
    k_strides[i] = acc;
    acc *= l.k[i];
  }
  Dims strides = l.groups > 1 ? Dims{l.f / l.groups, 1, l.f} : Dims{1, l.f};
  strides.insert(strides.end(), k_strides.begin(), k_strides.end());
  return memory::desc(WeightDims(l), type, strides);
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One cached layer: its primitive, what it reads and writes, and the weights' reorder.
struct Plan {
  dnnl::primitive op;
  memory::desc src, weights, dst, scratchpad;  // weights: the layout `op` uses
  memory::desc user_weights;
  bool reorder_weights = false;  // user_weights != weights
  dnnl::primitive weights_reorder;  // user -> op's (fwd, bwd data); op's -> user (bwd weights)
};

// The weights in the layout the primitive prefers (format_tag::any), elements of `type`.
memory::desc AnyWeightDesc(const Layer& l, Type type) {
  return memory::desc(WeightDims(l), type, memory::format_tag::any);
}

// A forward convolution: src and weights of the layer's type, dst of `dst_type`.
dnnl::convolution_forward::primitive_desc ForwardDesc(const Layer& l, dnnl::prop_kind prop,
                                                      Type dst_type,
                                                      const dnnl::primitive_attr& attr) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), prop, dnnl::algorithm::convolution_direct, ActivationDesc(l.n, l.c, l.in, l.type),
      AnyWeightDesc(l, l.type), ActivationDesc(l.n, l.f, l.out, dst_type), l.stride, l.dilation,
      l.lo, l.hi, attr);
}

// The inputs are of the layer's type (f32 or bf16), the result float32: y (forward dst), dx
// (backward data diff_src) and dw (backward weights diff_weights, user layout and oneDNN's).
std::shared_ptr<Plan> MakePlan(Kind kind, const Layer& l) {
  const Type t = l.type, f32 = Type::f32;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto plan = std::make_shared<Plan>();
  plan->user_weights = UserWeightDesc(l, kind == Kind::kBackwardWeights ? f32 : t);
  if (kind == Kind::kForward) {
    auto pd = ForwardDesc(l, dnnl::prop_kind::forward_inference, f32, attr);
    plan->op = dnnl::convolution_forward(pd);
    plan->src = pd.src_desc(), plan->weights = pd.weights_desc(), plan->dst = pd.dst_desc();
    plan->scratchpad = pd.scratchpad_desc();
  } else if (kind == Kind::kBackwardData) {
    auto hint = ForwardDesc(l, dnnl::prop_kind::forward_training, t, attr);
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, ActivationDesc(l.n, l.c, l.in, f32),
        AnyWeightDesc(l, t), ActivationDesc(l.n, l.f, l.out, t), l.stride, l.dilation, l.lo,
        l.hi, hint, attr);
    plan->op = dnnl::convolution_backward_data(pd);
    plan->src = pd.diff_dst_desc(), plan->weights = pd.weights_desc();
    plan->dst = pd.diff_src_desc(), plan->scratchpad = pd.scratchpad_desc();
  } else {
    auto hint = ForwardDesc(l, dnnl::prop_kind::forward_training, t, attr);
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, ActivationDesc(l.n, l.c, l.in, t),
        AnyWeightDesc(l, f32), ActivationDesc(l.n, l.f, l.out, t), l.stride, l.dilation, l.lo,
        l.hi, hint, attr);
    plan->op = dnnl::convolution_backward_weights(pd);
    plan->src = pd.src_desc(), plan->weights = pd.diff_weights_desc();
    plan->dst = pd.diff_dst_desc(), plan->scratchpad = pd.scratchpad_desc();
  }
  plan->reorder_weights = plan->weights != plan->user_weights;
  if (plan->reorder_weights) {
    const bool out = kind == Kind::kBackwardWeights;
    const memory::desc& from = out ? plan->weights : plan->user_weights;
    const memory::desc& to = out ? plan->user_weights : plan->weights;
    plan->weights_reorder =
        dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), from, Engine(), to));
  }
  return plan;
}

struct KeyHash {
  size_t operator()(const std::vector<int64_t>& key) const {
    size_t h = 1469598103934665603ull;
    for (int64_t v : key) h = (h ^ static_cast<size_t>(v)) * 1099511628211ull;
    return h;
  }
};

// Plans by key, least recently used first out when over capacity.
class PlanCache {
 public:
  static constexpr size_t kCapacity = 64;

  std::shared_ptr<Plan> Get(Kind kind, const Layer& l) {
    std::vector<int64_t> key = l.Key(kind);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        order_.splice(order_.begin(), order_, it->second.second);
        return it->second.first;
      }
    }
    std::shared_ptr<Plan> plan = MakePlan(kind, l);  // outside the lock: may take a while
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) return it->second.first;  // another thread made it meanwhile
    order_.push_front(key);
    map_.emplace(key, std::make_pair(plan, order_.begin()));
    while (map_.size() > kCapacity) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    return plan;
  }

 private:
  std::mutex mu_;
  std::list<std::vector<int64_t>> order_;
  std::unordered_map<std::vector<int64_t>,
                     std::pair<std::shared_ptr<Plan>, std::list<std::vector<int64_t>>::iterator>,
                     KeyHash>
      map_;
};

PlanCache& Cache() {
  static PlanCache cache;
  return cache;
}

// A call's workspace: the scratchpad, then the weights in oneDNN's layout where they are
// reordered, each starting on a 64-byte boundary (oneDNN's preferred alignment; 64 bytes of
// slack let the start be aligned whatever XLA's buffer alignment).
constexpr size_t kAlign = 64;
size_t Rounded(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
uint8_t* Aligned(uint8_t* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<uint8_t*>((v + kAlign - 1) / kAlign * kAlign);
}
size_t WorkspaceBytes(const Plan& plan) {
  return kAlign + Rounded(plan.scratchpad.get_size()) +
         (plan.reorder_weights ? Rounded(plan.weights.get_size()) : 0);
}

bool Empty(ffi::Span<const int64_t> dims) {
  return std::any_of(dims.begin(), dims.end(), [](int64_t v) { return v == 0; });
}

// Run `kind` on the three buffers (a, b in, of the layer's type; out written, float32), each
// as its own channels-last or kernel layout: forward (x, w -> y), backward data (g, w -> dx),
// backward weights (x, g -> dw).
ffi::Error Run(Kind kind, const Layer& l, const void* a, const void* b, float* out,
               size_t out_elements, uint8_t* workspace, size_t workspace_bytes) {
  try {
    std::shared_ptr<Plan> plan = Cache().Get(kind, l);
    dnnl::stream stream(Engine());
    std::unique_ptr<uint8_t[]> own;  // only where XLA's workspace is too small
    const size_t need = WorkspaceBytes(*plan);
    if (workspace_bytes < need) {
      own.reset(new uint8_t[need]);
      workspace = own.get();
    }
    uint8_t* scratch = Aligned(workspace);
    uint8_t* weights_buffer = scratch + Rounded(plan->scratchpad.get_size());
    memory scratch_mem(plan->scratchpad, Engine(), scratch);
    auto in = [](const memory::desc& d, const void* p) {
      return memory(d, Engine(), const_cast<void*>(p));
    };
    if (kind == Kind::kBackwardWeights) {
      memory src = in(plan->src, a), diff_dst = in(plan->dst, b);
      memory user(plan->user_weights, Engine(), out);
      memory diff_weights = user;
      if (plan->reorder_weights) {
        diff_weights = memory(plan->weights, Engine(), weights_buffer);
      }
      plan->op.execute(stream, {{DNNL_ARG_SRC, src},
                                {DNNL_ARG_DIFF_DST, diff_dst},
                                {DNNL_ARG_DIFF_WEIGHTS, diff_weights},
                                {DNNL_ARG_SCRATCHPAD, scratch_mem}});
      if (plan->reorder_weights) {
        plan->weights_reorder.execute(stream, {{DNNL_ARG_FROM, diff_weights}, {DNNL_ARG_TO, user}});
      }
    } else {
      memory weights = in(plan->user_weights, b);
      if (plan->reorder_weights) {
        memory reordered(plan->weights, Engine(), weights_buffer);
        plan->weights_reorder.execute(stream, {{DNNL_ARG_FROM, weights}, {DNNL_ARG_TO, reordered}});
        weights = reordered;
      }
      memory source = in(plan->src, a), result(plan->dst, Engine(), out);
      if (kind == Kind::kForward) {
        plan->op.execute(stream, {{DNNL_ARG_SRC, source},
                                  {DNNL_ARG_WEIGHTS, weights},
                                  {DNNL_ARG_DST, result},
                                  {DNNL_ARG_SCRATCHPAD, scratch_mem}});
      } else {
        plan->op.execute(stream, {{DNNL_ARG_DIFF_DST, source},
                                  {DNNL_ARG_WEIGHTS, weights},
                                  {DNNL_ARG_DIFF_SRC, result},
                                  {DNNL_ARG_SCRATCHPAD, scratch_mem}});
      }
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    std::memset(out, 0, out_elements * sizeof(float));
    return ffi::Error::Internal(KindName(kind, l.type) + ": oneDNN failed: " + e.what());
  } catch (const std::exception& e) {
    std::memset(out, 0, out_elements * sizeof(float));
    return ffi::Error::Internal(KindName(kind, l.type) + ": " + e.what());
  }
  return ffi::Error::Success();
}

// The oneDNN type of the FFI input type T (the two the handlers are instantiated for).
template <ffi::DataType T>
constexpr Type TypeOf() {
  static_assert(T == ffi::F32 || T == ffi::BF16, "float32 or bfloat16 inputs only");
  return T == ffi::BF16 ? Type::bf16 : Type::f32;
}

// Multiply-adds of one call (the same count for the three kinds), below which it runs on one
// thread: waking OpenMP's sleeping team costs more than the work. Measured on the MNIST-1D
// network (batch 100, 25 channels, 0.9-1.9 M multiply-adds per call): 7.2 s per training seed
// with the team, 4.2 s with one thread, 5.2 s on the pure-JAX lowering; the benchmark's
// smallest layer on the kernels (lenet_c2, 9.8 M) keeps the team.
constexpr int64_t kSmallCall = int64_t{1} << 22;

// oneDNN's OpenMP threads for a call: no more than XLA's intra-op pool has (the cores XLA would
// use: XLA and oneDNN then never run more busy threads than that pool between them, one call at
// a time), nor than OpenMP's own default (OMP_NUM_THREADS, else the cores in the affinity mask),
// and one for a call under kSmallCall multiply-adds. Set on the calling thread before the plan
// is made and run: a plan is made for its count (part of the cache key).
// `xla`: the pool's size (0 or less: unknown, as while tracing).
int Threads(int64_t xla, int64_t macs) {
  static const int openmp_default = omp_get_max_threads();
  if (macs < kSmallCall) return 1;
  return xla > 0 ? static_cast<int>(std::min<int64_t>(xla, openmp_default)) : openmp_default;
}

// The one handler body, for the three kinds and both input types T (F32, BF16): `a` and `b`
// are the inputs, `out` the float32 result, in the order of the table at the top:
//   forward          (x, w -> y):  y = conv(x, w);
//   backward data    (g, w -> dx): dx = conv^T(g, w), a transposed convolution of g;
//   backward weights (x, g -> dw): x correlated with g, summed over batch and space.
// The shapes are checked as (x, w, y), whichever buffers hold them.
template <Kind kind, ffi::DataType T>
ffi::Error Handle(ffi::ThreadPool pool, ffi::Buffer<T> a, ffi::Buffer<T> b,
                  ffi::ResultBuffer<ffi::F32> out, ffi::ResultBuffer<ffi::U8> workspace,
                  ffi::Span<const int64_t> stride, ffi::Span<const int64_t> pad_lo,
                  ffi::Span<const int64_t> pad_hi, ffi::Span<const int64_t> dilation,
                  int64_t groups) {
  const ffi::Span<const int64_t> a_dims = a.dimensions(), b_dims = b.dimensions(),
                                 out_dims = out->dimensions();
  const ffi::Span<const int64_t> x_dims = kind == Kind::kBackwardData ? out_dims : a_dims;
  const ffi::Span<const int64_t> w_dims = kind == Kind::kBackwardWeights ? out_dims : b_dims;
  const ffi::Span<const int64_t> y_dims = kind == Kind::kForward ? out_dims
                                          : kind == Kind::kBackwardData ? a_dims
                                                                        : b_dims;
  Layer l;
  l.type = TypeOf<T>();
  ffi::Error err =
      Describe(kind, x_dims, w_dims, y_dims, stride, pad_lo, pad_hi, dilation, groups, &l);
  if (err.failure()) return err;
  l.threads = Threads(pool.num_threads(), l.Macs());
  if (Empty(a_dims) || Empty(b_dims) || Empty(out_dims)) {
    std::fill_n(out->typed_data(), out->element_count(), 0.0f);
    return ffi::Error::Success();
  }
  omp_set_num_threads(static_cast<int>(l.threads));  // this (calling) thread's teams only
  return Run(kind, l, a.untyped_data(), b.untyped_data(), out->typed_data(),
             out->element_count(), workspace->typed_data(), workspace->element_count());
}

// Two inputs of type T, a float32 result, the layer's settings as attributes.
template <ffi::DataType T>
auto Binding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()  // XLA's intra-op pool: its size caps oneDNN's threads
      .Arg<ffi::Buffer<T>>()
      .template Arg<ffi::Buffer<T>>()  // `template`: the binding's type depends on T from here
      .template Ret<ffi::Buffer<ffi::F32>>()
      .template Ret<ffi::Buffer<ffi::U8>>()  // the workspace (jaxconv_conv_workspace_bytes)
      .template Attr<ffi::Span<const int64_t>>("stride")
      .template Attr<ffi::Span<const int64_t>>("pad_lo")
      .template Attr<ffi::Span<const int64_t>>("pad_hi")
      .template Attr<ffi::Span<const int64_t>>("dilation")
      .template Attr<int64_t>("groups");
}

}  // namespace

// The library's exports (it is compiled with -fvisibility=hidden; the macro's extern "C"
// functions carry no visibility of their own).
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_conv_fwd_f32, (Handle<Kind::kForward, ffi::F32>),
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_conv_bwd_data_f32, (Handle<Kind::kBackwardData, ffi::F32>),
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_conv_bwd_weights_f32,
                              (Handle<Kind::kBackwardWeights, ffi::F32>), Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_conv_fwd_bf16, (Handle<Kind::kForward, ffi::BF16>),
                              Binding<ffi::BF16>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_conv_bwd_data_bf16, (Handle<Kind::kBackwardData, ffi::BF16>),
                              Binding<ffi::BF16>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxconv_conv_bwd_weights_bf16,
                              (Handle<Kind::kBackwardWeights, ffi::BF16>), Binding<ffi::BF16>());

// The workspace bytes a call of `kind` (0 forward, 1 backward data, 2 backward weights) with
// inputs of bfloat16 (`bf16` = 1) or float32 needs, for x (N, *S, C), w (*K, C_g, F) and
// y (N, *O, F) of rank `rank` and the handlers' settings (`rank` - 2 entries each), on the
// threads a call of this size takes when XLA's pool is at least OpenMP's default; -1 when the
// layer is invalid or oneDNN cannot make it. Makes (and caches) the call's plan, on the calling
// thread's OpenMP setting for that count, restored after.
extern "C" __attribute__((visibility("default"))) int64_t jaxconv_conv_workspace_bytes(
    int64_t kind, int64_t bf16, int64_t rank, const int64_t* x_dims, const int64_t* w_dims,
    const int64_t* y_dims, const int64_t* stride, const int64_t* pad_lo, const int64_t* pad_hi,
    const int64_t* dilation, int64_t groups) {
  if (kind < 0 || kind > 2 || rank < 3 || rank > 5) return -1;
  const size_t r = static_cast<size_t>(rank), nd = r - 2;
  using S = ffi::Span<const int64_t>;
  Layer l;
  l.type = bf16 ? Type::bf16 : Type::f32;
  const Kind k = static_cast<Kind>(kind);
  if (Describe(k, S(x_dims, r), S(w_dims, r), S(y_dims, r), S(stride, nd), S(pad_lo, nd),
               S(pad_hi, nd), S(dilation, nd), groups, &l)
          .failure()) {
    return -1;
  }
  for (const int64_t* dims : {x_dims, w_dims, y_dims}) {
    if (Empty(S(dims, r))) return 0;  // the handler writes zeros, no oneDNN call
  }
  l.threads = Threads(0, l.Macs());
  const int before = omp_get_max_threads();
  omp_set_num_threads(static_cast<int>(l.threads));
  int64_t bytes = -1;
  try {
    bytes = static_cast<int64_t>(WorkspaceBytes(*Cache().Get(k, l)));
  } catch (const std::exception&) {  // -1: the call itself reports oneDNN's error
  }
  omp_set_num_threads(before);
  return bytes;
}

// oneDNN's version the library runs with: major * 10000 + minor * 100 + patch.
extern "C" __attribute__((visibility("default"))) int jaxconv_native_onednn_version(void) {
  const dnnl_version_t* v = dnnl_version();
  return static_cast<int>(v->major * 10000 + v->minor * 100 + v->patch);
}
#pragma GCC visibility pop
