// A fused LSTM over a whole sequence for XLA:CPU, called through jax.ffi (jdl/models/lstm_ffi).
//
// The equations are jdl.models.rnn.LSTMCell's, gate columns [f | i | o | c]:
//   pre_t = wx_t + h_{t-1} U                      (wx_t = W x_t + b, projected by XLA outside)
//   f, i, o = sigmoid(pre_f, pre_i, pre_o);  g = tanh(pre_c)
//   c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
//
// Forward (jdl_lstm_fwd): inputs wx [T, B, 4H], U [H, 4H], c0 [B, H], h0 [B, H]; outputs
// h for every step [T, B, H], c for every step [T, B, H] and the gate activations
// [T, B, 4H] (f, i, o, g), which the backward pass reads instead of recomputing them.
// Backward (jdl_lstm_bwd): inputs dh [T, B, H] (the cotangent of every step's h, the final h's
// added to the last), dc_T [B, H], U, the gates, c, h, c0, h0; outputs d wx [T, B, 4H] (= the
// gradient of the pre-activations, so that W's and x's gradients stay large XLA products
// outside), dU [H, 4H] (one large product after the loop), dc0 and dh0.
//
// Each time step costs one small product (h_{t-1} U forward, dpre_t U^T backward) and one
// fused, vectorised pass over the gates. A step is cut into chunks of hidden units (a chunk:
// its units' four gate columns), and `threads` threads take chunks in order from one ticket
// counter: a chunk's product is a single-threaded OpenBLAS call on its columns, followed at once
// by the gate arithmetic of its units (the product's output still in cache). A chunk of step t
// waits until every chunk of step t - 1 is done (it reads every unit's h_{t-1}). Handing out
// chunks rather than fixed slices keeps a loaded machine from stalling the loop on a thread
// that lost its core: whichever thread runs takes the next chunk. OpenBLAS starts no threads
// of its own that would spin against XLA's pool.
//
// The Python side aliases wx with the gates output and the gates input with d wx: every
// gate pass loads an element's inputs before it stores to the same place.
//
// Float32 only. exp and tanh are Cephes' single-precision polynomials (about 1-2 ulp), written
// for GCC's vector types so that -O3 -march=native turns each into straight SIMD code; no
// -ffast-math (the rounding trick in vexp needs IEEE addition).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cblas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;  // one AVX-512 register; GCC splits it on narrower machines
typedef float vf __attribute__((vector_size(kLanes * 4)));
typedef int32_t vi __attribute__((vector_size(kLanes * 4)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline vf bits_to_float(vi i) { return (vf)i; }
inline int32_t to_int(float x) { return static_cast<int32_t>(x); }
inline vi to_int(vf x) { return __builtin_convertvector(x, vi); }
inline float select(bool m, float a, float b) { return m ? a : b; }
inline vf select(vi m, vf a, vf b) { return m ? a : b; }

// e^x (Cephes expf): x = n ln2 + r, |r| <= ln2 / 2, e^r by a degree-6 polynomial, 2^n from
// the exponent bits. Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
template <class V>
inline V vexp(V x) {
  x = select(x > 88.0f, V{} + 88.0f, x);
  x = select(x < -87.0f, V{} - 87.0f, x);
  V n = x * 1.44269504088896341f + 12582912.0f;
  n = n - 12582912.0f;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = 1.9875691500e-4f * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits_to_float((to_int(n) + 127) << 23);
}

template <class V>
inline V vsigmoid(V x) {
  return 1.0f / (1.0f + vexp(-x));
}

// tanh (Cephes tanhf): an odd polynomial below 0.625, where 1 - 2 / (e^{2x} + 1) would lose
// relative precision, and that formula above.
template <class V>
inline V vtanh(V x) {
  V a = select(x < 0.0f, -x, x);
  V z = x * x;
  V small = -5.70498872745e-3f * z + 2.06390887954e-2f;
  small = small * z - 5.37397155531e-2f;
  small = small * z + 1.33314422036e-1f;
  small = small * z - 3.33332819422e-1f;
  small = small * z * x + x;
  V large = 1.0f - 2.0f / (vexp(a + a) + 1.0f);
  large = select(x < 0.0f, -large, large);
  return select(a < 0.625f, small, large);
}

// Chunks of work handed out in order: ticket i is chunk i % chunks of step i / chunks. A chunk
// waits until every chunk of the step before it is done. The wait spins briefly (on an idle
// machine it is a few microseconds of imbalance), then sleeps on a futex (std::atomic::wait),
// so that on a loaded machine it gives its core away instead of spinning against the thread it
// waits for.
class Tickets {
 public:
  Tickets(int64_t steps, int64_t chunks) : total_(steps * chunks), chunks_(chunks) {}
  // The next ticket (step, chunk), after the step before it is done; false when none is left.
  bool take(int64_t* step, int64_t* chunk) {
    const int64_t ticket = next_.fetch_add(1, std::memory_order_relaxed);
    if (ticket >= total_) return false;
    *step = ticket / chunks_;
    *chunk = ticket % chunks_;
    wait_done(*step * chunks_);
    return true;
  }
  void finish(int64_t step) {
    const int64_t done = done_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (done == (step + 1) * chunks_) done_.notify_all();
  }
  void wait_done(int64_t target) {
    for (int spins = 0; spins < 4000; ++spins) {
      if (done_.load(std::memory_order_acquire) >= target) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    for (int64_t d; (d = done_.load(std::memory_order_acquire)) < target;) {
      done_.wait(d, std::memory_order_acquire);
    }
  }

 private:
  const int64_t total_, chunks_;
  std::atomic<int64_t> next_{0}, done_{0};
};

// Chunks of `per` units (a multiple of kLanes) covering [0, n).
struct Chunks {
  Chunks(int64_t n, int64_t per) : n(n), per(per), count((n + per - 1) / per) {}
  int64_t begin(int64_t c) const { return c * per; }
  int64_t size(int64_t c) const { return std::min(n, (c + 1) * per) - c * per; }
  int64_t n, per, count;
};

// Two chunks per thread: enough to even out, large enough for an efficient product.
Chunks unit_chunks(int64_t hidden, int threads) {
  int64_t per = (hidden + 2 * threads - 1) / (2 * threads);
  return Chunks(hidden, std::max<int64_t>(kLanes, (per + kLanes - 1) / kLanes * kLanes));
}

// Runs body(k) for k in [0, threads) on the calling thread and threads - 1 new ones.
template <class F>
void parallel(int threads, F body) {
  std::vector<std::thread> workers;
  for (int k = 1; k < threads; ++k) workers.emplace_back(body, k);
  body(0);
  for (auto& w : workers) w.join();
}

int clamp_threads(int64_t threads, int64_t hidden) {
  int64_t most = std::max<int64_t>(1, (hidden + kLanes - 1) / kLanes);
  return static_cast<int>(std::clamp<int64_t>(threads, 1, std::min<int64_t>(most, 64)));
}

// The forward gate pass of one batch row, units [0, n) of a thread's slice: pre holds
// h_{t-1} U for the slice as [f | i | o | c] blocks of n; wx, gates point at the row's column
// u0; c_prev, c_out, h_out at the row's unit u0.
template <class V, class Load, class Store>
inline void forward_units(int64_t j, int64_t n, int64_t H, const float* pre, const float* wx,
                          const float* c_prev, float* gates, float* c_out, float* h_out,
                          Load ld, Store st) {
  V f = vsigmoid(ld(pre + j) + ld(wx + j));
  V i = vsigmoid(ld(pre + n + j) + ld(wx + H + j));
  V o = vsigmoid(ld(pre + 2 * n + j) + ld(wx + 2 * H + j));
  V g = vtanh(ld(pre + 3 * n + j) + ld(wx + 3 * H + j));
  V c = f * ld(c_prev + j) + i * g;
  V h = o * vtanh(c);
  st(gates + j, f);
  st(gates + H + j, i);
  st(gates + 2 * H + j, o);
  st(gates + 3 * H + j, g);
  st(c_out + j, c);
  st(h_out + j, h);
}

// The backward gate pass of one batch row (see forward_units for the pointers): dh_rec is
// dpre_{t+1} U^T, dc the running gradient of c (updated in place to dc_{t-1}).
template <class V, class Load, class Store>
inline void backward_units(int64_t j, int64_t H, const float* gates, const float* c,
                           const float* c_prev, const float* dy, const float* dh_rec, float* dc,
                           float* dpre, Load ld, Store st) {
  V f = ld(gates + j), i = ld(gates + H + j), o = ld(gates + 2 * H + j), g = ld(gates + 3 * H + j);
  V tc = vtanh(ld(c + j));
  V dh = ld(dy + j) + ld(dh_rec + j);
  V dct = ld(dc + j) + dh * o * (1.0f - tc * tc);
  st(dpre + j, dct * ld(c_prev + j) * f * (1.0f - f));
  st(dpre + H + j, dct * g * i * (1.0f - i));
  st(dpre + 2 * H + j, dh * tc * o * (1.0f - o));
  st(dpre + 3 * H + j, dct * i * (1.0f - g * g));
  st(dc + j, dct * f);
}

const auto kLoad = [](const float* p) { return load(p); };
const auto kStore = [](float* p, vf v) { store(p, v); };
const auto kLoad1 = [](const float* p) { return *p; };
const auto kStore1 = [](float* p, float v) { *p = v; };

ffi::Error Forward(ffi::Buffer<ffi::F32> wx_buf, ffi::Buffer<ffi::F32> u_buf,
                   ffi::Buffer<ffi::F32> c0_buf, ffi::Buffer<ffi::F32> h0_buf,
                   ffi::ResultBuffer<ffi::F32> h_buf, ffi::ResultBuffer<ffi::F32> c_buf,
                   ffi::ResultBuffer<ffi::F32> gates_buf, int64_t threads) {
  auto dims = wx_buf.dimensions();
  if (dims.size() != 3 || dims[2] % 4 != 0) {
    return ffi::Error::InvalidArgument("jdl_lstm_fwd: wx must be [T, B, 4H]");
  }
  const int64_t T = dims[0], B = dims[1], H = dims[2] / 4, G = 4 * H;
  auto ud = u_buf.dimensions();
  if (ud.size() != 2 || ud[0] != H || ud[1] != G || c0_buf.element_count() != size_t(B * H) ||
      h0_buf.element_count() != size_t(B * H)) {
    return ffi::Error::InvalidArgument("jdl_lstm_fwd: U must be [H, 4H] and c0, h0 [B, H]");
  }
  if (T == 0 || B == 0 || H == 0) return ffi::Error::Success();
  const float* wx = wx_buf.typed_data();
  const float* U = u_buf.typed_data();
  const float* c0 = c0_buf.typed_data();
  const float* h0 = h0_buf.typed_data();
  float* hs = h_buf->typed_data();
  float* cs = c_buf->typed_data();
  float* gates = gates_buf->typed_data();
  const int nt = clamp_threads(threads, H);
  const Chunks units = unit_chunks(H, nt);
  // Each chunk's four gate column blocks of U side by side, [H, 4 size], so that its part of
  // h_{t-1} U is one product.
  std::vector<float> packed(H * G);
  for (int64_t c = 0; c < units.count; ++c) {
    const int64_t u0 = units.begin(c), n = units.size(c);
    float* u_c = packed.data() + H * 4 * u0;
    for (int64_t r = 0; r < H; ++r) {
      for (int q = 0; q < 4; ++q) {
        std::memcpy(u_c + r * 4 * n + q * n, U + r * G + q * H + u0, n * sizeof(float));
      }
    }
  }
  Tickets tickets(T, units.count);
  parallel(nt, [&](int) {
    std::vector<float> pre(B * 4 * units.per);
    for (int64_t t, c; tickets.take(&t, &c); tickets.finish(t)) {
      const int64_t u0 = units.begin(c), n = units.size(c);
      const float* h_prev = t == 0 ? h0 : hs + (t - 1) * B * H;
      const float* c_prev = t == 0 ? c0 : cs + (t - 1) * B * H;
      scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, 4 * n, H, 1.0f, h_prev, H,
                        packed.data() + H * 4 * u0, 4 * n, 0.0f, pre.data(), 4 * n);
      for (int64_t b = 0; b < B; ++b) {
        const float* p = pre.data() + b * 4 * n;
        const int64_t row = t * B + b;
        const float* wx_r = wx + row * G + u0;
        const float* cp_r = c_prev + b * H + u0;
        float* g_r = gates + row * G + u0;
        float* c_r = cs + row * H + u0;
        float* h_r = hs + row * H + u0;
        int64_t j = 0;
        for (; j + kLanes <= n; j += kLanes) {
          forward_units<vf>(j, n, H, p, wx_r, cp_r, g_r, c_r, h_r, kLoad, kStore);
        }
        for (; j < n; ++j) {
          forward_units<float>(j, n, H, p, wx_r, cp_r, g_r, c_r, h_r, kLoad1, kStore1);
        }
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::Buffer<ffi::F32> dy_buf, ffi::Buffer<ffi::F32> dc_last_buf,
                    ffi::Buffer<ffi::F32> u_buf, ffi::Buffer<ffi::F32> gates_buf,
                    ffi::Buffer<ffi::F32> c_buf, ffi::Buffer<ffi::F32> h_buf,
                    ffi::Buffer<ffi::F32> c0_buf, ffi::Buffer<ffi::F32> h0_buf,
                    ffi::ResultBuffer<ffi::F32> dwx_buf, ffi::ResultBuffer<ffi::F32> du_buf,
                    ffi::ResultBuffer<ffi::F32> dc0_buf, ffi::ResultBuffer<ffi::F32> dh0_buf,
                    int64_t threads) {
  auto dims = gates_buf.dimensions();
  if (dims.size() != 3 || dims[2] % 4 != 0) {
    return ffi::Error::InvalidArgument("jdl_lstm_bwd: gates must be [T, B, 4H]");
  }
  const int64_t T = dims[0], B = dims[1], H = dims[2] / 4, G = 4 * H;
  if (dy_buf.element_count() != size_t(T * B * H) || c_buf.element_count() != size_t(T * B * H) ||
      h_buf.element_count() != size_t(T * B * H) || u_buf.element_count() != size_t(H * G) ||
      dc_last_buf.element_count() != size_t(B * H) || c0_buf.element_count() != size_t(B * H) ||
      h0_buf.element_count() != size_t(B * H)) {
    return ffi::Error::InvalidArgument("jdl_lstm_bwd: inconsistent shapes");
  }
  float* dU = du_buf->typed_data();
  if (T == 0 || B == 0 || H == 0) {
    std::fill(dU, dU + H * G, 0.0f);
    return ffi::Error::Success();
  }
  const float* dy = dy_buf.typed_data();
  const float* U = u_buf.typed_data();
  const float* gates = gates_buf.typed_data();
  const float* cs = c_buf.typed_data();
  const float* hs = h_buf.typed_data();
  const float* c0 = c0_buf.typed_data();
  const float* h0 = h0_buf.typed_data();
  float* dpre = dwx_buf->typed_data();
  float* dc = dc0_buf->typed_data();  // the running dc_t, dc_0 at the end
  float* dh_rec = dh0_buf->typed_data();  // dpre_{t+1} U^T, dh_0 at the end
  std::memcpy(dc, dc_last_buf.typed_data(), B * H * sizeof(float));
  std::fill(dh_rec, dh_rec + B * H, 0.0f);  // the final h's cotangent is in dy[T - 1]
  const int nt = clamp_threads(threads, H);
  const Chunks units = unit_chunks(H, nt);
  const Chunks columns(G, std::max<int64_t>(kLanes, 256));
  // Steps r = 0 .. T - 1 run time T - 1 - r; step T computes dh_0 = dpre_0 U^T.
  Tickets tickets(T + 1, units.count);
  Tickets du_tickets(1, columns.count);
  parallel(nt, [&](int) {
    for (int64_t r, c; tickets.take(&r, &c); tickets.finish(r)) {
      const int64_t u0 = units.begin(c), n = units.size(c), t = T - 1 - r;
      if (r > 0) {  // this chunk's units of dpre_{t+1} U^T (of dpre_0 U^T = dh_0 at r = T)
        scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n, G, 1.0f,
                          dpre + (t + 1) * B * G, G, U + u0 * G, G, 0.0f, dh_rec + u0, H);
      }
      if (r == T) continue;
      const float* c_prev = t == 0 ? c0 : cs + (t - 1) * B * H;
      for (int64_t b = 0; b < B; ++b) {
        const int64_t row = t * B + b;
        const float* g_r = gates + row * G + u0;
        const float* c_r = cs + row * H + u0;
        const float* cp_r = c_prev + b * H + u0;
        const float* dy_r = dy + row * H + u0;
        const float* dhr_r = dh_rec + b * H + u0;
        float* dc_r = dc + b * H + u0;
        float* dp_r = dpre + row * G + u0;
        int64_t j = 0;
        for (; j + kLanes <= n; j += kLanes) {
          backward_units<vf>(j, H, g_r, c_r, cp_r, dy_r, dhr_r, dc_r, dp_r, kLoad, kStore);
        }
        for (; j < n; ++j) {
          backward_units<float>(j, H, g_r, c_r, cp_r, dy_r, dhr_r, dc_r, dp_r, kLoad1, kStore1);
        }
      }
    }
    // dU = sum_t h_{t-1}^T dpre_t: one product over all steps 1..T-1 (h_0..h_{T-2} are rows
    // [0, (T-1) B) of hs), plus h0^T dpre_0; in chunks of 256 of its 4H columns, once every
    // dpre_t is written.
    tickets.wait_done(T * units.count);
    for (int64_t r, c; du_tickets.take(&r, &c); du_tickets.finish(r)) {
      const int64_t v0 = columns.begin(c), m = columns.size(c);
      if (T > 1) {
        scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, m, (T - 1) * B, 1.0f, hs, H,
                          dpre + B * G + v0, G, 0.0f, dU + v0, G);
      }
      scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, m, B, 1.0f, h0, H, dpre + v0,
                        G, T > 1 ? 1.0f : 0.0f, dU + v0, G);
    }
  });
  return ffi::Error::Success();
}

// OpenBLAS runs single-threaded inside this library: the kernel splits the work itself.
__attribute__((constructor)) void single_threaded_blas() { scipy_openblas_set_num_threads(1); }

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JdlLstmForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // wx [T, B, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // U [H, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0 [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // h [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // c [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // gates [T, B, 4H]
                                  .Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JdlLstmBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dh [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dc_T [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // U [H, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // gates [T, B, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0 [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d wx [T, B, 4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dU [H, 4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dc0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dh0 [B, H]
                                  .Attr<int64_t>("threads"));
