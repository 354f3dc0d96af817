// One checkpoint record: a dense chunk or a sparse row of one parameter, with its
// optimizer slots and update counter, and how it is stored in RocksDB.
//
// Key (bytes, so RocksDB's default bytewise order groups a parameter's records and
// orders them by element / key):
//   'd' <param name> '\0' <begin element, u64 big-endian>     dense chunk
//   's' <param name> '\0' <row key, u64 big-endian>           sparse row
//   'x' <param name> '\0' <row key, u64 big-endian>           sparse row erased since the
//                                                             parent (incremental only)
//   'k' <param name> '\0' <0, u64 big-endian>                 the table's admission sketch
//                                                             (values: the counters)
// Keys name the parameter and the position, never the server, so any number of servers
// can load what another number wrote (docs/checkpoints.md, "Resharding").
//
// Value (little-endian):
//   u32 magic 'TCR1' | u32 crc32c of everything after it | i64 updates |
//   u64 num_values | u64 num_slots | f32 values[num_values] | f32 slots[num_slots]
// or, for a row of a table with an eviction policy (its last-seen step decides when it
// goes, so a resume needs it):
//   u32 magic 'TCR2' | u32 crc32c | i64 updates | i64 last_seen | u64 num_values | ...
// An erased row's value is a TCR1 value without floats.
// The checksum covers the counters and the floats, so a flipped bit anywhere in the
// value is caught by DecodeRecord.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/keys.h"
#include "common/status.h"

namespace tessera::checkpoint {

enum class RecordKind : char { kDense = 'd', kSparse = 's', kErased = 'x', kSketch = 'k' };

// A record as handed to the writer; the spans are borrowed for the call.
struct RecordRef {
  RecordKind kind = RecordKind::kDense;
  std::string_view param;  // parameter name
  uint64_t position = 0;   // dense: first element; sparse: row key
  int64_t updates = 0;
  std::span<const float> values;
  std::span<const float> slots;
  int64_t last_seen = -1;  // >= 0: written as TCR2
};

// A decoded record (owns its floats).
struct Record {
  RecordKind kind = RecordKind::kDense;
  std::string param;
  uint64_t position = 0;
  int64_t updates = 0;
  int64_t last_seen = -1;  // -1: a TCR1 value
  std::vector<float> values;
  std::vector<float> slots;
};

std::string EncodeKey(RecordKind kind, std::string_view param, uint64_t position);
// The smallest key of `param`'s records of `kind` (a prefix seek target).
std::string KeyPrefix(RecordKind kind, std::string_view param);
// Corruption naming the key when it is not a record key.
Status DecodeKey(std::string_view key, RecordKind* kind, std::string* param, uint64_t* position);

// Appends the encoded value to *out.
void EncodeValue(const RecordRef& r, std::string* out);
size_t EncodedValueSize(const RecordRef& r);
// The value's checksum as stored (for digests), or Corruption when too short.
Result<uint32_t> StoredChecksum(std::string_view value);
// Checks magic, lengths and checksum, then fills updates/values/slots of *out.
// Corruption names what is wrong ("checksum mismatch: stored 0x..., computed 0x...").
Status DecodeValue(std::string_view value, Record* out);
// Same checks without copying the floats (verify).
Status CheckValue(std::string_view value);

}  // namespace tessera::checkpoint
