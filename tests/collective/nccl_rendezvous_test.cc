// NCCL bootstrapped through the coordinator (no MPI): a real coordinator, server and one
// worker client per CUDA device in this process; worker 0 makes the unique id, the others
// receive it by rendezvous, and the communicator they build all-reduces correctly.
// Label gpu: skips without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "collective/nccl_communicator.h"
#include "coordinator/coordinator.h"
#include "kernels/ops.h"
#include "paramserver/server.h"
#include "worker/client.h"
#include "worker/rendezvous.h"

namespace tessera {
namespace {

using namespace std::chrono_literals;
using collective::NcclCommunicator;

int Devices() {
  if (!kernels::CudaDeviceAvailable()) return 0;
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

TEST(NcclRendezvous, UniqueIdFromTheCoordinatorBuildsAWorkingCommunicator) {
  const int n = Devices();
  if (n == 0) GTEST_SKIP() << "no usable CUDA device";
  constexpr uint64_t kJob = 99;
  auto ctx = *wire::Context::Create();
  CoordinatorOptions co;
  co.job_id = kJob;
  co.num_servers = 1;
  co.num_workers = n;
  auto coord = Coordinator::Start(co, ctx);
  ASSERT_TRUE(coord.ok()) << coord.status().ToString();
  paramserver::ServerOptions so;
  so.coordinator = (*coord)->endpoint();
  so.job_id = kJob;
  so.rank = 1;
  so.num_servers = 1;
  so.num_workers = n;
  auto server = paramserver::ParamServer::Start(so, ctx);
  ASSERT_TRUE(server.ok()) << server.status().ToString();

  constexpr int64_t kElems = 1001;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      worker::ClientOptions wo;
      wo.coordinator = (*coord)->endpoint();
      wo.job_id = kJob;
      wo.rank = 2 + r;
      wo.num_servers = 1;
      wo.num_workers = n;
      auto client = worker::Client::Connect(wo, ctx);
      ASSERT_TRUE(client.ok()) << client.status().ToString();
      auto bytes = worker::ShareFromWorkerZero(**client, "nccl_unique_id", []() -> Result<std::string> {
        TESSERA_ASSIGN_OR_RETURN(auto id, NcclCommunicator::NewUniqueId());
        return std::string(id.data(), id.size());
      }, 30s);
      ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
      ASSERT_EQ(bytes->size(), sizeof(collective::NcclUniqueIdBytes));
      collective::NcclUniqueIdBytes id;
      std::memcpy(id.data(), bytes->data(), id.size());
      collective::NcclOptions o;
      o.device = r;
      o.init_timeout = o.op_timeout = 30s;
      auto comm = NcclCommunicator::Create(o, id, r, n);
      ASSERT_TRUE(comm.ok()) << comm.status().ToString();
      ASSERT_EQ(cudaSetDevice(r), cudaSuccess);
      std::vector<float> host(kElems);
      for (int64_t i = 0; i < kElems; ++i) host[static_cast<size_t>(i)] = static_cast<float>((r + 1) * (i % 7));
      void* dev = nullptr;
      ASSERT_EQ(cudaMalloc(&dev, kElems * sizeof(float)), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(dev, host.data(), kElems * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
      TensorView t{dev, DType::kF32, {kElems}, Device::kCUDA};
      ASSERT_TRUE((*comm)->AllReduce(t, collective::ReduceOp::kSum).Wait(30s).ok());
      ASSERT_EQ(cudaMemcpy(host.data(), dev, kElems * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
      cudaFree(dev);
      const float ranks_sum = static_cast<float>(n * (n + 1) / 2);
      for (int64_t i = 0; i < kElems; ++i) ASSERT_EQ(host[static_cast<size_t>(i)], ranks_sum * static_cast<float>(i % 7)) << i;
      (*client)->Finish(0, "done").IgnoreError();
    });
  }
  for (auto& t : threads) t.join();
  (*coord)->Wait(10s);
  (*server)->Wait(10s);
}

}  // namespace
}  // namespace tessera
