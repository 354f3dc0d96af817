// Process start-up for every Tessera binary: gflags parsing and glog set-up in one place.
#pragma once

#include <string>

namespace tessera {

// Parses flags (removing them from argv), initialises glog with a line prefix that
// names the process ("coordinator", "server 1", "worker 0", ...), logs to stderr.
// Call once, from main, before any other thread exists.
void InitProcess(int* argc, char*** argv, const std::string& usage);

// Changes the role/rank tag printed at the start of each log line.
// Safe to call once the role is known (still single-threaded).
void SetLogTag(const std::string& tag);

// Current tag ("" before SetLogTag).
const std::string& LogTag();

}  // namespace tessera
