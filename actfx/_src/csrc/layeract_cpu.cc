// Fused LayerAct forward and backward for XLA:CPU, called through the XLA FFI.
//
// One layer (the trailing m entries of a row-major (rows, m) float32 array) is processed by
// one thread at a time: its statistics, gate and output (or gradient) are computed in
// passes over the same m entries while they are in cache, where XLA makes each pass a
// separate loop over the whole tensor. Statistics are accumulated in double (the sums of
// float32 values cannot overflow there, and a non-finite entry shows as a non-finite sum);
// the float32 gate loops work on the layer scaled by a power of two (see Stats). Built by
// actfx/_src/native_build.py with the system C++ compiler against the installed jaxlib's FFI headers; the pure-JAX
// LayerAct (actfx/_src/layeract.py) is the reference it is tested against and the
// fallback when it is not built.
//
//   forward : mean, var = sum (x - mean)^2 / dof, r = 1 / sqrt(var + alpha) (0 if var +
//             alpha == 0), n = (x - mean) r, out = x s(n)
//   backward: dn = g (x r) s'(n), dx = g s(n) + dn - mean(dn) - n sum(dn n) / bdof
//             (bdof = m - ddof: the exact gradient; bdof = m: the paper's formula)
//   a layer with a NaN or +-inf entry gives NaN throughout (output and gradient).

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kW = 16;  // lanes of the main loop; the compiler splits for narrower SIMD
typedef float vf __attribute__((vector_size(4 * kW)));
typedef int32_t vi __attribute__((vector_size(4 * kW)));
typedef float vf1 __attribute__((vector_size(4)));  // the tail, one lane at a time
typedef int32_t vi1 __attribute__((vector_size(4)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef double vd8 __attribute__((vector_size(64)));

template <class V>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
inline void store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
template <class To, class From>
inline To bits(From v) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &v, sizeof t);
  return t;
}

// exp(x) for x <= 0 (Cephes' expf polynomial, ~1 ulp); below -87.3 it returns e^-87.3
// (~1e-38) instead of the subnormal or 0, an absolute error below 1.2e-38.
template <class VF, class VI>
inline VF exp_neg(VF x) {
  const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f;
  VF lo = VF{} - 87.3f;
  VF xc = x < lo ? lo : x;
  VI ni = __builtin_convertvector(xc * log2e - 0.5f, VI);  // round to nearest (xc <= 0)
  VF n = __builtin_convertvector(ni, VF);
  VF r = xc - n * c1 - n * c2;
  VF p = VF{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits<VF>((ni + 127) << 23);
}

// The gate s(n) and its slope s'(n). kind 0: sigmoid (LA-SiLU); kind 1: clip(n/6 + 1/2,
// 0, 1) with slope 1/6 on (-3, 3] (LA-HardSiLU, the reference's convention).
template <int kKind, class VF, class VI>
inline void gate(VF z, VF& s, VF& ds) {
  if constexpr (kKind == 0) {
    VF e = exp_neg<VF, VI>(bits<VF>(bits<VI>(z) | (VI{} + (int32_t)0x80000000)));  // e^-|z|
    VF inv = 1.0f / (1.0f + e);
    s = z >= 0 ? inv : e * inv;
    ds = e * inv * inv;  // = s (1 - s), without the cancellation at large |z|
  } else {
    VF one = VF{} + 1.0f, zero = VF{};
    s = z > 3.0f ? one : (z > -3.0f ? z / 6.0f + 0.5f : zero);
    ds = (z > -3.0f) & (z <= 3.0f) ? VF{} + 1.0f / 6.0f : zero;
  }
}

static_assert(kW == 16, "widen_lo/widen_hi split 16 lanes into 2 x 8");
inline vd8 widen_lo(vf v) {
  return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), vd8);
}
inline vd8 widen_hi(vf v) {
  return __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), vd8);
}

inline double hsum(vd8 v) {
  double s = 0.0;
  for (int k = 0; k < 8; ++k) s += v[k];
  return s;
}

// A layer's statistics, pre-scaled for the float32 gate loops: n = (x p - mean p) (r / p)
// with p a power of two near 1 / max|x| (from a bound on it), so that neither x - mean
// (up to 2 * FLT_MAX) nor r = 1 / std (below FLT_MIN for a layer near FLT_MAX) leaves the
// float32 range.
struct Stats {
  float p, mean_p, mean_lo, r_p;  // mean p = mean_p + mean_lo (two floats: x p - mean_p is
                                  // exact near the mean, so a large mean costs no accuracy)
  float xr_p, xr_r;               // x r = (x xr_p) xr_r in the backward (see layer_stats)
  bool finite;
};

