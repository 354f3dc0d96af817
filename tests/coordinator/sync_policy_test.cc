#include "common/cluster/sync_policy.h"

#include <gtest/gtest.h>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

constexpr int64_t kWindow = 8;  // max_pending_steps used by most tests

TEST(ParseSyncPolicy, AcceptsTheThreeForms) {
  auto bsp = ParseSyncPolicy("bsp");
  ASSERT_OK(bsp.status());
  EXPECT_EQ(*bsp, (SyncPolicy{SyncMode::kBsp, 0}));
  auto asp = ParseSyncPolicy("asp");
  ASSERT_OK(asp.status());
  EXPECT_EQ(*asp, (SyncPolicy{SyncMode::kAsp, 0}));
  auto ssp = ParseSyncPolicy("ssp:3");
  ASSERT_OK(ssp.status());
  EXPECT_EQ(*ssp, (SyncPolicy{SyncMode::kSsp, 3}));
  auto ssp0 = ParseSyncPolicy("ssp:0");
  ASSERT_OK(ssp0.status());
  EXPECT_EQ(*ssp0, (SyncPolicy{SyncMode::kSsp, 0}));
  auto max = ParseSyncPolicy("ssp:" + std::to_string(kMaxStaleness));
  ASSERT_OK(max.status());
  EXPECT_EQ(max->staleness, kMaxStaleness);
}

TEST(ParseSyncPolicy, ToStringRoundTrips) {
  for (const char* s : {"bsp", "asp", "ssp:0", "ssp:17"}) {
    auto p = ParseSyncPolicy(s);
    ASSERT_OK(p.status());
    EXPECT_EQ(p->ToString(), s);
  }
}

TEST(ParseSyncPolicy, RejectsBadStringsNamingThem) {
  const char* bad[] = {"",
                       "BSP",
                       "bsp ",
                       "ssp",
                       "ssp:",
                       "ssp:-1",
                       "ssp:+1",
                       "ssp:1.5",
                       "ssp: 2",
                       "ssp:2x",
                       "ssp:99999999999999999999",
                       "ssp:1073741825",
                       "allreduce",
                       "sspp:1"};
  for (const char* s : bad) {
    auto p = ParseSyncPolicy(s);
    ASSERT_FALSE(p.ok()) << "'" << s << "' was accepted";
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << s;
    EXPECT_NE(p.status().message().find("'" + std::string(s) + "'"), std::string::npos)
        << p.status().ToString();
  }
}

TEST(ParseGradReduce, AcceptsMeanAndSumOnly) {
  auto mean = ParseGradReduce("mean");
  ASSERT_OK(mean.status());
  EXPECT_EQ(*mean, GradReduce::kMean);
  auto sum = ParseGradReduce("sum");
  ASSERT_OK(sum.status());
  EXPECT_EQ(*sum, GradReduce::kSum);
  EXPECT_EQ(GradReduceName(GradReduce::kMean), "mean");
  EXPECT_EQ(GradReduceName(GradReduce::kSum), "sum");
  auto bad = ParseGradReduce("avg");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'avg'"), std::string::npos);
}

// ---- StepGate: bsp ----------------------------------------------------------------------

TEST(StepGateBsp, AppliesOnlyWhenAllWorkersPushed) {
  StepGate g({SyncMode::kBsp, 0}, 3);
  EXPECT_EQ(g.applied_step(), -1);
  EXPECT_FALSE(g.CanApply(0));
  ASSERT_OK(g.RecordPush(0, 0, kWindow));
  ASSERT_OK(g.RecordPush(2, 0, kWindow));
  EXPECT_FALSE(g.CanApply(0));
  EXPECT_EQ(g.MarkApplied(0).code(), StatusCode::kFailedPrecondition);
  ASSERT_OK(g.RecordPush(1, 0, kWindow));
  EXPECT_TRUE(g.CanApply(0));
  EXPECT_FALSE(g.CanApply(1));
  ASSERT_OK(g.MarkApplied(0));
  EXPECT_EQ(g.applied_step(), 0);
  EXPECT_FALSE(g.CanApply(0)) << "a step applies once";
}

TEST(StepGateBsp, PullForStepWaitsForPreviousStepsUpdate) {
  StepGate g({SyncMode::kBsp, 0}, 2);
  EXPECT_TRUE(g.CanServePull(0)) << "step 0 needs no update";
  EXPECT_FALSE(g.CanServePull(1));
  EXPECT_TRUE(g.CanServePull(kNoStep));
  ASSERT_OK(g.RecordPush(0, 0, kWindow));
  ASSERT_OK(g.RecordPush(1, 0, kWindow));
  EXPECT_FALSE(g.CanServePull(1)) << "pushed but not applied yet";
  ASSERT_OK(g.MarkApplied(0));
  EXPECT_TRUE(g.CanServePull(1));
  EXPECT_FALSE(g.CanServePull(2));
  EXPECT_TRUE(g.CanServePull(0)) << "an old step is served with newer values";
}

