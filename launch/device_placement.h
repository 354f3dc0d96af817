// Where a worker computes (--device=cpu|cuda|auto, docs/training.md "GPU workers").
//
// A pure function of what the process can see: the flag, the number of CUDA devices the
// driver reports (it already applies CUDA_VISIBLE_DEVICES), whether the binary has the
// CUDA backend, and the launch environment (local rank; CUDA_VISIBLE_DEVICES only to
// explain a choice). launch/job.cc asks the driver and applies the answer
// (kernels::UseCudaDevice); servers and the coordinator never call it: they stay on
// the CPU.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "common/tensor.h"
#include "launch/env.h"

namespace tessera::launch {

enum class DeviceRequest : uint8_t { kCpu, kCuda, kAuto };

// "cpu", "cuda", "auto". Anything else -> InvalidArgument naming --device and the value.
Result<DeviceRequest> ParseDeviceFlag(std::string_view text);
std::string_view DeviceRequestName(DeviceRequest request);

struct DevicePlacement {
  Device device = Device::kCPU;
  int cuda_device = -1;  // the device ordinal to select under kCUDA; -1 under kCPU
  std::string reason;    // one line for the log: what was chosen and why
};

// kCpu: the CPU. kAuto: the CUDA device DeviceForLocalRank(li.local_rank, visible_gpus)
// when the build has CUDA and visible_gpus > 0, else the CPU (the reason says which of
// the two was missing). kCuda: that device, or FailedPrecondition naming what is missing
// (a build without CUDA, no device, or CUDA_VISIBLE_DEVICES hiding every one), for
// exit code 2.
Result<DevicePlacement> PlaceWorker(DeviceRequest request, bool built_with_cuda, int visible_gpus,
                                    const LaunchInfo& li);

}  // namespace tessera::launch
