#include "worker/device_comm.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "common/hostname.h"

#if TESSERA_HAVE_NCCL
#include <cuda_runtime.h>

#include "collective/nccl_communicator.h"
#include "worker/rendezvous.h"
#endif

namespace tessera::worker {

Result<bool> WorkersHaveDistinctGpus(collective::Communicator& workers, int cuda_device, Duration timeout) {
  std::string where = Hostname() + "/";
#if TESSERA_HAVE_NCCL
  char bus[64] = {};
  const cudaError_t err = cudaDeviceGetPCIBusId(bus, sizeof(bus), cuda_device);
  if (err != cudaSuccess) {
    return Status::Internal("cudaDeviceGetPCIBusId(" + std::to_string(cuda_device) + "): " + cudaGetErrorString(err));
  }
  where += bus;
#else
  where += std::to_string(cuda_device);
#endif
  // Fixed-size records (a longer host name is cut; the bus id stays unique per host).
  constexpr int64_t kWords = 16;  // 128 bytes
  const size_t keep = std::min(where.size(), static_cast<size_t>(kWords * 8));
  std::vector<uint64_t> mine(kWords, 0), all(static_cast<size_t>(kWords * workers.size()), 0);
  std::memcpy(mine.data(), where.data() + (where.size() - keep), keep);
  collective::CollHandle h = workers.AllGather({mine.data(), DType::kU64, {kWords}, Device::kCPU},
                                               {all.data(), DType::kU64, {kWords * workers.size()}, Device::kCPU});
  TESSERA_RETURN_IF_ERROR_CTX(h.Wait(timeout), "gathering which GPU each worker uses");
  std::set<std::string> seen;
  for (int w = 0; w < workers.size(); ++w) {
    seen.insert(std::string(reinterpret_cast<const char*>(all.data() + w * kWords), kWords * 8));
  }
  return static_cast<int>(seen.size()) == workers.size();
}

Result<std::unique_ptr<collective::Communicator>> ConnectNccl(Client& client, int worker_index, int num_workers,
                                                              int cuda_device, Duration op_timeout) {
#if TESSERA_HAVE_NCCL
  const std::string who = "worker " + std::to_string(worker_index) + " (CUDA device " + std::to_string(cuda_device) + ")";
  auto id_text = ShareFromWorkerZero(
      client, "nccl_unique_id",
      []() -> Result<std::string> {
        TESSERA_ASSIGN_OR_RETURN(const collective::NcclUniqueIdBytes id, collective::NcclCommunicator::NewUniqueId());
        return std::string(id.data(), id.size());
      },
      op_timeout);
  if (!id_text.ok()) return id_text.status().WithContext(who + ": getting the NCCL unique id from worker 0");
  collective::NcclUniqueIdBytes id{};
  if (id_text->size() != id.size()) {
    return Status::Corruption(who + ": the NCCL unique id from the rendezvous has " + std::to_string(id_text->size()) +
                              " bytes, not " + std::to_string(id.size()));
  }
  std::memcpy(id.data(), id_text->data(), id.size());
  collective::NcclOptions o;
  o.device = cuda_device;
  o.op_timeout = op_timeout;
  o.init_timeout = op_timeout;
  auto comm = collective::NcclCommunicator::Create(o, id, worker_index, num_workers);
  if (!comm.ok()) return comm.status().WithContext(who + ": joining the NCCL communicator");
  return std::unique_ptr<collective::Communicator>(std::move(comm).value());
#else
  (void)client;
  (void)num_workers;
  (void)op_timeout;
  return Status::FailedPrecondition("worker " + std::to_string(worker_index) + ": NCCL for CUDA device " +
                                    std::to_string(cuda_device) + " requested, but this tessera was built without NCCL");
#endif
}

}  // namespace tessera::worker
