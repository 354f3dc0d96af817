// The flags of sparse tables larger than one server's share (--table_memory_limit,
// --table_memory_limit_per_table, --table_memory_limit_servers, --row_expiry_steps,
// --min_key_count, --min_key_count_sketch_width; docs/consistency.md "Eviction, expiry
// and admission"), checked on every rank at start (exit 2) and handed to the servers
// (which resolve the server count the limits are per against the checkpoint they
// resume from: checkpoint/table_budget.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "paramserver/server.h"

namespace tessera::launch {

// The flags as the servers' TableLimits. InvalidArgument for a bad value.
Result<paramserver::TableLimits> TableLimitsFromFlags();

}  // namespace tessera::launch
