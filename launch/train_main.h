// `tessera train`: the training job. Every process of the job runs it (the launcher
// starts `tessera train <flags>` for each rank); the rank decides the role
// (launch/job.h). Workers run worker::Trainer; the coordinator and the servers only
// check the flags (so a bad flag stops the whole job at once) and serve.
//
// Flags: docs/training.md. Exit codes: common/exit_codes.h (bad flags or data: 2).
#pragma once

namespace tessera {

// Entry point of `tessera train`; argv[0] is "tessera train". Returns the exit code.
int TrainMain(int argc, char** argv);

}  // namespace tessera
