// Casts vs an independent reference. Bound: exact. Widening must equal the value the 16
// bits denote (checked for all 65536 patterns); narrowing must equal the correctly
// rounded (nearest, ties to even) 16-bit value, found here by searching the sorted list
// of all finite 16-bit values, so |err| <= 0.5 ulp (2^-11 relative for f16, 2^-8 for
// bf16, in the normal range).
#include <algorithm>
#include <cmath>
#include <map>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

// Value of a 16-bit pattern computed from the definition of the format.
double F16Value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int e = (h >> 10) & 0x1f;
  const int m = h & 0x3ff;
  if (e == 0x1f) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, -24);
  return sign * std::ldexp(1024 + m, e - 25);
}
double BF16Value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int e = (h >> 7) & 0xff;
  const int m = h & 0x7f;
  if (e == 0xff) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, -133);
  return sign * std::ldexp(128 + m, e - 134);
}

// Correct rounding by search: nearest finite value of the format, ties to the even
// pattern; beyond max + half an ulp (the would-be next value), +-Inf.
struct Rounder {
  explicit Rounder(bool f16) : f16(f16) {
    for (uint32_t h = 0; h < 0x8000; ++h) {  // non-negative patterns
      const double v = f16 ? F16Value(h) : BF16Value(h);
      if (std::isfinite(v)) values.emplace_back(v, static_cast<uint16_t>(h));
    }
    std::sort(values.begin(), values.end());
    // The next value past max in the format's spacing; ties at the midpoint go to it (its
    // mantissa is even), so it plays the role of Inf.
    const double max = values.back().first;
    const double ulp = f16 ? std::ldexp(1.0, 5) : std::ldexp(1.0, 120);
    overflow = max + ulp;
  }
  uint16_t Round(float f) const {
    if (std::isnan(f)) return 0;  // callers check NaN separately
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    const double a = std::fabs(static_cast<double>(f));
    const uint16_t inf = f16 ? 0x7c00 : 0x7f80;
    if (a >= overflow) return sign | inf;
    auto hi = std::lower_bound(values.begin(), values.end(), std::make_pair(a, uint16_t{0}));
    if (hi == values.end()) {  // between max and overflow
      const double max = values.back().first;
      if (a - max < overflow - a) return sign | values.back().second;
      if (a - max > overflow - a) return sign | inf;
      return sign | inf;  // tie: max has an odd mantissa
    }
    if (hi->first == a || hi == values.begin()) return sign | hi->second;
    auto lo = hi - 1;
    const double dl = a - lo->first, dh = hi->first - a;
    if (dl < dh) return sign | lo->second;
    if (dh < dl) return sign | hi->second;
    return sign | ((lo->second & 1) ? hi->second : lo->second);
  }
  bool f16;
  double overflow;
  std::vector<std::pair<double, uint16_t>> values;
};

// Inputs: random over many binades, every tie and near-tie around a set of 16-bit values,
// and the specials.
std::vector<float> NarrowingInputs(bool f16) {
  std::vector<float> in;
  std::mt19937_64 rng(f16 ? 21 : 22);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 20000; ++i) {
    float f;
    uint32_t u = bits(rng);
    std::memcpy(&f, &u, 4);
    if (!std::isnan(f)) in.push_back(f);
  }
  for (int e = -30; e <= 17; ++e) {
    for (float m : {1.0f, 1.0009765625f, 1.5f, 1.99951171875f}) in.push_back(std::ldexp(m, e));
  }
  const int shift = f16 ? 13 : 16;
  for (uint32_t h = 0; h < 0x7c00u; h += 37) {  // midpoints and their neighbours
    const float v = static_cast<float>(f16 ? F16Value(static_cast<uint16_t>(h))
                                           : BF16Value(static_cast<uint16_t>(h)));
    uint32_t u;
    std::memcpy(&u, &v, 4);
    for (uint32_t d : {(1u << (shift - 1)) - 1, 1u << (shift - 1), (1u << (shift - 1)) + 1}) {
      uint32_t w = u + d;
      float f;
      std::memcpy(&f, &w, 4);
      if (std::isfinite(f)) in.push_back(f);
    }
  }
  for (float f : {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 65536.0f, -70000.0f, 1e-8f,
                  5.96e-8f, 2.98e-8f, 2.9802322e-8f, 6.1e-5f, 3.4e38f, INFINITY, -INFINITY,
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min()}) {
    in.push_back(f);
  }
  return in;
}

