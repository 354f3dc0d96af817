// One rank of the collective tests, started by collective_mpi_test under real
// `mpirun -np N`. Each scenario checks the MpiCommunicator against a reference the rank
// computes itself (every rank can generate every other rank's inputs), prints
// "rank R: <scenario> OK" on success, and exits non-zero with the first mismatch.
//
//   collective_peer collectives   every op, every dtype, sum/mean, odd sizes, wire formats
//   collective_peer fusion        Bucketer (fused, overlapping) == one all-reduce per tensor
//   collective_peer compression   fp16/bf16 wire within the stated error; top-k error feedback
//   collective_peer kill          rank 1 SIGKILLs itself mid-run; the others must fail with
//                                 kTimedOut within op_timeout (run with --enable-recovery)
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "collective/bucketer.h"
#include "collective/compression.h"
#include "collective/mpi_communicator.h"
#include "common/hash.h"
#include "kernels/math/cast.h"

namespace tessera::collective {
namespace {

namespace m = kernels::math;
const Duration kWait = std::chrono::seconds(60);

int g_rank = -1;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "rank %d: FAIL: %s\n", g_rank, what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

void Ok(const Status& st, const std::string& what) {
  if (!st.ok()) Fail(what + ": " + st.ToString());
}

// Deterministic input of (rank, tensor, element) in [-1, 1), with a few larger values.
float Input(int rank, uint64_t tensor, uint64_t i) {
  const uint64_t h = Mix64((static_cast<uint64_t>(rank) << 40) ^ (tensor << 20) ^ i ^ 0x9e3779b97f4a7c15ull);
  float v = static_cast<float>(h >> 40) / static_cast<float>(1ull << 23) - 1.0f;
  if ((h & 0xff) == 0) v *= 50.0f;
  return v;
}

uint16_t To16(float f, DType d) { return d == DType::kF16 ? m::F32ToF16(f) : m::F32ToBF16(f); }
float From16(uint16_t h, DType d) { return d == DType::kF16 ? m::F16ToF32(h) : m::BF16ToF32(h); }
// Relative step of the format: 2^-11 (f16), 2^-8 (bf16), 2^-24 (f32).
double Eps(DType d) { return d == DType::kF16 ? 1.0 / 2048 : d == DType::kBF16 ? 1.0 / 256 : 1.0 / (1 << 24); }

// Sum (double) over ranks of what rank r contributes at element i, as the wire sees it.
double RefSum(int size, uint64_t tensor, uint64_t i, DType wire, double* abs_sum) {
  double s = 0, a = 0;
  for (int r = 0; r < size; ++r) {
    float v = Input(r, tensor, i);
    if (wire != DType::kF32) v = From16(To16(v, wire), wire);
    s += v;
    a += std::fabs(v);
  }
  *abs_sum = a;
  return s;
}

void CheckAllReduce(MpiCommunicator& c, DType dtype, WireFormat wire, ReduceOp op, int64_t n, uint64_t tensor) {
  const int size = c.size();
  std::vector<uint8_t> buf(static_cast<size_t>(n) * DTypeSize(dtype) + 1);
  for (int64_t i = 0; i < n; ++i) {
    const float v = Input(c.rank(), tensor, static_cast<uint64_t>(i));
    if (dtype == DType::kF32) reinterpret_cast<float*>(buf.data())[i] = v;
    else reinterpret_cast<uint16_t*>(buf.data())[i] = To16(v, dtype);
  }
  TensorView t{buf.data(), dtype, {n}, Device::kCPU};
  const std::string what = "all-reduce " + std::string(DTypeName(dtype)) + " wire " +
                           std::string(WireFormatName(wire)) + (op == ReduceOp::kMean ? " mean" : " sum") +
                           " n=" + std::to_string(n);
  Ok(c.AllReduce(t, op, wire).Wait(kWait), what);
  DType on_wire = dtype;
  if (wire == WireFormat::kF16) on_wire = DType::kF16;
  if (wire == WireFormat::kBF16) on_wire = DType::kBF16;
  const double scale = op == ReduceOp::kMean ? 1.0 / size : 1.0;
  for (int64_t i = 0; i < n; ++i) {
    double abs_sum;
    const double ref = RefSum(size, tensor, static_cast<uint64_t>(i), on_wire, &abs_sum) * scale;
    const double got = dtype == DType::kF32 ? reinterpret_cast<float*>(buf.data())[i]
                                            : From16(reinterpret_cast<uint16_t*>(buf.data())[i], dtype);
    // f32 sums: rounding per addition; a 16-bit result: one final rounding of the sum.
    const double tol = (on_wire == DType::kF32 ? 0 : Eps(on_wire) * std::fabs(ref) + 1e-7) +
                       size * 1.2e-7 * abs_sum * scale + 1e-30;
    if (!(std::fabs(got - ref) <= tol)) {
      Fail(what + ": element " + std::to_string(i) + " is " + std::to_string(got) + ", expected " +
           std::to_string(ref) + " (tolerance " + std::to_string(tol) + ")");
    }
  }
}

void Collectives(MpiCommunicator& c) {
  const int64_t sizes[] = {1, 3, 7, 1000, 4099, 65537, 300001};
  uint64_t tensor = 0;
  for (int64_t n : sizes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMean}) {
      CheckAllReduce(c, DType::kF32, WireFormat::kNative, op, n, ++tensor);
      CheckAllReduce(c, DType::kF16, WireFormat::kNative, op, n, ++tensor);
      CheckAllReduce(c, DType::kBF16, WireFormat::kNative, op, n, ++tensor);
      CheckAllReduce(c, DType::kF32, WireFormat::kF16, op, n, ++tensor);
      CheckAllReduce(c, DType::kF32, WireFormat::kBF16, op, n, ++tensor);
    }
  }
  CheckAllReduce(c, DType::kF32, WireFormat::kNative, ReduceOp::kSum, 0, ++tensor);  // empty is fine
  // A bad argument fails at once, on every rank alike, without reaching MPI.
  std::vector<int32_t> ints(4);
  Status bad = c.AllReduce({ints.data(), DType::kI32, {4}, Device::kCPU}, ReduceOp::kSum).Wait(kWait);
  if (bad.code() != StatusCode::kInvalidArgument) Fail("i32 all-reduce should be InvalidArgument: " + bad.ToString());

