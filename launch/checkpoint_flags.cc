#include "launch/checkpoint_flags.h"

#include <gflags/gflags.h>

#include <algorithm>

#include "launch/flag_value.h"

DECLARE_double(request_timeout_s);  // launch/job.cc

DEFINE_string(checkpoint_dir, "", "Directory of the job's checkpoints (\"\": no checkpoints)");
DEFINE_int64(checkpoint_every_steps, 0, "Checkpoint at every multiple of this step (0: off)");
DEFINE_double(checkpoint_every_s, 0, "Checkpoint when this many seconds passed since the last one (0: off)");
DEFINE_int32(checkpoint_keep, 3, "Keep the newest N complete checkpoints (0: keep all)");
DEFINE_int32(checkpoint_full_every, 1,
             "Every N-th checkpoint is full; the others write only the sparse rows changed since the previous one");
DEFINE_string(checkpoint_write, "sst", "How servers write checkpoints: sst (SstFileWriter + ingestion) or batch");
DEFINE_string(resume, "auto",
              "auto: resume from the newest sound checkpoint in --checkpoint_dir, if any; none: start fresh; or "
              "the path of a checkpoint step directory");
DEFINE_double(preempt_grace_s, 60,
              "After SIGTERM/SIGUSR1, end the job at once if the preemption checkpoint has not committed by then");

namespace tessera::launch {

CheckpointOptions CheckpointOptionsFromFlags() {
  CheckpointOptions o;
  o.dir = FLAGS_checkpoint_dir;
  o.every_steps = FLAGS_checkpoint_every_steps;
  o.every_s = FLAGS_checkpoint_every_s;
  o.keep = FLAGS_checkpoint_keep;
  o.full_every = FLAGS_checkpoint_full_every;
  o.resume = FLAGS_resume;
  o.preempt_grace_s = FLAGS_preempt_grace_s;
  // The end-of-training barrier is held at most this long; each worker waits for it
  // with its request deadline.
  o.final_hold_s = std::min(CheckpointDriver::kFinalHoldS, FLAGS_request_timeout_s / 2);
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  for (const auto& f : all) {
    if (!f.is_default && f.name != "flagfile") o.flags.emplace_back(f.name, f.current_value);
  }
  return o;
}

Result<checkpoint::WriteMethod> CheckpointWriteMethodFromFlags() {
  return FlagValue(checkpoint::ParseWriteMethod(FLAGS_checkpoint_write), "--checkpoint_write");
}

double PreemptGraceSeconds() { return FLAGS_preempt_grace_s; }

}  // namespace tessera::launch
