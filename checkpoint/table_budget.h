// Which server count a job's --table_memory_limit is per, across resumes
// (docs/consistency.md "Resharding"). The limit is per server, but what the store
// enforces is the job-wide budget B = limit x servers, dealt to the shard map's virtual
// partitions (paramserver/shard_store.h TablePolicy): a reshard that keeps B evicts the
// same rows as the uninterrupted run, one that keeps the per-server limit would not.
//
//  - A fresh job: servers = --table_memory_limit_servers when given, else its own count.
//  - A resumed job whose --table_memory_limit and --table_memory_limit_per_table are the
//    limits the checkpoint recorded (compared by value: "8K" is "8192", per-table
//    entries in any order): the checkpoint's count (its recorded
//    table_memory_limit_servers, else the servers that wrote it): B is kept, each server
//    now keeps B / S'; a bitwise continuation.
//  - A resumed job with either flag changed: its own count (the new limit is per server
//    of this job), with a warning that the resume is no longer a bitwise continuation.
//  - --table_memory_limit_servers given explicitly always wins.
// The coordinator records the answer in every manifest it writes (flag
// table_memory_limit_servers), so a chain of reshards keeps B; every server computes
// the same answer from the same manifest.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "checkpoint/manifest.h"

namespace tessera::checkpoint {

inline constexpr char kTableMemoryLimitFlag[] = "table_memory_limit";
inline constexpr char kTableMemoryLimitPerTableFlag[] = "table_memory_limit_per_table";
inline constexpr char kTableMemoryLimitServersFlag[] = "table_memory_limit_servers";

// The three flags' text (defaults "0", "", 0: absent from a flag list means default).
struct TableBudgetFlags {
  std::string limit = "0";
  std::string per_table;
  int servers = 0;  // 0: not given
  friend bool operator==(const TableBudgetFlags&, const TableBudgetFlags&) = default;
};
// From a list of (name, value) non-default flags (a manifest's, CheckpointOptions').
TableBudgetFlags TableBudgetFlagsOf(const std::vector<std::pair<std::string, std::string>>& flags);

struct TableBudget {
  int servers = 1;       // the budget is limit x servers
  bool kept = true;      // false: a resume changed the budget (not a bitwise continuation)
  std::string message;   // a line for the log; empty when there is nothing to say
};
// `now`: this job's flags; `num_servers`: its server count; `resumed`: the manifest it
// resumes from, or nullptr.
TableBudget ResolveTableBudget(const TableBudgetFlags& now, int num_servers, const Manifest* resumed);

}  // namespace tessera::checkpoint
