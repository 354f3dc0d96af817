#include "kernels/device_select.h"

#include <atomic>
#include <string>

#if TESSERA_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace tessera::kernels {
namespace {
std::atomic<int> g_selected{-1};
}  // namespace

int CudaDeviceCount() {
#if TESSERA_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // "no driver" / "no device": clear it so a later call does not report it
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

Status UseCudaDevice(int device) {
#if TESSERA_HAVE_CUDA
  const int count = CudaDeviceCount();
  if (device < 0 || device >= count) {
    return Status::InvalidArgument("CUDA device " + std::to_string(device) + " does not exist (" +
                                   std::to_string(count) + " visible)");
  }
  const cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Status::Unavailable("cudaSetDevice(" + std::to_string(device) + "): " + cudaGetErrorString(err));
  }
  g_selected.store(device);
  return Status::OK();
#else
  return Status::FailedPrecondition("CUDA device " + std::to_string(device) +
                                    " requested, but tessera_kernels was built without CUDA");
#endif
}

int SelectedCudaDevice() { return g_selected.load(); }

}  // namespace tessera::kernels
