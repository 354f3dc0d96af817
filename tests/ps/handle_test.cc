// Handle's deferred parts (worker/handle.h): a part completed by the thread that waits,
// as a same-host streamed reply's copy-out is. Real threads, no mocks.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/testutil/testutil.h"
#include "worker/handle.h"

namespace tessera::worker {
namespace {

TEST(HandleDefer, WaitRunsTheDeferredPartOnTheWaitingThread) {
  Handle h = Handle::Pending(2);
  std::atomic<std::thread::id> ran_on{};
  std::thread reactor([h, &ran_on] {
    h.CompletePart(Status::OK());
    h.DeferPart([&ran_on] {
      ran_on = std::this_thread::get_id();
      return Status::OK();
    });
  });
  EXPECT_OK(h.Wait(std::chrono::seconds(10)));
  reactor.join();
  EXPECT_EQ(ran_on.load(), std::this_thread::get_id());
  EXPECT_TRUE(h.IsDone());
}

TEST(HandleDefer, FailureOfADeferredPartIsTheHandlesStatusAndRunsOnce) {
  Handle h = Handle::Pending(1);
  int runs = 0;
  h.DeferPart([&runs] {
    ++runs;
    return Status::Aborted("the server abandoned the reply");
  });
  Status st = h.Wait(std::chrono::seconds(10));
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_EQ(h.Wait(std::chrono::seconds(10)).code(), StatusCode::kAborted);
  EXPECT_EQ(runs, 1);
}

TEST(HandleDefer, IsDoneRunsItTooAndAWaiterThatTimesOutLeavesItPending) {
  Handle h = Handle::Pending(2);
  EXPECT_EQ(h.Wait(std::chrono::milliseconds(20)).code(), StatusCode::kTimedOut);
  bool ran = false;
  h.DeferPart([&ran] {
    ran = true;
    return Status::OK();
  });
  EXPECT_FALSE(h.IsDone()) << "one part is still outstanding";
  EXPECT_TRUE(ran) << "IsDone ran the deferred part";
  h.CompletePart(Status::OK());
  EXPECT_TRUE(h.IsDone());
}

}  // namespace
}  // namespace tessera::worker
