// A checkpoint directory (--checkpoint_dir): one step directory per checkpoint,
//   <dir>/step-000000000120/{MANIFEST, server-0/, server-1/, ...}
// and the operations on the whole: list, verify, choose what to resume from, retention
// and garbage collection. Pure file-system and RocksDB work, no network.
//
// Thread safety: free functions; callers make sure only one process (the coordinator)
// mutates a directory at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"
#include "common/status.h"

namespace tessera::checkpoint {

std::string StepDirName(int64_t step);          // "step-000000000120"
std::string StepDir(const std::string& dir, int64_t step);

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;
  bool complete = false;  // has a MANIFEST (it may still fail verification)
  uint64_t bytes = 0;     // every file under the step directory
};
// Every step directory under `dir`, ascending by step. A missing `dir` is an empty list.
Result<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& dir);

struct VerifyReport {
  uint64_t records = 0;
  uint64_t bytes = 0;
};
// Re-reads the checkpoint at `step_dir`: the manifest's checksum, every listed file and
// its size, every record's checksum and each database's digest; for an incremental
// checkpoint, its parent chain too. OK only when all of it is sound; otherwise the first
// problem (Corruption / NotFound naming the file).
Status VerifyCheckpoint(const std::string& step_dir, VerifyReport* report = nullptr);

// The step directories whose databases hold the rows of `m` (step_dir's manifest): the
// checkpoint itself, then its parents back to the last full one, newest first.
Result<std::vector<std::pair<std::string, Manifest>>> Chain(const std::string& step_dir, const Manifest& m);

// What to resume from. `mode` is "auto" (newest checkpoint that verifies; older ones
// when the newest is damaged, each refusal logged as a warning), "none", or a path to a
// step directory (which must verify). Returns the step directory, "" for a fresh start.
Result<std::string> ChooseResume(const std::string& dir, const std::string& mode);

// Removes step directories without a manifest (unfinished checkpoints), except
// `in_progress` (a step, or -1), and keeps only the newest `keep` complete ones plus the
// parents they need (keep <= 0: keep all). Returns the bytes removed.
Result<uint64_t> CollectGarbage(const std::string& dir, int keep, int64_t in_progress = -1);

}  // namespace tessera::checkpoint
