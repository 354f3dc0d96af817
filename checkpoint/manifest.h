// MANIFEST: what makes a checkpoint exist. Written by the coordinator, atomically
// (fs_util.h WriteFileAtomically), only after every participant reported its part done;
// a step directory without one is an unfinished checkpoint and is garbage-collected.
//
// Format (version 1): UTF-8 text, one record per line, fields separated by one space,
// strings percent-escaped (space, %, newline); floats as the hex of their bits so they
// round-trip exactly. The last line is "checksum <crc32c of every byte before it>", so
// a torn or flipped manifest is refused rather than misread:
//
//   tessera-checkpoint 1
//   step 120
//   created_unix_ms 1764094000123
//   full 1                        (0: sparse rows of an incremental checkpoint, parent below)
//   parent -1
//   job <servers> <workers> <sync> <grad_reduce> <chunk_bytes>
//   flag <name> <value>           (every gflag that differs from its default)
//   param <name> <kind> <dtype> <shape,csv> <init> <scale> <seed> <opt> <lr> <momentum>
//         <nesterov> <beta1> <beta2> <eps> <weight_decay> <clip_norm> <initial_acc>
//   server <index> <dir> <digest> <store_digest> <records> <bytes>
//   file <server index> <relative path> <size>
//   server -1 replica ...         (--sync=allreduce|hybrid: worker 0's all-reduced dense
//   file -1 <relative path> <size> parameters, values and optimizer state; see kReplicaPart)
//   worker <index> <next_step> <epoch> <position>
//   bytes_written <n>
//   checksum <hex>
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/fs_util.h"
#include "common/param_spec.h"
#include "common/status.h"

namespace tessera::checkpoint {

inline constexpr int kManifestVersion = 1;
inline constexpr const char* kManifestName = "MANIFEST";

// The index of the part worker 0 writes under --sync=allreduce|hybrid: the dense
// parameters live (replicated) on the workers there, so their values and optimizer slots
// are one more database beside the servers' (which then hold only sparse rows). Readers
// treat it as one more part: restore, verification and resharding need nothing else.
inline constexpr int kReplicaPart = -1;
inline constexpr const char* kReplicaDir = "replica";

struct ServerPart {
  int index = 0;  // a server's index, or kReplicaPart
  std::string dir;             // relative to the step directory ("server-0")
  uint64_t digest = 0;         // ShardReader digest of the database
  uint64_t store_digest = 0;   // ShardStore::Digest() at the snapshot (values, slots and counters
                               // of every unit, summable over servers; docs/checkpoints.md);
                               // 0 for the replica; the rows' part only under --sync=hybrid
  uint64_t records = 0;
  uint64_t bytes = 0;          // file bytes of the database
  std::vector<FileEntry> files;  // relative to dir
};

struct WorkerPart {
  int index = 0;
  int64_t next_step = 0;
  int64_t epoch = 0;     // data cursor
  int64_t position = 0;
};

struct Manifest {
  int version = kManifestVersion;
  int64_t step = 0;
  int64_t created_unix_ms = 0;
  bool full = true;
  int64_t parent_step = -1;
  int num_servers = 0;
  int num_workers = 0;
  std::string sync;
  std::string grad_reduce;
  uint64_t chunk_bytes = 0;
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<ParamSpec> params;
  std::vector<ServerPart> servers;
  std::vector<WorkerPart> workers;
  uint64_t bytes_written = 0;
};

std::string SerializeManifest(const Manifest& m);
// Corruption naming `where` and the line for anything malformed or a checksum mismatch.
Result<Manifest> ParseManifest(const std::string& text, const std::string& where);
// ParseManifest's first and last checks. ManifestBodySize: the length of the text the
// final "checksum" line covers, or Corruption naming `where` when the line is missing,
// unreadable or does not match. CheckServerParts: Corruption unless `m` lists exactly one
// part for each of its num_servers servers (the replica part aside).
Result<size_t> ManifestBodySize(const std::string& text, const std::string& where);
Status CheckServerParts(const Manifest& m, const std::string& where);
// Reads <step_dir>/MANIFEST.
Result<Manifest> ReadManifest(const std::string& step_dir);

// Whether a job declaring `declared` can resume from `m`: every parameter present in
// both with the same kind, dtype, shape and optimizer (its slots are in the checkpoint).
// InvalidArgument naming the first mismatch.
Status CheckCompatible(const Manifest& m, const std::vector<ParamSpec>& declared);

// "fc1.weight dense f32 [784,128] adam", for `tessera ckpt show`.
std::string DescribeParam(const ParamSpec& p);

}  // namespace tessera::checkpoint
