// The timeline recorder (common/timeline.h) on its own: off by default, spans from
// several threads land in one valid trace, the file is complete after every periodic
// flush (what a crashed process leaves), and bad use gets a clear error.
#include "common/timeline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/observe/timeline_check.h"
#include "tests/testutil/testutil.h"

namespace tessera::timeline {
namespace {

using testing::LoadTrace;
using testing::Named;

TEST(Timeline, OffRecordsNothing) {
  ASSERT_FALSE(Enabled());
  { Span s("step", "step"); }
  Record("x", "y", 1, 2);
  testing::TempDir dir;
  Options o;
  o.path = dir.path() + "/t.json";
  o.pid = 7;
  o.process_name = "worker 0 (rank 7)";
  ASSERT_OK(Start(o));
  Stop();
  // Only the process metadata: the spans before Start are not in the file.
  testing::Trace t = LoadTrace(o.path);
  EXPECT_TRUE(t.spans.empty());
  EXPECT_EQ(t.process_names[7], "worker 0 (rank 7)");
}

TEST(Timeline, ThreadsNestAndAreNamed) {
  testing::TempDir dir;
  Options o;
  o.path = dir.path() + "/t.json";
  o.pid = 3;
  o.process_name = "server 1 (rank 3)";
  ASSERT_OK(Start(o));
  auto work = [](const char* thread_name, int steps) {
    SetThreadName(thread_name);
    for (int i = 0; i < steps; ++i) {
      Span step("step", "step", "step", i);
      { Span a("forward", "compute"); std::this_thread::sleep_for(std::chrono::microseconds(200)); }
      { Span b("backward", "compute", "bytes", 10 * i); std::this_thread::sleep_for(std::chrono::microseconds(200)); }
    }
  };
  std::thread t1(work, "one", 20), t2(work, "two", 30);
  work("main", 5);
  t1.join();
  t2.join();  // exited threads' events are still written
  Stop();
  EXPECT_FALSE(Enabled());
  testing::Trace t = LoadTrace(o.path);
  EXPECT_EQ(Named(t, "step").size(), 55u);
  EXPECT_EQ(Named(t, "forward").size(), 55u);
  EXPECT_EQ(Named(t, "backward").size(), 55u);
  testing::ExpectProperNesting(t);
  std::set<std::string> names;
  for (const auto& [k, v] : t.thread_names) {
    EXPECT_EQ(k.first, 3);
    names.insert(v);
  }
  EXPECT_EQ(names, (std::set<std::string>{"one", "two", "main"}));
  for (const auto* f : Named(t, "forward")) {
    int parents = 0;
    for (const auto* s : Named(t, "step")) parents += s->Contains(*f);
    EXPECT_EQ(parents, 1) << "every forward lies in exactly one step of its thread";
    EXPECT_GE(f->dur, 150);
  }
  const auto steps = Named(t, "step");
  EXPECT_TRUE(std::any_of(steps.begin(), steps.end(), [](const auto* s) { return s->args.value("step", -1) == 29; }));
}

TEST(Timeline, FileIsValidBetweenFlushes) {
  testing::TempDir dir;
  Options o;
  o.path = dir.path() + "/t.json";
  o.pid = 1;
  o.process_name = "p";
  o.flush_interval_s = 0.05;
  ASSERT_OK(Start(o));
  for (int i = 0; i < 10; ++i) Span s("push", "comm");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  // Still recording: what a process killed now would leave behind.
  testing::Trace mid = LoadTrace(o.path);
  EXPECT_EQ(Named(mid, "push").size(), 10u);
  for (int i = 0; i < 5; ++i) Span s("pull", "comm");
  Stop();
  testing::Trace end = LoadTrace(o.path);
  EXPECT_EQ(Named(end, "push").size(), 10u);
  EXPECT_EQ(Named(end, "pull").size(), 5u);
}

TEST(Timeline, BadUseIsRefused) {
  Options o;
  o.path = "/nonexistent-dir/t.json";
  Status st = Start(o);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("/nonexistent-dir/t.json"), std::string::npos) << st.ToString();
  EXPECT_FALSE(Enabled());
  testing::TempDir dir;
  o.path = dir.path() + "/t.json";
  ASSERT_OK(Start(o));
  Options again = o;
  again.path = dir.path() + "/u.json";
  EXPECT_EQ(Start(again).code(), StatusCode::kFailedPrecondition);
  Stop();
  Stop();  // twice is fine
  EXPECT_FALSE(std::filesystem::exists(again.path));
}

}  // namespace
}  // namespace tessera::timeline