// One pass in double, shifted by the layer's first entry (the sums of d = x - x[0] and
// d^2): for float32 data the cancellation in sum(d^2) - sum(d)^2 / m costs at most
// ~m * 1e-16 relatively, and a constant layer gives var = 0 exactly. The scale p comes
// from the bound |x| <= |mean| + sqrt(sum (x - mean)^2), which needs no extra pass.
Stats layer_stats(const float* x, int64_t m, double alpha, double dof) {
  const double k = x[0];
  vd8 s8{}, q8{};
  int64_t i = 0;
  for (; i + 8 <= m; i += 8) {
    vd8 d = __builtin_convertvector(load<vf8>(x + i), vd8) - k;
    s8 += d;
    q8 += d * d;
  }
  double s = hsum(s8), q = hsum(q8);
  for (; i < m; ++i) {
    double d = x[i] - k;
    s += d;
    q += d * d;
  }
  if (!std::isfinite(s) || !std::isfinite(q)) return {NAN, NAN, NAN, NAN, NAN, NAN, false};
  const double md = static_cast<double>(m);
  const double ss = std::max(q - s * s / md, 0.0);  // sum (x - mean)^2
  const double denom = ss / dof + alpha;
  const double r = denom > 0 ? 1.0 / std::sqrt(denom) : 0.0;
  const double mean = k + s / md;
  const double bound = std::fabs(mean) + std::sqrt(ss);
  int e = 0;
  if (bound > 0) std::frexp(bound, &e);  // bound = f 2^e, f in [0.5, 1)
  const double p = std::ldexp(1.0, -std::clamp(e, -100, 125));  // normal as a float
  const float mean_p = static_cast<float>(mean * p);
  // r / p exceeds FLT_MAX only for a constant layer (ss = 0: then r = 1/sqrt(alpha), and a
  // layer near 1e36 made it inf and n = 0 * inf = NaN); any spread of float32 data keeps
  // it below ~2^24 sqrt(m). Capped, a constant layer's n = (x p - mean_p) r_p is 0 exactly.
  const float r_p = static_cast<float>(std::min(r / p, static_cast<double>(FLT_MAX)));
  float xr_p = static_cast<float>(p), xr_r = r_p;
  if (ss == 0 && mean != 0 && r > 0) {
    // constant layer: dn = g x r s'(0) needs x r itself, which is finite below FLT_MAX
    // while r / p may not be; split it as (x 2^-k)(r 2^k) with both factors near sqrt(x r)
    int ex = 0, exr = 0;
    std::frexp(mean, &ex);
    std::frexp(std::fabs(mean) * r, &exr);
    const int k = std::clamp(ex - exr / 2, -126, 127);
    xr_p = std::ldexp(1.0f, -k);
    xr_r = static_cast<float>(std::ldexp(r, k));
  }
  return {static_cast<float>(p), mean_p, static_cast<float>(mean * p - mean_p), r_p, xr_p, xr_r,
          true};
}

// n = (x - mean) r, from the scaled statistics
template <class VF>
inline VF normalized(VF xv, const Stats& st) {
  return ((xv * st.p - st.mean_p) - st.mean_lo) * st.r_p;
}

template <int kKind, class VF, class VI>
inline VF forward_lanes(VF xv, const Stats& st) {
  VF s, ds;
  gate<kKind, VF, VI>(normalized(xv, st), s, ds);
  return xv * s;
}

template <int kKind>
void forward_row(const float* x, float* out, int64_t m, const Stats& st) {
  int64_t i = 0;
  for (; i + kW <= m; i += kW) store(out + i, forward_lanes<kKind, vf, vi>(load<vf>(x + i), st));
  for (; i < m; ++i) store(out + i, forward_lanes<kKind, vf1, vi1>(load<vf1>(x + i), st));
}

// dn = g (x r) s'(n) and g s(n) at one vector of lanes.
template <int kKind, class VF, class VI>
inline void backward_lanes(VF xv, VF gv, const Stats& st, VF& n, VF& dn, VF& gs) {
  VF s, ds;
  n = normalized(xv, st);
  gate<kKind, VF, VI>(n, s, ds);
  // x r s'(n) = ((x p) s'(n)) (r / p), or with the constant layer's balanced split (Stats);
  // in this order no factor overflows unless the product does
  dn = gv * (((xv * st.xr_p) * ds) * st.xr_r);
  gs = gv * s;
}

