// `tessera flags`: the configuration reference, generated from the gflags flags linked
// into this binary (docs/configuration.md is its --markdown output; regenerate it with
// scripts/gen-flag-docs.sh). Single-threaded; reads the gflags registry only.
#pragma once

#include <string>
#include <vector>

namespace tessera::launch {

struct FlagDoc {
  std::string name;
  std::string type;           // gflags' type name: bool, int32, int64, uint64, double, string
  std::string default_value;  // as gflags prints it
  std::string description;
  std::string file;           // Tessera's flags: path in the source tree ("launch/job.cc");
                              // library flags: the path the library was built with
  bool tessera = false;       // defined in Tessera's sources (false: gflags', glog's own)
};

// Every flag registered with gflags in this process, Tessera's first, each group sorted
// by defining file, then name.
std::vector<FlagDoc> CollectFlagDocs();

// The generated part of docs/configuration.md. `launch_help` is the text of
// `tessera launch --help` (its launcher flags are not gflags); "" leaves that section out.
std::string FlagDocsMarkdown(const std::vector<FlagDoc>& flags, const std::string& launch_help);

// One line per flag, tab-separated: scope (tessera|library), file, name, type, default,
// description (tabs and newlines in the text become spaces). For tests and scripts.
std::string FlagDocsTsv(const std::vector<FlagDoc>& flags);

// `tessera flags [--markdown | --tsv]` (default --markdown), to stdout.
int FlagsMain(int argc, char** argv);

}  // namespace tessera::launch
