// scripts/gpu-check.sh on machines that cannot run it: it must stop before building,
// exit 2 and name what is missing (issue 19). The driver and compiler are swapped for
// stand-ins (or for nothing) through the script's NVIDIA_SMI and NVCC seams, so the
// cases are the same on every machine, with or without a GPU; nothing is built.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

class GpuCheck : public ::testing::Test {
 protected:
  // An executable stand-in for nvidia-smi printing `output` and exiting with `code`.
  std::string FakeSmi(const std::string& output, int code) {
    const std::string path = dir_.path() + "/nvidia-smi";
    std::ofstream(path) << "#!/bin/sh\nprintf '%s\\n' '" << output << "'\nexit " << code << "\n";
    chmod(path.c_str(), 0755);
    return path;
  }
  testing::CommandResult Run(const std::string& env) {
    return testing::RunCommand(env + " bash " + testing::SourceDir() + "/scripts/gpu-check.sh " + build_ + " 2>&1", 60);
  }
  void ExpectStoppedBeforeBuilding(const testing::CommandResult& r, const std::string& why) {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("gpu-check: this machine cannot run the GPU check: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(why), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(build_)) << "it configured a build anyway";
  }

  testing::TempDir dir_;
  const std::string build_ = dir_.path() + "/build-gpu";
};

TEST_F(GpuCheck, AMissingDriverIsNamed) {
  ExpectStoppedBeforeBuilding(Run("NVIDIA_SMI=" + dir_.path() + "/no-such-nvidia-smi"),
                              "no NVIDIA driver (" + dir_.path() + "/no-such-nvidia-smi not found)");
}

TEST_F(GpuCheck, ADriverWithoutDevicesIsNamed) {
  ExpectStoppedBeforeBuilding(Run("NVIDIA_SMI=" + FakeSmi("No devices were found", 6)), "no GPU visible");
}

TEST_F(GpuCheck, AMissingCompilerIsNamed) {
  ExpectStoppedBeforeBuilding(
      Run("NVIDIA_SMI=" + FakeSmi("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)", 0) + " NVCC=/nonexistent/nvcc"),
      "no CUDA compiler");
}

TEST_F(GpuCheck, AnEmptyCudaVisibleDevicesIsNamed) {
  ExpectStoppedBeforeBuilding(
      Run("CUDA_VISIBLE_DEVICES= NVIDIA_SMI=" + FakeSmi("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)", 0)),
      "CUDA_VISIBLE_DEVICES is set and empty");
}

}  // namespace
}  // namespace tessera
