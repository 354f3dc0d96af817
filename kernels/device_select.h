// Which CUDA device this process runs on. Under a launcher the ranks of one node share
// its GPUs: the local rank picks one (launch::DeviceForLocalRank computes which; this
// file applies it). cudaSetDevice is per host thread, so the choice is also remembered
// for threads and libraries that start later (SelectedCudaDevice).
//
// Threading: call UseCudaDevice once from the main thread at start-up, before other
// threads issue CUDA work; the getters may be called from any thread afterwards.
#pragma once

#include "common/status.h"

namespace tessera::kernels {

// Devices this process can use (CUDA_VISIBLE_DEVICES applies); 0 on a CPU-only build, or
// when the driver reports none or fails.
int CudaDeviceCount();

// Makes `device` the current device of the calling thread and records it.
// FailedPrecondition on a CPU-only build; InvalidArgument when out of range.
Status UseCudaDevice(int device);

// The device recorded by UseCudaDevice; -1 when none was chosen.
int SelectedCudaDevice();

}  // namespace tessera::kernels
