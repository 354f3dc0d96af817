#include "checkpoint/table_budget.h"

#include <cstdlib>
#include <string_view>

#include "common/byte_size.h"

namespace tessera::checkpoint {
namespace {

// The same limits by value: "8K" is "8192", and per-table entries in any order.
bool SameLimits(const TableBudgetFlags& a, const TableBudgetFlags& b) {
  auto la = ParseByteSize(a.limit, ""), lb = ParseByteSize(b.limit, "");
  const bool same_limit = la.ok() && lb.ok() ? *la == *lb : a.limit == b.limit;
  // Texts that do not parse are compared as they are.
  auto pa = ParseNamedByteSizes(a.per_table, ""), pb = ParseNamedByteSizes(b.per_table, "");
  const bool same_tables = pa.ok() && pb.ok() ? *pa == *pb : a.per_table == b.per_table;
  return same_limit && same_tables;
}

}  // namespace

TableBudgetFlags TableBudgetFlagsOf(const std::vector<std::pair<std::string, std::string>>& flags) {
  TableBudgetFlags f;
  for (const auto& [name, value] : flags) {
    if (name == kTableMemoryLimitFlag) f.limit = value;
    if (name == kTableMemoryLimitPerTableFlag) f.per_table = value;
    if (name == kTableMemoryLimitServersFlag) f.servers = std::atoi(value.c_str());
  }
  return f;
}

TableBudget ResolveTableBudget(const TableBudgetFlags& now, int num_servers, const Manifest* resumed) {
  TableBudget b;
  b.servers = num_servers;
  auto now_limit = ParseByteSize(now.limit, "");
  const bool limited = (now_limit.ok() ? *now_limit != 0 : now.limit != "0") || !now.per_table.empty();
  const TableBudgetFlags then = resumed != nullptr ? TableBudgetFlagsOf(resumed->flags) : TableBudgetFlags{};
  const int then_servers = resumed == nullptr ? 0 : then.servers > 0 ? then.servers : resumed->num_servers;
  if (now.servers > 0) {
    b.servers = now.servers;
    b.kept = resumed == nullptr || (SameLimits(then, now) && then_servers == now.servers);
    if (limited && (b.servers != num_servers || !b.kept)) {
      b.message = "--table_memory_limit_servers=" + std::to_string(b.servers) + ": each of the " +
                  std::to_string(num_servers) + " servers keeps --table_memory_limit x " + std::to_string(b.servers) +
                  " / " + std::to_string(num_servers) + " of every limited table" +
                  (b.kept ? "" : "; the checkpoint's budget differs, so the resume is not a bitwise continuation");
    }
    return b;
  }
  if (resumed == nullptr) return b;
  if (SameLimits(then, now)) {
    b.servers = then_servers;
    if (limited && then_servers != num_servers) {
      b.message = "the checkpoint's table memory budget is kept (--table_memory_limit=" + now.limit + " set for " +
                  std::to_string(then_servers) + " servers): each of the " + std::to_string(num_servers) +
                  " servers now keeps " + now.limit + " x " + std::to_string(then_servers) + " / " +
                  std::to_string(num_servers) + " of every limited table";
    }
    return b;
  }
  b.kept = false;
  b.message = "--table_memory_limit=" + now.limit + " / --table_memory_limit_per_table='" + now.per_table +
              "' differ from the checkpoint's (" + then.limit + " / '" + then.per_table + "', set for " +
              std::to_string(then_servers) + " servers): the new limits hold per server of these " +
              std::to_string(num_servers) + ", and the resume is not a bitwise continuation of the checkpointed run";
  return b;
}

}  // namespace tessera::checkpoint