  // Broadcast from every root, odd byte counts, every dtype.
  for (int root = 0; root < c.size(); ++root) {
    for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
      const int64_t n = 1001 + root;
      std::vector<uint8_t> b(static_cast<size_t>(n) * DTypeSize(d));
      for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(Mix64(c.rank() * 7919 + i));
      Ok(c.Broadcast({b.data(), d, {n}, Device::kCPU}, root).Wait(kWait), "broadcast");
      for (size_t i = 0; i < b.size(); ++i) {
        if (b[i] != static_cast<uint8_t>(Mix64(root * 7919 + i))) Fail("broadcast from root " + std::to_string(root));
      }
    }
  }
  // All-gather: rank order.
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    const int64_t n = 333;
    const size_t nb = static_cast<size_t>(n) * DTypeSize(d);
    std::vector<uint8_t> in(nb), out(nb * static_cast<size_t>(c.size()));
    for (size_t i = 0; i < nb; ++i) in[i] = static_cast<uint8_t>(Mix64(c.rank() * 104729 + i));
    Ok(c.AllGather({in.data(), d, {n}, Device::kCPU}, {out.data(), d, {n * c.size()}, Device::kCPU}).Wait(kWait),
       "all-gather");
    for (int r = 0; r < c.size(); ++r) {
      for (size_t i = 0; i < nb; ++i) {
        if (out[r * nb + i] != static_cast<uint8_t>(Mix64(r * 104729 + i))) Fail("all-gather block " + std::to_string(r));
      }
    }
  }
  // Many operations in flight at once complete in order, each correct.
  std::vector<std::vector<float>> many(20, std::vector<float>(517));
  std::vector<CollHandle> hs;
  for (size_t k = 0; k < many.size(); ++k) {
    for (size_t i = 0; i < many[k].size(); ++i) many[k][i] = Input(c.rank(), 5000 + k, i);
    hs.push_back(c.AllReduce({many[k].data(), DType::kF32, {517}, Device::kCPU}, ReduceOp::kSum));
  }
  for (size_t k = 0; k < hs.size(); ++k) {
    Ok(hs[k].Wait(kWait), "async all-reduce " + std::to_string(k));
    for (size_t i = 0; i < many[k].size(); ++i) {
      double a;
      const double ref = RefSum(c.size(), 5000 + k, i, DType::kF32, &a);
      if (std::fabs(many[k][i] - ref) > c.size() * 1.2e-7 * a + 1e-30) Fail("async all-reduce value");
    }
  }
  Ok(c.Barrier().Wait(kWait), "barrier");
}

