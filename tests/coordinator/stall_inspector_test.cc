#include "coordinator/stall_inspector.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

using std::chrono::seconds;

std::vector<WorkerProgress> Steps(std::vector<int64_t> steps) {
  std::vector<WorkerProgress> w;
  for (size_t i = 0; i < steps.size(); ++i) {
    int rank = 3 + static_cast<int>(i);
    w.push_back({rank, "worker " + std::to_string(i) + " (rank " + std::to_string(rank) + ")", steps[i]});
  }
  return w;
}

class StallInspectorTest : public ::testing::Test {
 protected:
  StallInspector inspector_{StallOptions{seconds(10), seconds(30)}};
  Clock::time_point t0_ = Clock::now();
};

TEST_F(StallInspectorTest, NothingBeforeTrainingStarts) {
  EXPECT_EQ(inspector_.Check(Steps({1, 5}), t0_ + seconds(100)).kind, StallVerdict::kNone);
}

TEST_F(StallInspectorTest, NamesTheLaggingWorkerOnceThenTimesOut) {
  inspector_.Start(t0_);
  EXPECT_EQ(inspector_.Check(Steps({7, 8, 8}), t0_ + seconds(1)).kind, StallVerdict::kNone);
  EXPECT_EQ(inspector_.Check(Steps({7, 8, 8}), t0_ + seconds(9)).kind, StallVerdict::kNone);
  StallVerdict w = inspector_.Check(Steps({7, 8, 8}), t0_ + seconds(10) + std::chrono::milliseconds(500));
  ASSERT_EQ(w.kind, StallVerdict::kWarn);
  EXPECT_EQ(w.ranks, std::vector<int>{3});
  EXPECT_EQ(w.message, "worker 0 (rank 3) has not finished step 8 for 10.5 s while other workers are at step 8 and wait for it");
  EXPECT_EQ(inspector_.Check(Steps({7, 8, 8}), t0_ + seconds(20)).kind, StallVerdict::kNone) << "warns once per step";
  StallVerdict t = inspector_.Check(Steps({7, 8, 8}), t0_ + seconds(31));
  ASSERT_EQ(t.kind, StallVerdict::kTimeout);
  EXPECT_EQ(t.ranks, std::vector<int>{3});
  EXPECT_NE(t.message.find("for 31.0 s"), std::string::npos) << t.message;
  EXPECT_NE(t.message.find("(--stall_timeout_s=30)"), std::string::npos) << t.message;
}

TEST_F(StallInspectorTest, ProgressRestartsTheClock) {
  inspector_.Start(t0_);
  inspector_.Check(Steps({0, 0}), t0_ + seconds(1));
  ASSERT_EQ(inspector_.Check(Steps({0, 1}), t0_ + seconds(12)).kind, StallVerdict::kWarn);
  EXPECT_EQ(inspector_.Check(Steps({1, 1}), t0_ + seconds(13)).kind, StallVerdict::kNone);
  EXPECT_EQ(inspector_.Check(Steps({1, 2}), t0_ + seconds(22)).kind, StallVerdict::kNone);
  EXPECT_EQ(inspector_.Check(Steps({1, 2}), t0_ + seconds(24)).kind, StallVerdict::kWarn)
      << "a new stalled step warns again";
}

TEST_F(StallInspectorTest, EveryoneWaitingPointsAtTheServers) {
  inspector_.Start(t0_);
  inspector_.Check(Steps({4, 4}), t0_);
  StallVerdict w = inspector_.Check(Steps({4, 4}), t0_ + seconds(10));
  ASSERT_EQ(w.kind, StallVerdict::kWarn);
  EXPECT_EQ(w.ranks, (std::vector<int>{3, 4}));
  EXPECT_NE(w.message.find("no worker has finished step 5"), std::string::npos) << w.message;
  EXPECT_NE(w.message.find("parameter servers"), std::string::npos) << w.message;
}

