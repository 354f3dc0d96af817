// Membership::DescribeSilent: a dead node is named with all of its ranks; a single dead
// process is named alone.
#include "coordinator/membership.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

using std::chrono::milliseconds;

class SilentTest : public ::testing::Test {
 protected:
  // Ranks 1-2 servers, 3-5 workers; hosts: 1,3 on tn1 (the coordinator's), 2,4,5 on tn2.
  void SetUp() override {
    const char* hosts[] = {"tn1", "tn2", "tn1", "tn2", "tn2"};
    for (int r = 1; r <= 5; ++r) {
      ASSERT_TRUE(m_.Register(r <= 2 ? MemberRole::kServer : MemberRole::kWorker, r, 2, 3, "rid" + std::to_string(r),
                              hosts[r - 1], r <= 2 ? "tcp://x:1" : "", 100u + static_cast<uint32_t>(r), t0_)
                      .ok());
    }
  }
  Membership m_{2, 3};
  Clock::time_point t0_ = Clock::now();
};

TEST_F(SilentTest, EveryProcessOfANodeSilentNamesTheNodeAndItsRanks) {
  // tn1's processes keep talking; tn2's all stopped at t0.
  for (int r : {1, 3}) m_.Touch("rid" + std::to_string(r), t0_ + milliseconds(2900));
  const auto now = t0_ + milliseconds(3100);
  auto silent = m_.FindSilent(now, milliseconds(3000));
  ASSERT_TRUE(silent.has_value());
  EXPECT_EQ(m_.DescribeSilent(*silent, now, milliseconds(3000), "tn1"),
            "node tn2 is down or unreachable: none of its 3 processes (server 1 (rank 2), worker 1 (rank 4), "
            "worker 2 (rank 5)) sent a heartbeat for 3.0 s");
}

TEST_F(SilentTest, OneDeadProcessOnALiveNodeIsNamedAlone) {
  for (int r : {1, 3, 4, 5}) m_.Touch("rid" + std::to_string(r), t0_ + milliseconds(2900));
  const auto now = t0_ + milliseconds(3100);
  auto silent = m_.FindSilent(now, milliseconds(3000));
  ASSERT_TRUE(silent.has_value());
  EXPECT_EQ(*silent, 2);
  EXPECT_EQ(m_.DescribeSilent(2, now, milliseconds(3000), "tn1"), "server 1 (rank 2) on tn2 sent no heartbeat for 3.0 s");
}

TEST_F(SilentTest, TheCoordinatorsOwnHostIsNeverCalledDown) {
  for (int r : {2, 4, 5}) m_.Touch("rid" + std::to_string(r), t0_ + milliseconds(2900));
  const auto now = t0_ + milliseconds(3100);
  EXPECT_EQ(m_.DescribeSilent(1, now, milliseconds(3000), "tn1"), "server 0 (rank 1) sent no heartbeat for 3.0 s");
}

}  // namespace
}  // namespace tessera