// 200 tensors of mixed sizes, bucketed 256 KiB and marked ready in reverse order
// (as backward does), must equal one in-place all-reduce per tensor, bitwise (the same
// f32 sums of the same values).
void Fusion(MpiCommunicator& c) {
  std::vector<std::vector<float>> fused(200), single(200);
  for (size_t k = 0; k < fused.size(); ++k) {
    const size_t n = 1 + (Mix64(k) % 20000);
    fused[k].resize(n);
    for (size_t i = 0; i < n; ++i) fused[k][i] = Input(c.rank(), k, i);
    single[k] = fused[k];
  }
  std::vector<TensorView> views;
  for (size_t k = fused.size(); k-- > 0;) {
    views.push_back({fused[k].data(), DType::kF32, {static_cast<int64_t>(fused[k].size())}, Device::kCPU});
  }
  BucketOptions o;
  o.bucket_bytes = 256 << 10;
  o.reduce = ReduceOp::kMean;
  auto b = Bucketer::Create(&c, views, o);
  Ok(b.status(), "Bucketer::Create");
  if ((*b)->num_buckets() < 5 || (*b)->num_buckets() >= 200) Fail("unexpected bucket count " + std::to_string((*b)->num_buckets()));
  for (int step = 0; step < 2; ++step) {
    for (size_t i = 0; i < views.size(); ++i) {
      if (step == 1 && i % 3 == 0) continue;  // left for Finish to mark
      Ok((*b)->MarkReady(i), "MarkReady");
    }
    Ok((*b)->Finish(kWait), "Bucketer::Finish");
    std::vector<CollHandle> hs;
    for (auto& s : single) hs.push_back(c.AllReduce({s.data(), DType::kF32, {static_cast<int64_t>(s.size())}, Device::kCPU}, ReduceOp::kMean));
    for (auto& h : hs) Ok(h.Wait(kWait), "per-tensor all-reduce");
    for (size_t k = 0; k < fused.size(); ++k) {
      if (std::memcmp(fused[k].data(), single[k].data(), 4 * fused[k].size()) != 0) {
        Fail("step " + std::to_string(step) + ": fused tensor " + std::to_string(k) + " differs from per-tensor");
      }
    }
  }
  if ((*b)->reductions() != static_cast<int64_t>(2 * (*b)->num_buckets())) Fail("one all-reduce per bucket per step");
  // Gradients as bucket views: the same values with no copies in or out.
  std::vector<std::vector<float>> adopted(fused.size());
  std::vector<TensorView> aviews;
  for (size_t k = fused.size(); k-- > 0;) {
    adopted[k].resize(fused[k].size());
    aviews.push_back({adopted[k].data(), DType::kF32, {static_cast<int64_t>(adopted[k].size())}, Device::kCPU});
  }
  auto a = Bucketer::Create(&c, aviews, o);
  Ok(a.status(), "Bucketer::Create");
  std::vector<Tensor> homes(aviews.size());
  for (size_t i = 0; i < aviews.size(); ++i) {
    if (!(*a)->fused(i)) continue;
    auto t = (*a)->AdoptBucketMemory(i);
    Ok(t.status(), "AdoptBucketMemory");
    homes[i] = std::move(t).value();
  }
  for (size_t i = 0; i < aviews.size(); ++i) {  // write this step's inputs where they now live
    const size_t k = fused.size() - 1 - i;
    float* dst = homes[i].data() != nullptr ? homes[i].as<float>() : adopted[k].data();
    for (size_t j = 0; j < adopted[k].size(); ++j) dst[j] = Input(c.rank(), k, j);
    Ok((*a)->MarkReady(i), "MarkReady");
  }
  Ok((*a)->Finish(kWait), "Finish");
  std::vector<float> ref;
  for (size_t i = 0; i < aviews.size(); ++i) {
    const size_t k = fused.size() - 1 - i;
    ref = std::vector<float>(adopted[k].size());
    for (size_t j = 0; j < ref.size(); ++j) ref[j] = Input(c.rank(), k, j);
    std::vector<CollHandle> one{c.AllReduce({ref.data(), DType::kF32, {static_cast<int64_t>(ref.size())}, Device::kCPU}, ReduceOp::kMean)};
    Ok(one[0].Wait(kWait), "reference all-reduce");
    const float* got = homes[i].data() != nullptr ? homes[i].as<float>() : adopted[k].data();
    if (std::memcmp(got, ref.data(), 4 * ref.size()) != 0) Fail("adopted tensor " + std::to_string(k) + " differs");
  }
  // Marking a tensor twice is refused.
  Ok((*b)->MarkReady(0), "MarkReady");
  if ((*b)->MarkReady(0).ok()) Fail("double MarkReady accepted");
  Ok((*b)->Finish(kWait), "Finish");
}

