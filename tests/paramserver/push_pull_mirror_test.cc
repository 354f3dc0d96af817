// A dense push+pull's reply written while its update is applied (the `mirror` of
// kernels::ApplyUpdate, Aggregator::PushDense, ParamServerCore::Push): bitwise what the
// update followed by a separate read gives, for every optimizer, clipped or not, at sizes
// around the update's block; and used only where the update happens at once (asp, ssp),
// never under bsp, whose update may wait for the other workers.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/optimizer_step.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<OptimizerConfig> Configs() {
  std::vector<OptimizerConfig> out;
  for (OptimizerKind k : {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kAdaGrad,
                          OptimizerKind::kAdam, OptimizerKind::kAdamW}) {
    OptimizerConfig c;
    c.kind = k;
    c.lr = 0.03f;
    c.momentum = 0.9f;
    c.nesterov = k == OptimizerKind::kMomentum;
    c.weight_decay = 0.01f;
    c.initial_accumulator = 0.1f;
    out.push_back(c);
  }
  return out;
}

// Sizes below, at and around the 8192-element block, and above the OpenMP grain.
constexpr uint64_t kSizes[] = {1, 8191, 8192, 3 * 8192 + 5, 70001};

TEST(PushPullMirror, KernelMirrorIsBitwiseTheUnfusedUpdate) {
  for (OptimizerConfig cfg : Configs()) {
    for (bool clip : {false, true}) {
      cfg.clip_norm = clip ? 0.5f : 0.0f;
      for (uint64_t n : kSizes) {
        SCOPED_TRACE("optimizer " + std::to_string(static_cast<int>(cfg.kind)) + (clip ? " clipped" : "") +
                     ", " + std::to_string(n) + " elements");
        const uint64_t ns = static_cast<uint64_t>(NumOptimizerSlots(cfg.kind)) * n;
        std::vector<float> p1(n), s1(ns), g(n);
        for (uint64_t i = 0; i < n; ++i) {
          p1[i] = Grad(3, 1, i);
          g[i] = Grad(1, 2, i);
        }
        ASSERT_OK(kernels::InitSlots(cfg, s1, n));
        std::vector<float> p2 = p1, s2 = s1, g1 = g, g2 = g, mirror(n, -7.0f);
        for (int64_t update = 1; update <= 3; ++update) {
          g1 = g;
          g2 = g;
          ASSERT_OK(kernels::ApplyUpdate(cfg, update, p1, s1, g1));
          ASSERT_OK(kernels::ApplyUpdate(cfg, update, p2, s2, g2, mirror));
          ASSERT_TRUE(SameBits(p1, p2)) << "update " << update;
          ASSERT_TRUE(SameBits(s1, s2)) << "update " << update;
          ASSERT_TRUE(SameBits(mirror, p2)) << "update " << update;
          if (!clip) {
            std::vector<float> p3 = p1, s3 = s1, m3(n);
            ASSERT_OK(kernels::ApplyUpdate(cfg, update + 1, p1, s1, g1 = g));
            ASSERT_OK(kernels::ApplyUpdateReadOnly(cfg, update + 1, p3, s3, g, m3));
            ASSERT_TRUE(SameBits(p1, p3) && SameBits(s1, s3) && SameBits(m3, p3)) << "read-only, update " << update;
            p2 = p1;
            s2 = s1;
          }
        }
      }
    }
  }
}

TEST(PushPullMirror, KernelRefusesAMirrorOfTheWrongSize) {
  OptimizerConfig cfg;
  std::vector<float> p(16), g(16), mirror(15);
  const Status st = kernels::ApplyUpdate(cfg, 1, p, {}, g, mirror);
  EXPECT_EQ(st.code(), StatusCode::kInternal) << st.ToString();
}

