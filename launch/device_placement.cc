#include "launch/device_placement.h"

namespace tessera::launch {

Result<DeviceRequest> ParseDeviceFlag(std::string_view text) {
  if (text == "cpu") return DeviceRequest::kCpu;
  if (text == "cuda") return DeviceRequest::kCuda;
  if (text == "auto") return DeviceRequest::kAuto;
  return Status::InvalidArgument("--device=" + std::string(text) + ": expected cpu, cuda or auto");
}

std::string_view DeviceRequestName(DeviceRequest request) {
  switch (request) {
    case DeviceRequest::kCpu: return "cpu";
    case DeviceRequest::kCuda: return "cuda";
    case DeviceRequest::kAuto: return "auto";
  }
  return "?";
}

namespace {

// Why no GPU is usable, for the log and the error.
std::string NoGpuReason(bool built_with_cuda, int visible_gpus, const LaunchInfo& li) {
  if (!built_with_cuda) return "this tessera was built without CUDA (configure with -DTESSERA_CUDA=ON)";
  if (li.cuda_visible_devices_set &&
      (li.cuda_visible_devices.empty() || li.cuda_visible_devices == "-1" || li.cuda_visible_devices == "NoDevFiles")) {
    return "CUDA_VISIBLE_DEVICES='" + li.cuda_visible_devices + "' hides every GPU";
  }
  std::string r = "the CUDA driver reports no usable GPU";
  if (visible_gpus < 0) r += " (it failed)";
  if (li.cuda_visible_devices_set) r += " (CUDA_VISIBLE_DEVICES=" + li.cuda_visible_devices + ")";
  return r;
}

}  // namespace

Result<DevicePlacement> PlaceWorker(DeviceRequest request, bool built_with_cuda, int visible_gpus,
                                    const LaunchInfo& li) {
  DevicePlacement p;
  if (request == DeviceRequest::kCpu) {
    p.reason = "--device=cpu: computing on the CPU";
    return p;
  }
  const bool usable = built_with_cuda && visible_gpus > 0;
  if (!usable) {
    const std::string why = NoGpuReason(built_with_cuda, visible_gpus, li);
    if (request == DeviceRequest::kCuda) {
      return Status::FailedPrecondition("--device=cuda, but " + why + "; use --device=cpu or auto");
    }
    p.reason = "--device=auto: computing on the CPU because " + why;
    return p;
  }
  p.device = Device::kCUDA;
  p.cuda_device = DeviceForLocalRank(li.local_rank, visible_gpus);
  p.reason = "--device=" + std::string(DeviceRequestName(request)) + ": CUDA device " +
             std::to_string(p.cuda_device) + " of " + std::to_string(visible_gpus) + " visible (local rank " +
             std::to_string(li.local_rank) + " from " + li.source +
             (li.cuda_visible_devices_set ? ", CUDA_VISIBLE_DEVICES=" + li.cuda_visible_devices : std::string()) + ")";
  return p;
}

}  // namespace tessera::launch
