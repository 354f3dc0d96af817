// Byte counts as flags spell them ("4096", "512K", "2G"): parsed by the flags that take
// them (--table_memory_limit, ...) and compared by value where a checkpoint recorded
// their text (checkpoint/table_budget.h), so "8K" and "8192" are the same limit.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tessera {

// "4096", "512K", "512M", "2G", "1T" (powers of 1024; case-insensitive; an optional
// trailing "B" or "iB"). InvalidArgument naming `flag` for anything else, a negative
// or fractional number, or a value over 2^63.
Result<uint64_t> ParseByteSize(std::string_view text, const std::string& flag);

// "name:bytes,name:bytes" (--table_memory_limit_per_table=dlrm.emb.C1:64M,...): the
// name is everything before an item's last ':', so names may hold ':' themselves.
// InvalidArgument naming `flag` for an item without a name or a byte count, a bad
// byte count, or a name given twice. "" is the empty map.
Result<std::map<std::string, uint64_t>> ParseNamedByteSizes(std::string_view text, const std::string& flag);

}  // namespace tessera