class KernelsCast : public KernelTest {
 protected:
  void CheckNarrowing(DType t) {
    const bool f16 = t == DType::kF16;
    const Rounder rounder(f16);
    std::vector<float> in = NarrowingInputs(f16);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    in.push_back(nan);
    in.push_back(-nan);
    const int64_t n = static_cast<int64_t>(in.size());
    DeviceTensor src = F32({n}, in);
    DeviceTensor dst(t, {n});
    dst.Poison();
    ASSERT_OK(Cast(src.view(), dst.view()));
    const auto got = dst.Download<uint16_t>();
    int failures = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(in[i])) {
        const double v = f16 ? F16Value(got[i]) : BF16Value(got[i]);
        EXPECT_TRUE(std::isnan(v)) << "NaN lost at " << i;
        EXPECT_EQ(got[i] >> 15, std::signbit(in[i]) ? 1 : 0) << "NaN sign at " << i;
        continue;
      }
      const uint16_t want = rounder.Round(in[i]);
      if (got[i] != want && failures++ < 10) {
        ADD_FAILURE() << DTypeName(t) << " rounding of " << in[i] << " (index " << i
                      << "): got 0x" << std::hex << got[i] << ", want 0x" << want;
      }
    }
  }

  void CheckWidening(DType t) {
    const bool f16 = t == DType::kF16;
    std::vector<uint16_t> all(65536);
    for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
    DeviceTensor src = DeviceTensor::From(t, {65536}, all);
    DeviceTensor dst = PoisonedF32({65536});
    ASSERT_OK(Cast(src.view(), dst.view()));
    const auto got = dst.Download<float>();
    int failures = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
      const double want = f16 ? F16Value(static_cast<uint16_t>(h)) : BF16Value(static_cast<uint16_t>(h));
      const bool ok = std::isnan(want) ? std::isnan(got[h]) && std::signbit(got[h]) == bool(h >> 15)
                                       : static_cast<double>(got[h]) == want &&
                                             std::signbit(got[h]) == std::signbit(want);
      if (!ok && failures++ < 10) {
        ADD_FAILURE() << DTypeName(t) << " widening of 0x" << std::hex << h << ": got "
                      << got[h] << ", want " << want;
      }
    }
  }
};

TEST_F(KernelsCast, F32ToF16RoundsToNearestEven) { CheckNarrowing(DType::kF16); }
TEST_F(KernelsCast, F32ToBF16RoundsToNearestEven) { CheckNarrowing(DType::kBF16); }
TEST_F(KernelsCast, F16ToF32IsExactForEveryPattern) { CheckWidening(DType::kF16); }
TEST_F(KernelsCast, BF16ToF32IsExactForEveryPattern) { CheckWidening(DType::kBF16); }

TEST_F(KernelsCast, F32ToF32Copies) {
  auto x = RandomFloats(33, 5);
  DeviceTensor a = F32({33}, x), b = PoisonedF32({3, 11});
  ASSERT_OK(Cast(a.view(), b.view()));
  ExpectAllClose(b.Download<float>(), ToDouble(x), 0, 0, "f32 copy");
}

TEST_F(KernelsCast, RoundTripThroughHalfIsWithinHalfAnUlp) {
  for (int64_t n : OddSizes()) {
    auto x = RandomFloats(n, 6, -100, 100);
    for (DType t : {DType::kF16, DType::kBF16}) {
      DeviceTensor a = F32({n}, x), h(t, {n}), back = PoisonedF32({n});
      ASSERT_OK(Cast(a.view(), h.view()));
      ASSERT_OK(Cast(h.view(), back.view()));
      // 0.5 ulp relative bound, plus half the smallest subnormal spacing for tiny values.
      const double rel = t == DType::kF16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
      const double abs = t == DType::kF16 ? std::ldexp(1.0, -25) : 0;
      ExpectAllClose(back.Download<float>(), ToDouble(x), rel, abs,
                     "round trip " + std::string(DTypeName(t)) + " n=" + std::to_string(n));
    }
  }
}

TEST_F(KernelsCast, RejectsUnsupportedPairsAndSizeMismatch) {
  DeviceTensor f(DType::kF32, {4}), h(DType::kF16, {4}), b(DType::kBF16, {4}), f5(DType::kF32, {5});
  DeviceTensor i(DType::kI32, {4});
  EXPECT_TRUE(IsInvalidArgument(Cast(h.view(), b.view())));
  EXPECT_TRUE(IsInvalidArgument(Cast(h.view(), h.view())));
  EXPECT_TRUE(IsInvalidArgument(Cast(f.view(), i.view())));
  EXPECT_TRUE(IsInvalidArgument(Cast(f5.view(), h.view())));
}

}  // namespace
}  // namespace tessera::kernels::testing
