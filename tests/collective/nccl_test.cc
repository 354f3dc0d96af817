// The NCCL backend on real GPUs (label gpu; skipped without a usable device): one rank per
// device, each rank a thread of this process (NCCL allows that; one device cannot hold two
// ranks). Every collective against a reference computed here, odd sizes, every dtype.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "collective/nccl_communicator.h"
#include "kernels/math/cast.h"
#include "kernels/ops.h"

namespace tessera::collective {
namespace {

namespace m = kernels::math;
const Duration kWait = std::chrono::seconds(60);

int Devices() {
  if (!kernels::CudaDeviceAvailable()) return 0;
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

float Input(int rank, int64_t i) { return std::sin(static_cast<float>(rank * 1000 + i)) * (i % 17 == 0 ? 30.0f : 1.0f); }

// Runs body(comm, rank) on `n` ranks, one thread and device each.
void OnRanks(int n, const std::function<void(NcclCommunicator&, int)>& body) {
  auto id = NcclCommunicator::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      NcclOptions o;
      o.device = r;
      o.op_timeout = std::chrono::seconds(30);
      o.init_timeout = std::chrono::seconds(30);
      auto c = NcclCommunicator::Create(o, *id, r, n);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      body(**c, r);
    });
  }
  for (auto& t : threads) t.join();
}

void CheckAllReduce(NcclCommunicator& c, int rank, DType dtype, WireFormat wire, ReduceOp op, int64_t n) {
  const size_t es = DTypeSize(dtype);
  std::vector<uint8_t> host(static_cast<size_t>(n) * es);
  for (int64_t i = 0; i < n; ++i) {
    const float v = Input(rank, i);
    if (dtype == DType::kF32) reinterpret_cast<float*>(host.data())[i] = v;
    else if (dtype == DType::kF16) reinterpret_cast<uint16_t*>(host.data())[i] = m::F32ToF16(v);
    else reinterpret_cast<uint16_t*>(host.data())[i] = m::F32ToBF16(v);
  }
  void* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, host.size()), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
  TensorView t{dev, dtype, {n}, Device::kCUDA};
  ASSERT_TRUE(c.AllReduce(t, op, wire).Wait(kWait).ok());
  ASSERT_EQ(cudaMemcpy(host.data(), dev, host.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(dev);
  const double eps = dtype == DType::kF16 || wire == WireFormat::kF16 ? 1.0 / 1024
                     : dtype == DType::kBF16 || wire == WireFormat::kBF16 ? 1.0 / 128 : 1e-6;
  for (int64_t i = 0; i < n; ++i) {
    double ref = 0, mag = 0;
    for (int r = 0; r < c.size(); ++r) {
      ref += Input(r, i);
      mag = std::max(mag, std::fabs(static_cast<double>(Input(r, i))));
    }
    if (op == ReduceOp::kMean) ref /= c.size();
    const uint16_t h = reinterpret_cast<uint16_t*>(host.data())[i];
    const double got = dtype == DType::kF32 ? reinterpret_cast<float*>(host.data())[i]
                       : dtype == DType::kF16 ? m::F16ToF32(h) : m::BF16ToF32(h);
    ASSERT_NEAR(got, ref, c.size() * eps * (mag + 1e-3)) << DTypeName(dtype) << " wire " << WireFormatName(wire) << " i=" << i;
  }
}

TEST(Nccl, EveryCollectiveOnEveryDevice) {
  const int n = Devices();
  if (n == 0) GTEST_SKIP() << "no usable CUDA device";
  OnRanks(n, [](NcclCommunicator& c, int rank) {
    for (int64_t size : {1, 7, 4099, 300001}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMean}) {
        CheckAllReduce(c, rank, DType::kF32, WireFormat::kNative, op, size);
        CheckAllReduce(c, rank, DType::kF16, WireFormat::kNative, op, size);
        CheckAllReduce(c, rank, DType::kBF16, WireFormat::kNative, op, size);
        CheckAllReduce(c, rank, DType::kF32, WireFormat::kF16, op, size);
        CheckAllReduce(c, rank, DType::kF32, WireFormat::kBF16, op, size);
      }
    }
    // Broadcast from rank 0 and all-gather in rank order.
    const int64_t k = 1001;
    std::vector<float> h(k);
    for (int64_t i = 0; i < k; ++i) h[i] = static_cast<float>(rank * 10000 + i);
    float *d = nullptr, *all = nullptr;
    ASSERT_EQ(cudaMalloc(&d, k * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&all, k * 4 * c.size()), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d, h.data(), k * 4, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_TRUE(c.AllGather({d, DType::kF32, {k}, Device::kCUDA}, {all, DType::kF32, {k * c.size()}, Device::kCUDA}).Wait(kWait).ok());
    std::vector<float> g(k * c.size());
    ASSERT_EQ(cudaMemcpy(g.data(), all, g.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int r = 0; r < c.size(); ++r) ASSERT_EQ(g[r * k + 5], static_cast<float>(r * 10000 + 5));
    ASSERT_TRUE(c.Broadcast({d, DType::kF32, {k}, Device::kCUDA}, 0).Wait(kWait).ok());
    ASSERT_EQ(cudaMemcpy(h.data(), d, k * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(h[7], 7.0f);
    ASSERT_TRUE(c.Barrier().Wait(kWait).ok());
    // A host tensor is refused without reaching NCCL.
    EXPECT_EQ(c.AllReduce({h.data(), DType::kF32, {k}, Device::kCPU}, ReduceOp::kSum).Wait(kWait).code(),
              StatusCode::kInvalidArgument);
    cudaFree(d);
    cudaFree(all);
  });
}

// A rank that never joins: init must fail within init_timeout instead of hanging.
TEST(Nccl, AMissingPeerFailsInitWithinTheTimeout) {
  if (Devices() == 0) GTEST_SKIP() << "no usable CUDA device";
  auto id = NcclCommunicator::NewUniqueId();
  ASSERT_TRUE(id.ok());
  NcclOptions o;
  o.init_timeout = std::chrono::seconds(5);
  const auto t0 = std::chrono::steady_clock::now();
  auto c = NcclCommunicator::Create(o, *id, 0, 2);  // rank 1 never comes
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(c.ok());
  EXPECT_LT(s, 20);
  EXPECT_NE(c.status().ToString().find("did every rank start"), std::string::npos) << c.status().ToString();
}

}  // namespace
}  // namespace tessera::collective
