#include "launch/table_flags.h"

#include <gflags/gflags.h>

#include "common/byte_size.h"


DEFINE_string(table_memory_limit, "0",
              "Bytes of each sparse table one server keeps resident (512M, 2G; 0: no limit; docs/consistency.md). The job "
              "keeps limit x servers per table, dealt evenly to the shard map's 840 key partitions; a push that leaves a "
              "partition over its share evicts its rows pushed least recently (ties by a hash of the key) down to 90 % of "
              "it; a row costs its key, counter, last-seen step, values, optimizer slots and 25 bytes of index and eviction lists. A resume "
              "with the same limit (by value) keeps the checkpoint's job-wide budget whatever the server count");
DEFINE_int32(table_memory_limit_servers, 0,
             "The server count --table_memory_limit is per (the job keeps limit x this; 0: the server count of the run "
             "that set the limit, kept across resumes, docs/consistency.md \"Resharding\")");
DEFINE_string(table_memory_limit_per_table, "",
              "Per-table overrides of --table_memory_limit: name:bytes,... (dlrm.emb.C1:64M; 0: no limit)");
DEFINE_int64(row_expiry_steps, 0,
             "Erase a sparse row not pushed for this many steps (checked every max(1, N/4) steps, so it lives "
             "N to N + N/4 - 1 steps unseen; 0: off)");
DEFINE_int32(min_key_count, 0,
             "Admission: a key without a row gets one on its K-th push (counted by a count-min sketch per table "
             "per server); the gradients of earlier pushes are dropped and pulls read its initial values (0, 1: off)");
DEFINE_int32(min_key_count_sketch_width, 65536,
             "Counters per row of the --min_key_count sketch (a power of two >= 64; 4 rows of 2-byte counters: "
             "512 KiB per table per server at 65536; from 1024 on split into one run per key partition, which keeps "
             "admission exact across a reshard)");

namespace tessera::launch {

Result<paramserver::TableLimits> TableLimitsFromFlags() {
  paramserver::TableLimits l;
  TESSERA_ASSIGN_OR_RETURN(l.policy.memory_limit, ParseByteSize(FLAGS_table_memory_limit, "--table_memory_limit"));
  if (FLAGS_row_expiry_steps < 0) {
    return Status::InvalidArgument("--row_expiry_steps=" + std::to_string(FLAGS_row_expiry_steps) + ": must be >= 0");
  }
  l.policy.expiry_steps = FLAGS_row_expiry_steps;
  if (FLAGS_min_key_count < 0 || FLAGS_min_key_count > 65535) {
    return Status::InvalidArgument("--min_key_count=" + std::to_string(FLAGS_min_key_count) +
                                   ": must lie in 0..65535 (the sketch's counters are 16 bits)");
  }
  l.policy.min_key_count = static_cast<uint32_t>(FLAGS_min_key_count);
  const int32_t w = FLAGS_min_key_count_sketch_width;
  if (w < 64 || (w & (w - 1)) != 0) {
    return Status::InvalidArgument("--min_key_count_sketch_width=" + std::to_string(w) +
                                   ": must be a power of two >= 64");
  }
  l.policy.sketch_width = static_cast<uint32_t>(w);
  if (FLAGS_table_memory_limit_servers < 0) {
    return Status::InvalidArgument("--table_memory_limit_servers=" + std::to_string(FLAGS_table_memory_limit_servers) +
                                   ": must be >= 0");
  }
  l.budget_flags.limit = FLAGS_table_memory_limit;
  l.budget_flags.per_table = FLAGS_table_memory_limit_per_table;
  l.budget_flags.servers = FLAGS_table_memory_limit_servers;
  TESSERA_ASSIGN_OR_RETURN(l.memory_limits,
                           ParseNamedByteSizes(FLAGS_table_memory_limit_per_table, "--table_memory_limit_per_table"));
  return l;
}

}  // namespace tessera::launch
