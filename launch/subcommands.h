// The `tessera` binary's subcommands. Each module that owns a subcommand provides its
// entry point here; launch/main.cc dispatches on argv[1]. Each returns the process
// exit code (see docs/operations.md for the codes).
#pragma once

namespace tessera {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*main)(int argc, char** argv);  // argv[0] is "tessera <name>"
};

}  // namespace tessera