// Two passes over the layer (in cache). Pass 1 writes g s(n) into dx and dn into the
// scratch row and sums dn and dn n (float partial sums of <= 64 vectors, added in double);
// pass 2 finishes dx. Storing beats recomputing the gate (measured 0.26 vs 0.38 ms).
template <int kKind>
void backward_row(const float* x, const float* g, float* dx, float* dn_row, int64_t m,
                  const Stats& st, double bdof) {
  vd8 a8{}, b8{};
  int64_t i = 0;
  while (i + kW <= m) {
    vf af{}, bf{};
    for (int blk = 0; blk < 64 && i + kW <= m; ++blk, i += kW) {
      vf n, dn, gs;
      backward_lanes<kKind, vf, vi>(load<vf>(x + i), load<vf>(g + i), st, n, dn, gs);
      store(dx + i, gs);
      store(dn_row + i, dn);
      af += dn;
      bf += dn * n;
    }
    a8 += widen_lo(af) + widen_hi(af);
    b8 += widen_lo(bf) + widen_hi(bf);
  }
  double a = hsum(a8), b = hsum(b8);
  for (; i < m; ++i) {
    vf1 n, dn, gs;
    backward_lanes<kKind, vf1, vi1>(load<vf1>(x + i), load<vf1>(g + i), st, n, dn, gs);
    dx[i] = gs[0];
    dn_row[i] = dn[0];
    a += dn[0];
    b += static_cast<double>(dn[0]) * n[0];
  }
  const float ca = static_cast<float>(a / static_cast<double>(m));
  const float cb = static_cast<float>(b / bdof);
  i = 0;
  for (; i + kW <= m; i += kW) {
    vf n = normalized(load<vf>(x + i), st);
    store(dx + i, load<vf>(dx + i) + (load<vf>(dn_row + i) - ca - n * cb));
  }
  for (; i < m; ++i) {
    float n = normalized(load<vf1>(x + i), st)[0];
    dx[i] = dx[i] + (dn_row[i] - ca - n * cb);
  }
}

// Runs f(0), ..., f(rows - 1) on the calling thread and XLA's intra-op thread pool. The
// caller takes rows too, so it never waits on a task that has not started (no deadlock if
// the pool is busy); tasks that start after the last row find nothing to do.
template <typename F>
void parallel_rows(ffi::ThreadPool& pool, int64_t rows, const F& f) {
  const int64_t threads = std::min<int64_t>(pool.num_threads(), rows);
  if (threads <= 1) {
    for (int64_t i = 0; i < rows; ++i) f(i);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0}, done{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto st = std::make_shared<State>();
  const F* fp = &f;  // only dereferenced while rows remain, i.e. before the caller returns
  auto work = [st, rows, fp]() {
    for (int64_t i; (i = st->next.fetch_add(1)) < rows;) {
      (*fp)(i);
      if (st->done.fetch_add(1) + 1 == rows) {
        std::lock_guard<std::mutex> lock(st->mu);
        st->cv.notify_all();
      }
    }
  };
  for (int64_t t = 1; t < threads; ++t) pool.Schedule([work]() { work(); });
  work();
  std::unique_lock<std::mutex> lock(st->mu);
  st->cv.wait(lock, [&] { return st->done.load() == rows; });
}

ffi::Error check_kind(int64_t kind) {
  if (kind != 0 && kind != 1) return ffi::Error::InvalidArgument("actfx LayerAct: kind must be 0 or 1");
  return ffi::Error::Success();
}

// (rows, m) of a buffer whose trailing axis is one layer; false for a scalar.
bool layer_shape(const ffi::Buffer<ffi::F32>& x, int64_t& rows, int64_t& m) {
  const auto dims = x.dimensions();
  if (dims.size() == 0) return false;
  m = dims.back();
  rows = m > 0 ? static_cast<int64_t>(x.element_count()) / m : 0;
  return true;
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> out,
                   int64_t kind, double alpha, double dof) {
  if (auto err = check_kind(kind); err.failure()) return err;
  int64_t rows, m;
  if (!layer_shape(x, rows, m))
    return ffi::Error::InvalidArgument("actfx LayerAct: x must be (rows, m)");
  const float* xp = x.typed_data();
  float* op = out->typed_data();
  parallel_rows(pool, rows, [&](int64_t i) {
    const float* xr = xp + i * m;
    float* orow = op + i * m;
    const Stats st = layer_stats(xr, m, alpha, dof);
    if (!st.finite) {
      std::fill(orow, orow + m, NAN);
    } else if (kind == 0) {
      forward_row<0>(xr, orow, m, st);
    } else {
      forward_row<1>(xr, orow, m, st);
    }
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                    ffi::ResultBuffer<ffi::F32> dx, int64_t kind, double alpha, double dof,
                    double bdof) {
  if (auto err = check_kind(kind); err.failure()) return err;
  int64_t rows, m;
  if (!layer_shape(x, rows, m) || g.element_count() != x.element_count())
    return ffi::Error::InvalidArgument("actfx LayerAct: x and g must be (rows, m)");
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  float* dp = dx->typed_data();
  parallel_rows(pool, rows, [&](int64_t i) {
    thread_local std::vector<float> scratch;
    if (static_cast<int64_t>(scratch.size()) < m) scratch.resize(m);
    const float* xr = xp + i * m;
    const float* gr = gp + i * m;
    float* dr = dp + i * m;
    const Stats st = layer_stats(xr, m, alpha, dof);
    if (!st.finite) {
      std::fill(dr, dr + m, NAN);
    } else if (kind == 0) {
      backward_row<0>(xr, gr, dr, scratch.data(), m, st, bdof);
    } else {
      backward_row<1>(xr, gr, dr, scratch.data(), m, st, bdof);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ActfxLayerActForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kind")
                                  .Attr<double>("alpha")
                                  .Attr<double>("dof"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(ActfxLayerActBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kind")
                                  .Attr<double>("alpha")
                                  .Attr<double>("dof")
                                  .Attr<double>("bdof"));