TEST_F(StallInspectorTest, WithEqualStepsTheSilentWorkerIsNamed) {
  inspector_.Start(t0_);
  auto w = Steps({4, 4, 4});
  inspector_.Check(w, t0_);
  w[1].silent_for = seconds(9);
  StallVerdict v = inspector_.Check(w, t0_ + seconds(10));
  ASSERT_EQ(v.kind, StallVerdict::kWarn);
  EXPECT_EQ(v.ranks, std::vector<int>{4});
  EXPECT_EQ(v.message, "worker 1 (rank 4) (silent for 9.0 s) has not finished step 5 for 10.0 s while the other workers wait for it");
}

TEST_F(StallInspectorTest, FirstStepIsWatchedToo) {
  inspector_.Start(t0_);
  inspector_.Check(Steps({-1, 0}), t0_);
  StallVerdict t = inspector_.Check(Steps({-1, 0}), t0_ + seconds(40));
  ASSERT_EQ(t.kind, StallVerdict::kTimeout);
  EXPECT_NE(t.message.find("has not finished its first step"), std::string::npos) << t.message;
}

TEST(StallInspector, ZeroDisables) {
  StallInspector off(StallOptions{Duration::zero(), Duration::zero()});
  auto t0 = Clock::now();
  off.Start(t0);
  off.Check(Steps({1, 2}), t0);
  EXPECT_EQ(off.Check(Steps({1, 2}), t0 + std::chrono::hours(10)).kind, StallVerdict::kNone);
}

// A checkpoint can hold the workers at a step boundary for a long time (a large model,
// slow storage): that time is not a stall. The clock stops while paused and goes on
// from where it stopped afterwards.
TEST_F(StallInspectorTest, CheckpointTimeIsNotAStall) {
  inspector_.Start(t0_);
  inspector_.Check(Steps({7, 8}), t0_);
  inspector_.SetPaused(true, t0_ + seconds(5));
  EXPECT_EQ(inspector_.Check(Steps({7, 8}), t0_ + seconds(5 + 100)).kind, StallVerdict::kNone) << "paused";
  inspector_.SetPaused(false, t0_ + seconds(5 + 100));
  EXPECT_EQ(inspector_.Check(Steps({7, 8}), t0_ + seconds(5 + 100 + 4)).kind, StallVerdict::kNone)
      << "9 s of stall counted, not 109";
  StallVerdict w = inspector_.Check(Steps({7, 8}), t0_ + seconds(5 + 100 + 5));
  ASSERT_EQ(w.kind, StallVerdict::kWarn);
  EXPECT_NE(w.message.find("for 10.0 s"), std::string::npos) << w.message;
  EXPECT_EQ(inspector_.Check(Steps({7, 8}), t0_ + seconds(5 + 100 + 24)).kind, StallVerdict::kNone);
  EXPECT_EQ(inspector_.Check(Steps({7, 8}), t0_ + seconds(5 + 100 + 25)).kind, StallVerdict::kTimeout)
      << "30 s of stall: 5 before the pause, 25 after";
}

// Progress during a pause restarts the clock; the pause counts only after it.
TEST_F(StallInspectorTest, ProgressDuringACheckpointRestartsTheClock) {
  inspector_.Start(t0_);
  inspector_.Check(Steps({7, 8}), t0_);
  inspector_.SetPaused(true, t0_ + seconds(8));
  inspector_.Check(Steps({8, 8}), t0_ + seconds(20));  // progress while paused
  inspector_.SetPaused(false, t0_ + seconds(50));
  EXPECT_EQ(inspector_.Check(Steps({8, 8}), t0_ + seconds(59)).kind, StallVerdict::kNone);
  StallVerdict w = inspector_.Check(Steps({8, 8}), t0_ + seconds(60));
  ASSERT_EQ(w.kind, StallVerdict::kWarn);
  EXPECT_NE(w.message.find("for 10.0 s"), std::string::npos) << w.message;
}

}  // namespace
}  // namespace tessera