TEST(StepGateBsp, RefusesDuplicateGapAndBadWorker) {
  StepGate g({SyncMode::kBsp, 0}, 2);
  ASSERT_OK(g.RecordPush(0, 0, kWindow));
  EXPECT_EQ(g.RecordPush(0, 0, kWindow).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(g.RecordPush(0, 2, kWindow).code(), StatusCode::kFailedPrecondition) << "gap";
  EXPECT_EQ(g.RecordPush(2, 0, kWindow).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.RecordPush(-1, 0, kWindow).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.RecordPush(1, -1, kWindow).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.pushed_step(0), 0) << "a refused push changes nothing";
  EXPECT_EQ(g.pushed_step(1), -1);
}

TEST(StepGateBsp, AcceptsPushesAheadWithinTheWindowAndAppliesInOrder) {
  StepGate g({SyncMode::kBsp, 0}, 2);
  ASSERT_OK(g.RecordPush(0, 0, 2));
  ASSERT_OK(g.RecordPush(0, 1, 2));
  EXPECT_EQ(g.RecordPush(0, 2, 2).code(), StatusCode::kResourceExhausted);
  ASSERT_OK(g.RecordPush(1, 0, 2));
  ASSERT_OK(g.RecordPush(1, 1, 2));
  EXPECT_FALSE(g.CanApply(1)) << "step 0 first";
  ASSERT_TRUE(g.CanApply(0));
  ASSERT_OK(g.MarkApplied(0));
  ASSERT_TRUE(g.CanApply(1));
  ASSERT_OK(g.MarkApplied(1));
  EXPECT_EQ(g.applied_step(), 1);
}

TEST(StepGateBsp, ResumedGateStartsAtFirstStep) {
  StepGate g({SyncMode::kBsp, 0}, 1, /*first_step=*/10);
  EXPECT_EQ(g.applied_step(), 9);
  EXPECT_TRUE(g.CanServePull(10));
  EXPECT_FALSE(g.CanServePull(11));
  EXPECT_EQ(g.RecordPush(0, 9, kWindow).code(), StatusCode::kFailedPrecondition);
  ASSERT_OK(g.RecordPush(0, 10, kWindow));
  ASSERT_OK(g.MarkApplied(10));
  EXPECT_TRUE(g.CanServePull(11));
}

// ---- StepGate: ssp ----------------------------------------------------------------------

TEST(StepGateSsp, PullerMayRunAtMostKStepsAheadOfTheSlowest) {
  StepGate g({SyncMode::kSsp, 2}, 2);
  // Nobody pushed: steps 0..2 are within K=2 of the slowest (at step 0).
  EXPECT_TRUE(g.CanServePull(0));
  EXPECT_TRUE(g.CanServePull(2));
  EXPECT_FALSE(g.CanServePull(3));
  // Worker 0 races ahead; worker 1 (slowest) pushed nothing: worker 0 blocks at step 3.
  for (int64_t s = 0; s < 3; ++s) ASSERT_OK(g.RecordPush(0, s, kWindow));
  EXPECT_FALSE(g.CanServePull(3));
  ASSERT_OK(g.RecordPush(1, 0, kWindow));  // slowest now at step 1
  EXPECT_TRUE(g.CanServePull(3));
  EXPECT_FALSE(g.CanServePull(4));
  EXPECT_EQ(g.applied_step(), 0) << "min pushed";
}

TEST(StepGateSsp, ZeroStalenessGatesExactlyLikeBsp) {
  StepGate ssp({SyncMode::kSsp, 0}, 3);
  StepGate bsp({SyncMode::kBsp, 0}, 3);
  // Same push sequence; bsp applies as soon as it can (what a server does).
  const int order[][2] = {{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {2, 2}, {0, 2}};
  for (const auto& [w, s] : order) {
    ASSERT_OK(ssp.RecordPush(w, s, kWindow));
    ASSERT_OK(bsp.RecordPush(w, s, kWindow));
    while (bsp.CanApply(bsp.applied_step() + 1)) ASSERT_OK(bsp.MarkApplied(bsp.applied_step() + 1));
    for (int64_t pull = -1; pull <= 4; ++pull) {
      EXPECT_EQ(ssp.CanServePull(pull), bsp.CanServePull(pull))
          << "after push (" << w << ", " << s << "), pull for step " << pull;
    }
    EXPECT_EQ(ssp.applied_step(), bsp.applied_step());
  }
}

TEST(StepGateSsp, AllowsGapsButNotDuplicates) {
  StepGate g({SyncMode::kSsp, 1}, 1);
  ASSERT_OK(g.RecordPush(0, 0, kWindow));
  ASSERT_OK(g.RecordPush(0, 3, kWindow));  // skipping steps is allowed
  EXPECT_EQ(g.RecordPush(0, 3, kWindow).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(g.RecordPush(0, 2, kWindow).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(g.CanApply(3));
  ASSERT_OK(g.MarkApplied(3));  // a no-op outside bsp
  EXPECT_EQ(g.applied_step(), 3);
}

// ---- StepGate: asp ----------------------------------------------------------------------

TEST(StepGateAsp, NeverGatesPullsAndAppliesOnArrival) {
  StepGate g({SyncMode::kAsp, 0}, 2);
  EXPECT_TRUE(g.CanServePull(1000));
  ASSERT_OK(g.RecordPush(1, 5, kWindow));
  EXPECT_TRUE(g.CanApply(5));
  EXPECT_EQ(g.applied_step(), -1) << "worker 0 has pushed nothing";
  ASSERT_OK(g.RecordPush(0, 100, 1));  // no window outside bsp
  EXPECT_EQ(g.applied_step(), 5);
  EXPECT_EQ(g.RecordPush(1, 5, kWindow).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tessera