// One server, one dense parameter of several chunks; each step a push with a mirror and
// a pull of the same range.
void CheckCore(SyncPolicy sync, bool expect_mirrored) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kAdam;
  cfg.lr = 0.01f;
  // 100 f32 in chunks of 8 (32 bytes): a request of 13 chunks, the last one short.
  Cluster c(1, 1, {DenseSpec("w", {100}, cfg)}, sync);
  for (int64_t step = 0; step < 3; ++step) {
    ParamRequest r = c.Request(0, 0, step);
    r.begin = 0;
    r.end = 100;
    std::vector<float> grad(100), mirror(100, -7.0f), pulled(100);
    for (uint64_t i = 0; i < 100; ++i) grad[i] = Grad(0, step, i);
    bool mirrored = !expect_mirrored;
    ASSERT_OK(c.core(0).Push(r, grad, mirror, &mirrored));
    EXPECT_EQ(mirrored, expect_mirrored) << "step " << step;
    auto ready = c.core(0).PullReady(r);
    ASSERT_OK(ready.status());
    ASSERT_TRUE(*ready);
    int64_t applied = -2;
    ASSERT_OK(c.core(0).Pull(r, pulled, &applied));
    EXPECT_EQ(applied, step);
    if (expect_mirrored) {
      EXPECT_TRUE(SameBits(mirror, pulled)) << "step " << step;
      std::vector<float> completed = mirror;
      int64_t applied2 = -2;
      ASSERT_OK(c.core(0).Pull(r, completed, &applied2, /*mirrored=*/true));
      EXPECT_TRUE(SameBits(completed, mirror)) << "a mirrored pull does not touch the values";
      EXPECT_EQ(applied2, step);
    } else {
      EXPECT_TRUE(SameBits(mirror, std::vector<float>(100, -7.0f))) << "bsp leaves the mirror alone";
    }
  }
}

TEST(PushPullMirror, AspAndSspWriteTheReplyWhileApplying) {
  CheckCore({SyncMode::kAsp, 0}, true);
  CheckCore({SyncMode::kSsp, 2}, true);
}

TEST(PushPullMirror, BspNeverMirrors) { CheckCore({SyncMode::kBsp, 0}, false); }

TEST(PushPullMirror, ARefusedPushLeavesTheMirrorAlone) {
  Cluster c(1, 1, {DenseSpec("w", {16})}, {SyncMode::kAsp, 0});
  ParamRequest r = c.Request(0, 0, 0);
  r.begin = 0;
  r.end = 16;
  std::vector<float> grad(16, 1.0f), mirror(16, -7.0f);
  bool mirrored = true;
  ASSERT_OK(c.core(0).Push(r, grad, mirror, &mirrored));
  mirror.assign(16, -7.0f);
  // The same step again: a duplicate, refused before anything is applied.
  EXPECT_EQ(c.core(0).Push(r, grad, mirror, &mirrored).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(mirrored);
  EXPECT_TRUE(SameBits(mirror, std::vector<float>(16, -7.0f)));
}

// The gate of a streamed gradient (wire/shm_stream.h): asked for each block in order
// before the block is read, with everything before it already updated and mirrored; an
// error stops the update at that block.
TEST(PushPullMirror, GateIsAskedBlockByBlockAndStopsTheUpdate) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kSgd;
  cfg.lr = 0.5f;
  const uint64_t n = 3 * 8192 + 5;
  std::vector<float> p(n, 1.0f), g(n, 1.0f), mirror(n, -7.0f), slots;
  std::vector<std::pair<uint64_t, uint64_t>> asked;
  kernels::GradientGate gate = [&](uint64_t begin, uint64_t end) -> Status {
    for (uint64_t i = 0; i < begin; ++i) {
      if (mirror[i] != 0.5f) return Status::Internal("element " + std::to_string(i) + " not mirrored yet");
    }
    asked.emplace_back(begin, end);
    return asked.size() == 3 ? Status::TimedOut("the sender stalled") : Status::OK();
  };
  Status st = kernels::ApplyUpdateReadOnly(cfg, 1, p, slots, g, mirror, &gate);
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_EQ(asked[0], std::make_pair(uint64_t{0}, uint64_t{8192}));
  EXPECT_EQ(asked[1], std::make_pair(uint64_t{8192}, uint64_t{16384}));
  EXPECT_EQ(asked[2], std::make_pair(uint64_t{16384}, uint64_t{24576}));
  EXPECT_EQ(p[16383], 0.5f) << "blocks before the failure are updated";
  EXPECT_EQ(p[16384], 1.0f) << "the failed block is not";
  EXPECT_EQ(mirror[16384], -7.0f);
}

}  // namespace
}  // namespace tessera::paramserver::testing
