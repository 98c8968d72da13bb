// A whole LSTM layer (input projection included) as oneDNN's LSTM primitives for XLA:CPU, called
// through jax.ffi (jdl/models/lstm_ffi/onednn.py).
//
// Layouts are oneDNN's: x [T, B, F] (tnc), W [F, 4, H] and U [H, 4, H] (ldigo with one layer
// and one direction), b [4, H] (ldgo), gates in oneDNN's order (i, f, c~, o); the Python side
// permutes jdl's [f | i | o | c] columns into it and the gradients back.
//
// Forward (jdl_lstm_onednn_fwd, prop_kind forward_training): inputs x, W, U, b, h0 [B, H],
// c0 [B, H]; outputs h of every step [T, B, H], the final h and c [B, H] and the workspace
// (uint8, what the backward primitive reads: the gates of every step and the states).
// Backward (jdl_lstm_onednn_bwd): inputs x, W, U, b, h0, c0, the forward's h, final h, final c
// and workspace, and the cotangents of h [T, B, H], final h and final c; outputs dx [T, B, F],
// dW, dU, db, dh0 and dc0.
//
// The workspace's size in bytes comes from jdl_lstm_onednn_sizes (ctypes, at trace time), so
// that XLA allocates it as a buffer. The primitive descriptors and primitives are made once per
// shape and kept. The weights reach each primitive in the layout it chose (format_tag any; plain
// weights are reordered into it).
//
// oneDNN's scratchpad (its temporary memory: 340 MB for `jdl bench lstm`'s layer) is this
// library's (scratchpad mode user), taken from a pool of buffers kept between calls: a fresh
// allocation each call measured tens of milliseconds of page faults a step, and the library
// mode's global scratchpad would tie each primitive to the thread that made it, while XLA calls
// from any of its threads, concurrently for the devices of a sharded batch.
//
// oneDNN runs on GNU OpenMP; each call sets the calling thread's team size to `threads`.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::engine& cpu() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Shape {
  int64_t T, B, F, H;
  bool operator<(const Shape& o) const {
    return std::tie(T, B, F, H) < std::tie(o.T, o.B, o.F, o.H);
  }
};

// Everything made once per shape: the plain descriptors, both primitives and their sizes.
struct Layer {
  memory::desc x, w_plain, u_plain, b, h_seq, state, dx;
  dnnl::lstm_forward::primitive_desc fwd_pd;
  dnnl::lstm_backward::primitive_desc bwd_pd;
  dnnl::lstm_forward fwd;
  dnnl::lstm_backward bwd;

  explicit Layer(const Shape& s) {
    const memory::dim T = s.T, B = s.B, F = s.F, H = s.H;
    x = memory::desc({T, B, F}, dt::f32, tag::tnc);
    w_plain = memory::desc({1, 1, F, 4, H}, dt::f32, tag::ldigo);
    u_plain = memory::desc({1, 1, H, 4, H}, dt::f32, tag::ldigo);
    b = memory::desc({1, 1, 4, H}, dt::f32, tag::ldgo);
    h_seq = memory::desc({T, B, H}, dt::f32, tag::tnc);
    state = memory::desc({1, 1, B, H}, dt::f32, tag::ldnc);
    const memory::desc w_any({1, 1, F, 4, H}, dt::f32, tag::any);
    const memory::desc u_any({1, 1, H, 4, H}, dt::f32, tag::any);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto dir = dnnl::rnn_direction::unidirectional_left2right;
    fwd_pd = dnnl::lstm_forward::primitive_desc(cpu(), dnnl::prop_kind::forward_training, dir, x,
                                                state, state, w_any, u_any, b, h_seq, state,
                                                state, attr);
    // The gradients of the weights in the plain layout, so that they are the outputs as they are.
    bwd_pd = dnnl::lstm_backward::primitive_desc(
        cpu(), dnnl::prop_kind::backward, dir, x, state, state, w_any, u_any, b, h_seq, state,
        state, x, state, state, w_plain, u_plain, b, h_seq, state, state, fwd_pd, attr);
    fwd = dnnl::lstm_forward(fwd_pd);
    bwd = dnnl::lstm_backward(bwd_pd);
  }
};

Layer& layer(const Shape& s) {
  static std::mutex mutex;
  static std::map<Shape, std::unique_ptr<Layer>> layers;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = layers[s];
  if (!entry) entry = std::make_unique<Layer>(s);
  return *entry;
}

// Scratchpads kept between calls: a call leases one at least as large as it needs (or a new
// one) and returns it when done, so concurrent calls hold different ones.
class ScratchPool {
 public:
  struct Buffer {
    void* data;
    size_t size;
  };
  Buffer take(size_t size) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t k = 0; k < free_.size(); ++k) {
        if (free_[k].size >= size) {
          Buffer b = free_[k];
          free_.erase(free_.begin() + k);
          return b;
        }
      }
    }
    const size_t rounded = (std::max<size_t>(size, 1) + 4095) / 4096 * 4096;
    void* data = std::aligned_alloc(4096, rounded);
    if (data == nullptr) throw std::bad_alloc();
    return {data, rounded};
  }
  void give(Buffer b) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(b);
  }

 private:
  std::mutex mutex_;
  std::vector<Buffer> free_;
};

