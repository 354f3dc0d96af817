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

// The quick MNIST job that the train, collective, launch and gpu tests share: the first
// 12000 training and 1000 test images, one hidden layer of 128, 3 epochs of Adam at batch
// 64 (282 steps with 2 workers). It reaches 92.5-94.5 % in every sync mode (PyTorch, same
// model and data: ~92.7 %); the first 1000 test images are harder than the set's average.
// Flags only, after a space; no --data.
inline constexpr const char* kQuickMnistJob =
    " --train_limit=12000 --test_limit=1000 --hidden=128 --batch_size=64 --epochs=3"
    " --optimizer=adam --lr=0.002 --log_every=0 --seed=1";

// `tessera launch --servers S --workers W --grace_s G <flags> --metrics_out=<metrics>`.
std::string LaunchCommand(const std::string& flags, const std::string& metrics, int servers, int workers,
                          int grace_s);

// Runs `command` (a LaunchCommand, maybe with a prefix) to its end and reads `metrics`.
JobRun RunJobCommand(const std::string& command, const std::string& metrics, int timeout_s);

// The metrics lines whose "event" is `event`, in order.
std::vector<std::string> Events(const JobRun& run, const std::string& event);

}  // namespace tessera::testing
