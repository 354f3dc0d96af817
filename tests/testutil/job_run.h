// Running a whole job through `tessera launch` from a test and reading what worker 0
// wrote to --metrics_out (tests/train, tests/collective, tests/checkpoint).
#pragma once

#include <string>
#include <vector>

namespace tessera::testing {

struct JobRun {
  int exit_code = -1;
  std::string output;                // launcher + every process, stdout and stderr
  std::vector<std::string> metrics;  // lines of worker 0's --metrics_out
};

// The raw text of `key`'s value in a one-line JSON object, strings without their
// quotes; "" when absent.
std::string JsonField(const std::string& json, const std::string& key);

// The lines of a file (none when it cannot be read).
std::vector<std::string> ReadLines(const std::string& path);

// `tessera launch --servers S --workers W --grace_s G <flags> --metrics_out=<metrics>`.
std::string LaunchCommand(const std::string& flags, const std::string& metrics, int servers, int workers,
                          int grace_s);

// Runs `command` (a LaunchCommand, maybe with a prefix) to its end and reads `metrics`.
JobRun RunJobCommand(const std::string& command, const std::string& metrics, int timeout_s);

// The metrics lines whose "event" is `event`, in order.
std::vector<std::string> Events(const JobRun& run, const std::string& event);

}  // namespace tessera::testing