// fp16/bf16 wire: |result - exact mean| <= (n * eps_in + eps_out) * max|x| stated in
// docs/collective.md; top-k: with error feedback the sum of what was sent over S steps
// equals the sum of the gradients minus the residual (nothing lost).
void Compression(MpiCommunicator& c) {
  const int64_t n = 100003;
  for (WireFormat w : {WireFormat::kF16, WireFormat::kBF16}) {
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = Input(c.rank(), 777, i) * 0.01f;
    Ok(c.AllReduce({x.data(), DType::kF32, {n}, Device::kCPU}, ReduceOp::kMean, w).Wait(kWait), "compressed all-reduce");
    const double eps = w == WireFormat::kF16 ? 1.0 / 2048 : 1.0 / 256;
    double max_rel = 0;
    for (int64_t i = 0; i < n; ++i) {
      double exact = 0, mag = 0;
      for (int r = 0; r < c.size(); ++r) {
        exact += Input(r, 777, i) * 0.01f;
        mag = std::max(mag, std::fabs(static_cast<double>(Input(r, 777, i) * 0.01f)));
      }
      exact /= c.size();
      const double err = std::fabs(x[i] - exact);
      if (err > 2 * eps * mag + 1e-7) {
        Fail(std::string(WireFormatName(w)) + " element " + std::to_string(i) + " error " + std::to_string(err) +
             " above 2 eps max|x| = " + std::to_string(2 * eps * mag));
      }
      if (mag > 0) max_rel = std::max(max_rel, err / mag);
    }
    std::printf("rank %d: %s max error / max|x| = %.3g (bound %.3g)\n", c.rank(), std::string(WireFormatName(w)).c_str(),
                max_rel, 2 * eps);
  }
  // Top-k 1% with error feedback over 5 steps.
  const int64_t len = 10007;
  TopKCompressor comp(len, 0.01);
  if (comp.k() != 101) Fail("k for 1% of 10007 should be 101, is " + std::to_string(comp.k()));
  std::vector<double> applied(len, 0), fed(len, 0);
  for (int step = 0; step < 5; ++step) {
    std::vector<float> g(len);
    for (int64_t i = 0; i < len; ++i) g[i] = Input(c.rank(), 900 + step, i);
    for (int64_t i = 0; i < len; ++i) fed[i] += g[i];
    Ok(TopKAllReduce(&c, &comp, {g.data(), DType::kF32, {len}, Device::kCPU}, ReduceOp::kSum, kWait), "top-k");
    int64_t nonzero = 0;
    for (int64_t i = 0; i < len; ++i) nonzero += g[i] != 0;
    if (nonzero > 101 * c.size()) Fail("top-k result has " + std::to_string(nonzero) + " non-zeros");
    // The rank's own contribution is not visible in the sum; the sum is checked across
    // ranks below via an all-reduce of the residual-corrected totals.
    for (int64_t i = 0; i < len; ++i) applied[i] += g[i];
  }
  // sum over ranks of (fed - residual) == applied (every rank sees the same applied).
  std::vector<float> own(len);
  for (int64_t i = 0; i < len; ++i) own[i] = static_cast<float>(fed[i] - comp.residual()[i]);
  Ok(c.AllReduce({own.data(), DType::kF32, {len}, Device::kCPU}, ReduceOp::kSum).Wait(kWait), "check all-reduce");
  for (int64_t i = 0; i < len; ++i) {
    if (std::fabs(own[i] - applied[i]) > 1e-3 * (1 + std::fabs(applied[i]))) {
      Fail("top-k error feedback lost mass at " + std::to_string(i) + ": sent " + std::to_string(applied[i]) +
           ", gradients minus residual " + std::to_string(own[i]));
    }
  }
}

