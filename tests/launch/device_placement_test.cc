// --device placement from the launch environment (launch/device_placement.h): recorded
// launcher environments go through DetectLaunchEnv, then PlaceWorker with a stated
// number of visible GPUs, so GPU machines need not be present.
#include "launch/device_placement.h"

#include <gtest/gtest.h>

namespace tessera::launch {
namespace {

LaunchInfo Detect(const EnvMap& env) {
  auto li = DetectLaunchEnv(env);
  EXPECT_TRUE(li.ok()) << li.status().ToString();
  return li.ok() ? *li : LaunchInfo{};
}

TEST(DeviceFlag, ParsesTheThreeValuesAndRejectsOthers) {
  EXPECT_EQ(*ParseDeviceFlag("cpu"), DeviceRequest::kCpu);
  EXPECT_EQ(*ParseDeviceFlag("cuda"), DeviceRequest::kCuda);
  EXPECT_EQ(*ParseDeviceFlag("auto"), DeviceRequest::kAuto);
  for (const char* bad : {"", "gpu", "CUDA", "cuda:0"}) {
    auto r = ParseDeviceFlag(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--device="), std::string::npos) << r.status().ToString();
  }
}

TEST(DevicePlacement, OpenMpiLocalRankPicksTheGpu) {
  const LaunchInfo li = Detect({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                                {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  auto p = PlaceWorker(DeviceRequest::kAuto, true, 2, li);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->device, Device::kCUDA);
  EXPECT_EQ(p->cuda_device, 1) << "local rank 3 of a node with 2 GPUs";
  EXPECT_NE(p->reason.find("local rank 3 from openmpi"), std::string::npos) << p->reason;
}

TEST(DevicePlacement, SlurmLocalIdPicksTheGpu) {
  const LaunchInfo li = Detect({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"},
                                {"SLURM_JOB_ID", "77"}, {"SLURM_NNODES", "2"}});
  auto p = PlaceWorker(DeviceRequest::kCuda, true, 4, li);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->device, Device::kCUDA);
  EXPECT_EQ(p->cuda_device, 2);
}

TEST(DevicePlacement, OneGpuPerTaskIsDeviceZero) {
  // srun --gpus-per-task=1: each task sees exactly its own GPU as device 0.
  const LaunchInfo li = Detect({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "3"},
                                {"CUDA_VISIBLE_DEVICES", "3"}});
  EXPECT_TRUE(li.cuda_visible_devices_set);
  EXPECT_EQ(li.cuda_visible_devices, "3");
  auto p = PlaceWorker(DeviceRequest::kAuto, true, 1, li);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->cuda_device, 0);
  EXPECT_NE(p->reason.find("CUDA_VISIBLE_DEVICES=3"), std::string::npos) << p->reason;
}

TEST(DevicePlacement, CpuStaysOnTheCpuEvenWithGpus) {
  auto p = PlaceWorker(DeviceRequest::kCpu, true, 8, Detect({}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->device, Device::kCPU);
  EXPECT_EQ(p->cuda_device, -1);
}

TEST(DevicePlacement, AutoWithoutGpuFallsBackAndSaysWhy) {
  auto none = PlaceWorker(DeviceRequest::kAuto, true, 0, Detect({}));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->device, Device::kCPU);
  EXPECT_NE(none->reason.find("reports no usable GPU"), std::string::npos) << none->reason;
  auto unbuilt = PlaceWorker(DeviceRequest::kAuto, false, 0, Detect({}));
  ASSERT_TRUE(unbuilt.ok());
  EXPECT_EQ(unbuilt->device, Device::kCPU);
  EXPECT_NE(unbuilt->reason.find("built without CUDA"), std::string::npos) << unbuilt->reason;
}

TEST(DevicePlacement, CudaWithoutGpuIsRefusedNamingTheCause) {
  auto unbuilt = PlaceWorker(DeviceRequest::kCuda, false, 0, Detect({}));
  ASSERT_FALSE(unbuilt.ok());
  EXPECT_EQ(unbuilt.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(unbuilt.status().message().find("built without CUDA"), std::string::npos);
  auto none = PlaceWorker(DeviceRequest::kCuda, true, 0, Detect({}));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no usable GPU"), std::string::npos) << none.status().ToString();
  auto hidden = PlaceWorker(DeviceRequest::kCuda, true, 0, Detect({{"CUDA_VISIBLE_DEVICES", ""}}));
  ASSERT_FALSE(hidden.ok());
  EXPECT_NE(hidden.status().message().find("hides every GPU"), std::string::npos) << hidden.status().ToString();
}

TEST(DevicePlacement, TesseraLaunchSpreadsRanksOverGpus) {
  // tessera launch on one host: the local rank is the rank unless TESSERA_LOCAL_RANK says.
  const LaunchInfo li = Detect({{"TESSERA_RANK", "4"}, {"TESSERA_WORLD_SIZE", "5"}});
  auto p = PlaceWorker(DeviceRequest::kAuto, true, 2, li);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->cuda_device, 0);
}

}  // namespace
}  // namespace tessera::launch
