// `tessera`: one binary, subcommands. The role of a training process comes from its
// rank (see launch/), not from the subcommand.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoint/tool/ckpt_tool.h"
#include "launch/datagen_main.h"
#include "launch/flag_docs.h"
#include "launch/local_launcher.h"
#include "launch/status_main.h"
#include "launch/subcommands.h"
#include "observe/report.h"
#include "launch/train_main.h"

namespace tessera {
namespace {

int VersionMain(int, char**) {
  std::printf("tessera %s (protocol %u, cuda %s)\n", TESSERA_VERSION_STRING,
              TESSERA_PROTOCOL_VERSION, TESSERA_HAVE_CUDA_STR);
  return 0;
}

const std::vector<Subcommand>& Commands() {
  static const std::vector<Subcommand> cmds = {
      {"version", "print the version and exit", &VersionMain},
      {"launch", "start a whole job (coordinator, servers, workers) on this machine", &launch::LaunchMain},
      {"train", "one process of a training job (run it through `tessera launch`)", &TrainMain},
      {"ckpt", "inspect checkpoints: ckpt ls|show|verify DIR [STEP]", &checkpoint::CkptMain},
      {"report", "plot metrics files: report METRICS.jsonl [...] -o DIR", &observe::ReportMain},
      {"status", "ask a running job's coordinator for its state: status HOST:PORT [--json]", &launch::StatusMain},
      {"datagen", "write a synthetic data set: datagen criteo --rows N --seed S -o DIR", &launch::DatagenMain},
      {"flags", "print every flag with its default and description (docs/configuration.md)", &launch::FlagsMain},
  };
  return cmds;
}

void Usage(FILE* out) {
  std::fprintf(out, "usage: tessera <command> [flags]\n\ncommands:\n");
  for (const auto& c : Commands()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'tessera <command> --help' lists a command's flags.\n");
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  using tessera::Commands;
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "help")) {
    tessera::Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) return tessera::Commands()[0].main(argc, argv);
  for (const auto& c : Commands()) {
    if (std::strcmp(argv[1], c.name) == 0) {
      std::string prog = std::string("tessera ") + c.name;
      std::vector<char*> args;
      args.push_back(prog.data());
      for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
      args.push_back(nullptr);
      return c.main(argc - 1, args.data());
    }
  }
  std::fprintf(stderr, "tessera: unknown command '%s'\n\n", argv[1]);
  tessera::Usage(stderr);
  return 2;
}
