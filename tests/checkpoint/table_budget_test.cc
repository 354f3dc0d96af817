// Which server count --table_memory_limit is per across resumes (checkpoint/table_budget.h):
// a resume with the same flag text keeps the checkpoint's job-wide budget, through a
// chain of reshards; a changed limit is per server of the new job, with a warning; an
// explicit --table_memory_limit_servers wins.
#include "checkpoint/table_budget.h"

#include <gtest/gtest.h>

namespace tessera::checkpoint {
namespace {

Manifest Written(int servers, std::vector<std::pair<std::string, std::string>> flags) {
  Manifest m;
  m.num_servers = servers;
  m.flags = std::move(flags);
  return m;
}

TEST(TableBudget, AFreshJobIsPerItsOwnServers) {
  const TableBudget b = ResolveTableBudget(TableBudgetFlags{"8K", "", 0}, 2, nullptr);
  EXPECT_EQ(b.servers, 2);
  EXPECT_TRUE(b.kept);
  EXPECT_TRUE(b.message.empty()) << b.message;
  EXPECT_EQ(ResolveTableBudget(TableBudgetFlags{"8K", "", 4}, 2, nullptr).servers, 4);
}

TEST(TableBudget, AResumeWithTheSameFlagsKeepsTheCheckpointsBudgetThroughAChainOfReshards) {
  const TableBudgetFlags now{"8K", "t:4K", 0};
  // Written by 2 servers before manifests recorded the count: the 2 servers it names.
  const Manifest two = Written(2, {{"table_memory_limit", "8K"}, {"table_memory_limit_per_table", "t:4K"}});
  TableBudget b = ResolveTableBudget(now, 3, &two);
  EXPECT_EQ(b.servers, 2);
  EXPECT_TRUE(b.kept);
  EXPECT_NE(b.message.find("each of the 3 servers now keeps 8K x 2 / 3"), std::string::npos) << b.message;
  // The 3-server run recorded 2; a 4-server resume of it still keeps 2.
  const Manifest three = Written(3, {{"table_memory_limit", "8K"}, {"table_memory_limit_per_table", "t:4K"},
                                     {"table_memory_limit_servers", "2"}});
  b = ResolveTableBudget(now, 4, &three);
  EXPECT_EQ(b.servers, 2);
  EXPECT_TRUE(b.kept);
  // The same server count: nothing to say.
  EXPECT_TRUE(ResolveTableBudget(now, 2, &two).message.empty());
}

TEST(TableBudget, AChangedLimitIsPerServerOfTheNewJobWithAWarning) {
  const Manifest two = Written(2, {{"table_memory_limit", "8K"}});
  TableBudget b = ResolveTableBudget(TableBudgetFlags{"16K", "", 0}, 3, &two);
  EXPECT_EQ(b.servers, 3);
  EXPECT_FALSE(b.kept);
  EXPECT_NE(b.message.find("not a bitwise continuation"), std::string::npos) << b.message;
  b = ResolveTableBudget(TableBudgetFlags{"8K", "emb:1M", 0}, 3, &two);
  EXPECT_EQ(b.servers, 3);
  EXPECT_FALSE(b.kept);
  // A limit added to a run that had none.
  const Manifest none = Written(2, {});
  EXPECT_FALSE(ResolveTableBudget(TableBudgetFlags{"8K", "", 0}, 3, &none).kept);
  // No limit then or now: the count does not matter, and it is kept.
  EXPECT_TRUE(ResolveTableBudget(TableBudgetFlags{}, 3, &none).kept);
}

TEST(TableBudget, LimitsAreComparedByValueNotByText) {
  const Manifest two = Written(2, {{"table_memory_limit", "8K"}, {"table_memory_limit_per_table", "a:1M,b:4K"}});
  // Other spellings of the same limits, per-table entries in another order: kept.
  TableBudget b = ResolveTableBudget(TableBudgetFlags{"8192", "b:4096B,a:1MiB", 0}, 3, &two);
  EXPECT_EQ(b.servers, 2);
  EXPECT_TRUE(b.kept) << b.message;
  EXPECT_TRUE(ResolveTableBudget(TableBudgetFlags{"8k", "a:1m,b:4k", 2}, 3, &two).kept);
  // One byte more is another limit.
  EXPECT_FALSE(ResolveTableBudget(TableBudgetFlags{"8193", "a:1M,b:4K", 0}, 3, &two).kept);
  EXPECT_FALSE(ResolveTableBudget(TableBudgetFlags{"8K", "a:1M,b:4K,c:1K", 0}, 3, &two).kept);
  // "0" spelled otherwise is still no limit, then as now.
  const Manifest none = Written(2, {});
  b = ResolveTableBudget(TableBudgetFlags{"0B", "", 0}, 3, &none);
  EXPECT_TRUE(b.kept);
  EXPECT_TRUE(b.message.empty()) << b.message;
}

TEST(TableBudget, AnExplicitServerCountWins) {
  const Manifest two = Written(2, {{"table_memory_limit", "8K"}});
  TableBudget b = ResolveTableBudget(TableBudgetFlags{"8K", "", 3}, 3, &two);
  EXPECT_EQ(b.servers, 3);
  EXPECT_FALSE(b.kept);
  EXPECT_NE(b.message.find("not a bitwise continuation"), std::string::npos) << b.message;
  b = ResolveTableBudget(TableBudgetFlags{"8K", "", 2}, 3, &two);
  EXPECT_EQ(b.servers, 2);
  EXPECT_TRUE(b.kept);
}

TEST(TableBudget, FlagsAreReadFromAFlagList) {
  const TableBudgetFlags f = TableBudgetFlagsOf({{"lr", "0.1"}, {"table_memory_limit", "2G"},
                                                 {"table_memory_limit_per_table", "a:1M"}, {"table_memory_limit_servers", "5"}});
  EXPECT_EQ(f, (TableBudgetFlags{"2G", "a:1M", 5}));
  EXPECT_EQ(TableBudgetFlagsOf({}), TableBudgetFlags{});
}

}  // namespace
}  // namespace tessera::checkpoint