// A scratchpad of `md`'s size, leased from the pool for the lifetime of this object.
class Scratchpad {
 public:
  explicit Scratchpad(const memory::desc& md) : buffer_(pool().take(md.get_size())), md_(md) {}
  ~Scratchpad() { pool().give(buffer_); }
  memory get() const { return memory(md_, cpu(), buffer_.data); }

 private:
  static ScratchPool& pool() {
    static ScratchPool* pool = new ScratchPool();  // never destroyed: calls may outlive exit
    return *pool;
  }
  ScratchPool::Buffer buffer_;
  memory::desc md_;
};

memory wrap(const memory::desc& md, const void* data) {
  return memory(md, cpu(), const_cast<void*>(data));
}

// `plain` (ldigo weights) as the primitive wants them: itself, or a reordered copy in `owner`.
memory weights_as(const memory::desc& want, const memory::desc& plain, const float* data,
                  dnnl::stream& stream, std::vector<memory>& owner) {
  memory user = wrap(plain, data);
  if (want == plain) return user;
  memory packed(want, cpu());
  dnnl::reorder(user, packed).execute(stream, user, packed);
  owner.push_back(packed);
  return packed;
}

ffi::Error failed(const char* what, const dnnl::error& e) {
  return ffi::Error::Internal(std::string(what) + ": oneDNN: " + e.what());
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> u,
                   ffi::Buffer<ffi::F32> b, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                   ffi::ResultBuffer<ffi::F32> h_seq, ffi::ResultBuffer<ffi::F32> h_last,
                   ffi::ResultBuffer<ffi::F32> c_last, ffi::ResultBuffer<ffi::U8> workspace,
                   int64_t threads) {
  auto xd = x.dimensions(), ud = u.dimensions();
  if (xd.size() != 3 || ud.size() != 3) {
    return ffi::Error::InvalidArgument("jdl_lstm_onednn_fwd: x must be [T, B, F], U [H, 4, H]");
  }
  const Shape s{xd[0], xd[1], xd[2], ud[0]};
  try {
    omp_set_num_threads(static_cast<int>(threads));
    Layer& l = layer(s);
    if (workspace->size_bytes() != l.fwd_pd.workspace_desc().get_size()) {
      return ffi::Error::InvalidArgument("jdl_lstm_onednn_fwd: the workspace's size");
    }
    Scratchpad scratch(l.fwd_pd.scratchpad_desc());
    dnnl::stream stream(cpu());
    std::vector<memory> owner;
    l.fwd.execute(
        stream,
        {{DNNL_ARG_SRC_LAYER, wrap(l.x, x.typed_data())},
         {DNNL_ARG_SRC_ITER, wrap(l.state, h0.typed_data())},
         {DNNL_ARG_SRC_ITER_C, wrap(l.state, c0.typed_data())},
         {DNNL_ARG_WEIGHTS_LAYER,
          weights_as(l.fwd_pd.weights_layer_desc(), l.w_plain, w.typed_data(), stream, owner)},
         {DNNL_ARG_WEIGHTS_ITER,
          weights_as(l.fwd_pd.weights_iter_desc(), l.u_plain, u.typed_data(), stream, owner)},
         {DNNL_ARG_BIAS, wrap(l.b, b.typed_data())},
         {DNNL_ARG_DST_LAYER, wrap(l.h_seq, h_seq->typed_data())},
         {DNNL_ARG_DST_ITER, wrap(l.state, h_last->typed_data())},
         {DNNL_ARG_DST_ITER_C, wrap(l.state, c_last->typed_data())},
         {DNNL_ARG_WORKSPACE, wrap(l.fwd_pd.workspace_desc(), workspace->untyped_data())},
         {DNNL_ARG_SCRATCHPAD, scratch.get()}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return failed("jdl_lstm_onednn_fwd", e);
  }
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> u,
                    ffi::Buffer<ffi::F32> b, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                    ffi::Buffer<ffi::F32> h_seq, ffi::Buffer<ffi::F32> h_last,
                    ffi::Buffer<ffi::F32> c_last, ffi::Buffer<ffi::U8> workspace,
                    ffi::Buffer<ffi::F32> dh_seq, ffi::Buffer<ffi::F32> dh_last,
                    ffi::Buffer<ffi::F32> dc_last, ffi::ResultBuffer<ffi::F32> dx,
                    ffi::ResultBuffer<ffi::F32> dw, ffi::ResultBuffer<ffi::F32> du,
                    ffi::ResultBuffer<ffi::F32> db, ffi::ResultBuffer<ffi::F32> dh0,
                    ffi::ResultBuffer<ffi::F32> dc0, int64_t threads) {
  auto xd = x.dimensions(), ud = u.dimensions();
  if (xd.size() != 3 || ud.size() != 3) {
    return ffi::Error::InvalidArgument("jdl_lstm_onednn_bwd: x must be [T, B, F], U [H, 4, H]");
  }
  const Shape s{xd[0], xd[1], xd[2], ud[0]};
  try {
    omp_set_num_threads(static_cast<int>(threads));
    Layer& l = layer(s);
    if (workspace.size_bytes() != l.bwd_pd.workspace_desc().get_size()) {
      return ffi::Error::InvalidArgument("jdl_lstm_onednn_bwd: the workspace's size");
    }
    Scratchpad scratch(l.bwd_pd.scratchpad_desc());
    // The primitive adds the weights' gradients to what the outputs hold.
    std::memset(dw->untyped_data(), 0, dw->size_bytes());
    std::memset(du->untyped_data(), 0, du->size_bytes());
    std::memset(db->untyped_data(), 0, db->size_bytes());
    dnnl::stream stream(cpu());
    std::vector<memory> owner;
    l.bwd.execute(
        stream,
        {{DNNL_ARG_SRC_LAYER, wrap(l.x, x.typed_data())},
         {DNNL_ARG_SRC_ITER, wrap(l.state, h0.typed_data())},
         {DNNL_ARG_SRC_ITER_C, wrap(l.state, c0.typed_data())},
         {DNNL_ARG_WEIGHTS_LAYER,
          weights_as(l.bwd_pd.weights_layer_desc(), l.w_plain, w.typed_data(), stream, owner)},
         {DNNL_ARG_WEIGHTS_ITER,
          weights_as(l.bwd_pd.weights_iter_desc(), l.u_plain, u.typed_data(), stream, owner)},
         {DNNL_ARG_BIAS, wrap(l.b, b.typed_data())},
         {DNNL_ARG_DST_LAYER, wrap(l.h_seq, h_seq.typed_data())},
         {DNNL_ARG_DST_ITER, wrap(l.state, h_last.typed_data())},
         {DNNL_ARG_DST_ITER_C, wrap(l.state, c_last.typed_data())},
         {DNNL_ARG_WORKSPACE, wrap(l.bwd_pd.workspace_desc(), workspace.untyped_data())},
         {DNNL_ARG_DIFF_DST_LAYER, wrap(l.h_seq, dh_seq.typed_data())},
         {DNNL_ARG_DIFF_DST_ITER, wrap(l.state, dh_last.typed_data())},
         {DNNL_ARG_DIFF_DST_ITER_C, wrap(l.state, dc_last.typed_data())},
         {DNNL_ARG_DIFF_SRC_LAYER, wrap(l.x, dx->typed_data())},
         {DNNL_ARG_DIFF_SRC_ITER, wrap(l.state, dh0->typed_data())},
         {DNNL_ARG_DIFF_SRC_ITER_C, wrap(l.state, dc0->typed_data())},
         {DNNL_ARG_DIFF_WEIGHTS_LAYER, wrap(l.w_plain, dw->typed_data())},
         {DNNL_ARG_DIFF_WEIGHTS_ITER, wrap(l.u_plain, du->typed_data())},
         {DNNL_ARG_DIFF_BIAS, wrap(l.b, db->typed_data())},
         {DNNL_ARG_SCRATCHPAD, scratch.get()}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return failed("jdl_lstm_onednn_bwd", e);
  }
  return ffi::Error::Success();
}

}  // namespace

// The bytes of a layer's workspace in *size; 0 on success, else -1 (the message, truncated, in
// `error`).
extern "C" int jdl_lstm_onednn_sizes(int64_t T, int64_t B, int64_t F, int64_t H, int64_t* size,
                                     char* error, int64_t error_size) {
  try {
    *size = layer(Shape{T, B, F, H}).fwd_pd.workspace_desc().get_size();
    return 0;
  } catch (const dnnl::error& e) {
    std::snprintf(error, error_size, "%s", e.what());
    return -1;
  }
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(JdlLstmOnednnForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x [T, B, F]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W [F, 4, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // U [H, 4, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b [4, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0 [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // h [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // final h [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // final c [B, H]
                                  .Ret<ffi::Buffer<ffi::U8>>()  // workspace
                                  .Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JdlLstmOnednnBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W
                                  .Arg<ffi::Buffer<ffi::F32>>()  // U
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // final h
                                  .Arg<ffi::Buffer<ffi::F32>>()  // final c
                                  .Arg<ffi::Buffer<ffi::U8>>()  // workspace
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dh [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // d final h
                                  .Arg<ffi::Buffer<ffi::F32>>()  // d final c
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx [T, B, F]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dW [F, 4, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dU [H, 4, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // db [4, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dh0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dc0 [B, H]
                                  .Attr<int64_t>("threads"));
