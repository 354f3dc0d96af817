// kernels/transfer.h on the backend under test: device tensors start zeroed, pinned
// blocks are host memory, and CopyQueue copies round-trip exactly in both directions on
// odd sizes, with fences that order them (also after the event ring wrapped).
#include "kernels/transfer.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

class Transfer : public KernelTest {};

std::vector<float> Pattern(int64_t n, float seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = seed + 0.25f * static_cast<float>(i % 977) - 3.0f;
  return v;
}

TEST_F(Transfer, AllocatedTensorsAreZeroedOnTheDevice) {
  auto t = AllocateTensor(device(), DType::kF32, {3, 5});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->view().device, device());
  std::vector<float> host(15, 1.0f);
  ASSERT_OK(CopyTensor(t->view(), {host.data(), DType::kF32, {15}, Device::kCPU}));
  for (size_t i = 0; i < host.size(); ++i) EXPECT_EQ(host[i], 0.0f) << "index " << i;
}

TEST_F(Transfer, PinnedBlocksAreHostMemory) {
  auto b = AllocatePinned(device(), 4096);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->device(), Device::kCPU);
  EXPECT_EQ(b->size(), 4096u);
  b->as<char>()[4095] = 7;  // writable from the host
  EXPECT_EQ(b->as<char>()[0], 0);
}

TEST_F(Transfer, RoundTripIsExactOnOddSizes) {
  auto q = CopyQueue::Create(device());
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  for (int64_t n : OddSizes()) {
    const std::vector<float> want = Pattern(n, static_cast<float>(n));
    auto up = AllocatePinned(device(), static_cast<size_t>(n) * 4);
    auto down = AllocatePinned(device(), static_cast<size_t>(n) * 4);
    auto dev = AllocateTensor(device(), DType::kF32, {n});
    ASSERT_TRUE(up.ok() && down.ok() && dev.ok());
    if (n > 0) std::memcpy(up->data(), want.data(), static_cast<size_t>(n) * 4);
    const TensorView hu{up->data(), DType::kF32, {n}, Device::kCPU};
    const TensorView hd{down->data(), DType::kF32, {n}, Device::kCPU};
    ASSERT_TRUE((*q)->Copy(hu, dev->view()).ok());
    auto f = (*q)->Copy(dev->view(), hd);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_OK((*q)->Wait(*f));
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(down->as<float>()[i], want[static_cast<size_t>(i)]) << "n " << n << ", index " << i;
    }
  }
}

TEST_F(Transfer, OldFencesStayWaitableAfterTheRingWraps) {
  auto q = CopyQueue::Create(device());
  ASSERT_TRUE(q.ok());
  auto src = AllocatePinned(device(), 64 * 4);
  auto dev = AllocateTensor(device(), DType::kF32, {64});
  ASSERT_TRUE(src.ok() && dev.ok());
  std::vector<CopyQueue::Fence> fences;
  for (int i = 0; i < 200; ++i) {
    src->as<float>()[0] = static_cast<float>(i);
    auto f = (*q)->Copy({src->data(), DType::kF32, {64}, Device::kCPU}, dev->view());
    ASSERT_TRUE(f.ok());
    ASSERT_OK((*q)->Wait(*f));  // the source is rewritten next iteration
    fences.push_back(*f);
  }
  EXPECT_EQ(fences.back(), 199u);
  ASSERT_OK((*q)->Wait(fences.front()));
  ASSERT_OK((*q)->WaitAll());
  float first = -1;
  ASSERT_OK(CopyTensor({dev->data(), DType::kF32, {1}, device()}, {&first, DType::kF32, {1}, Device::kCPU}));
  EXPECT_EQ(first, 199.0f);
}

TEST_F(Transfer, MismatchedCopiesAreRefused) {
  auto q = CopyQueue::Create(device());
  ASSERT_TRUE(q.ok());
  std::vector<float> a(4), b(5);
  auto dev = AllocateTensor(device(), DType::kF32, {4});
  ASSERT_TRUE(dev.ok());
  auto r = (*q)->Copy({b.data(), DType::kF32, {5}, Device::kCPU}, dev->view());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsInvalidArgument(r.status())) << r.status().ToString();
  auto dt = (*q)->Copy({a.data(), DType::kI32, {4}, Device::kCPU}, dev->view());
  EXPECT_FALSE(dt.ok()) << "dtype mismatch";
}

#if !TESSERA_HAVE_CUDA
TEST(TransferCpuOnlyBuild, CudaMemoryIsAFailedPrecondition) {
  auto t = AllocateTensor(Device::kCUDA, DType::kF32, {4});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(AllocatePinned(Device::kCUDA, 16).ok());
  EXPECT_FALSE(CopyQueue::Create(Device::kCUDA).ok());
}
#endif

}  // namespace
}  // namespace tessera::kernels::testing
