#include "checkpoint/table_budget.h"

#include <cstdlib>

namespace tessera::checkpoint {

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
  const bool limited = now.limit != "0" || !now.per_table.empty();
  const TableBudgetFlags then = resumed != nullptr ? TableBudgetFlagsOf(resumed->flags) : TableBudgetFlags{};
  const int then_servers = resumed == nullptr ? 0 : then.servers > 0 ? then.servers : resumed->num_servers;
  if (now.servers > 0) {
    b.servers = now.servers;
    b.kept = resumed == nullptr || (then.limit == now.limit && then.per_table == now.per_table && then_servers == now.servers);
    if (limited && (b.servers != num_servers || !b.kept)) {
      b.message = "--table_memory_limit_servers=" + std::to_string(b.servers) + ": each of the " +
                  std::to_string(num_servers) + " servers keeps --table_memory_limit x " + std::to_string(b.servers) +
                  " / " + std::to_string(num_servers) + " of every limited table" +
                  (b.kept ? "" : "; the checkpoint's budget differs, so the resume is not a bitwise continuation");
    }
    return b;
  }
  if (resumed == nullptr) return b;
  if (then.limit == now.limit && then.per_table == now.per_table) {
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