int Kill(MpiCommunicator& c) {
  std::vector<float> x(4096, 1.0f);
  for (int i = 0; i < 5; ++i) Ok(c.AllReduce({x.data(), DType::kF32, {4096}, Device::kCPU}, ReduceOp::kSum).Wait(kWait), "warm-up");
  if (c.rank() == 1) raise(SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  Status st = c.AllReduce({x.data(), DType::kF32, {4096}, Device::kCPU}, ReduceOp::kSum).Wait(kWait);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (st.ok()) Fail("all-reduce with a dead peer succeeded");
  Status later = c.Barrier().Wait(kWait);
  std::printf("rank %d: collective failed after %.1f s: %s; next op: %s\n", c.rank(), s, st.ToString().c_str(),
              later.ToString().c_str());
  std::fflush(stdout);
  std::_Exit(st.code() == StatusCode::kTimedOut && later.code() == StatusCode::kTimedOut ? 3 : 1);
}

}  // namespace
}  // namespace tessera::collective

int main(int argc, char** argv) {
  using namespace tessera::collective;
  if (argc < 2) {
    std::fprintf(stderr, "usage: collective_peer collectives|fusion|compression|kill\n");
    return 2;
  }
  const std::string scenario = argv[1];
  MpiOptions o;
  if (scenario == "kill") o.op_timeout = std::chrono::seconds(3);
  auto c = MpiCommunicator::Start(o);
  if (!c.ok()) {
    std::fprintf(stderr, "FAIL: %s\n", c.status().ToString().c_str());
    return 1;
  }
  g_rank = (*c)->rank();
  if ((*c)->size() != (*c)->world_size()) Fail("members != world");
  if (scenario == "collectives") Collectives(**c);
  else if (scenario == "fusion") Fusion(**c);
  else if (scenario == "compression") Compression(**c);
  else if (scenario == "kill") return Kill(**c);
  else Fail("unknown scenario " + scenario);
  std::printf("rank %d: %s OK\n", g_rank, scenario.c_str());
  std::fflush(stdout);
  return 0;
}
