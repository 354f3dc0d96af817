#include "common/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/hash.h"

namespace tessera {
namespace {

TEST(DType, SizesAndNamesRoundTrip) {
  const DType all[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64,
                       DType::kI32, DType::kI64, DType::kU64};
  const size_t sizes[] = {4, 2, 2, 8, 4, 8, 8};
  for (size_t i = 0; i < std::size(all); ++i) {
    EXPECT_EQ(DTypeSize(all[i]), sizes[i]) << "dtype " << i;
    auto parsed = ParseDType(DTypeName(all[i]));
    ASSERT_TRUE(parsed.has_value()) << DTypeName(all[i]);
    EXPECT_EQ(*parsed, all[i]);
  }
  EXPECT_FALSE(IsValidDType(7));
  EXPECT_EQ(DTypeSize(static_cast<DType>(200)), 0u);
  EXPECT_FALSE(ParseDType("f31").has_value());
}

TEST(Buffer, AllocateIsAlignedAndSized) {
  Buffer b = Buffer::Allocate(1000);
  EXPECT_EQ(b.size(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  Buffer empty = Buffer::Allocate(0);
  EXPECT_TRUE(empty.empty());
}

TEST(Buffer, WrapRunsReleaseOnceWhenLastReferenceDies) {
  int released = 0;
  static char storage[16];
  {
    Buffer a = Buffer::Wrap(storage, sizeof(storage), Device::kCPU, [&] { ++released; });
    Buffer b = a;
    EXPECT_EQ(a.use_count(), 2);
    a = Buffer();
    EXPECT_EQ(released, 0);
  }
  EXPECT_EQ(released, 1);
}

TEST(Buffer, RetainedTokenKeepsTheBytesUntilReleased) {
  int released = 0;
  static char storage[16];
  void* token = nullptr;
  {
    Buffer a = Buffer::Wrap(storage, sizeof(storage), Device::kCPU, [&] { ++released; });
    token = a.Retain();  // as ZeroMQ's free hint holds a sent frame
    EXPECT_EQ(a.use_count(), 2);
  }
  EXPECT_EQ(released, 0) << "the token is a reference";
  Buffer::ReleaseRetained(token);
  EXPECT_EQ(released, 1);
  Buffer::ReleaseRetained(Buffer().Retain());  // an empty handle's token is nothing to drop
}

// An Owner placed by its maker (wire/alloc.cc's frame blocks): destroy runs once, after
// copies, moves and a self-assignment.
TEST(Buffer, AdoptedOwnerIsDestroyedOnceByTheLastHandle) {
  struct Counted : Buffer::Owner {
    explicit Counted(int* gone) : Owner(bytes, sizeof(bytes), Device::kCPU, &Destroy), gone(gone) {}
    static void Destroy(Buffer::Owner* o) {
      auto* c = static_cast<Counted*>(o);
      ++*c->gone;
      delete c;
    }
    char bytes[8] = {};
    int* gone;
  };
  int gone = 0;
  {
    Buffer a = Buffer::Adopt(new Counted(&gone));
    EXPECT_EQ(a.size(), 8u);
    Buffer b = a;
    Buffer& self = b;
    b = self;
    Buffer c = std::move(a);
    EXPECT_EQ(a.use_count(), 0);
    EXPECT_EQ(c.use_count(), 2);
    a = c;
    c = Buffer();
    b = std::move(a);
    EXPECT_EQ(b.use_count(), 1);
    EXPECT_EQ(gone, 0);
  }
  EXPECT_EQ(gone, 1);
}

TEST(Tensor, ZerosAndFromBuffer) {
  Tensor t = Tensor::Zeros(DType::kF32, {3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 60u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.as<float>()[i], 0.0f) << "index " << i;
  EXPECT_FALSE(Tensor::FromBuffer(Buffer::Allocate(10), DType::kF64, {2}).ok());
  EXPECT_TRUE(Tensor::FromBuffer(Buffer::Allocate(16), DType::kF64, {2}).ok());
  EXPECT_EQ(ShapeToString({2, 3}), "[2, 3]");
  EXPECT_EQ(NumElements({}), 1);
}

TEST(Hash, MixIsDeterministicAndSpreads) {
  EXPECT_EQ(Mix64(42), Mix64(42));
  EXPECT_NE(Mix64(1), Mix64(2));
  int buckets[4] = {0, 0, 0, 0};
  for (uint64_t k = 0; k < 4000; ++k) buckets[Mix64(k) % 4]++;
  for (int b : buckets) EXPECT_NEAR(b, 1000, 150);
  float u = UnitFloat(~0ULL);
  EXPECT_LT(u, 1.0f);
  EXPECT_GE(UnitFloat(0), 0.0f);
}

}  // namespace
}  // namespace tessera
