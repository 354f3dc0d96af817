#include "launch/flag_docs.h"

#include <gflags/gflags.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>

#include "launch/local_launcher.h"

namespace tessera::launch {

namespace {

// The prefix every Tessera source file's __FILE__ starts with in this build: absolute
// ("/src/tessera/") in a plain build, relative ("../") when ccache's base_dir rewrote the
// compiler's paths. Every file of the build is compiled the same way, so this file's own
// __FILE__ tells it.
std::string_view SourcePrefix() {
  constexpr std::string_view kSelf = "launch/flag_docs.cc";
  std::string_view f = __FILE__;
  if (f.size() >= kSelf.size() && f.substr(f.size() - kSelf.size()) == kSelf) {
    return f.substr(0, f.size() - kSelf.size());
  }
  return {};  // unknown layout: every flag then counts as a library's
}

// Markdown table cells: a '|' would end the cell, a newline the row.
std::string Cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r' || c == '\t') out += ' ';
    else out += c;
  }
  return out;
}

std::string DefaultCell(const FlagDoc& f) {
  if (f.type == "string") return "`\"" + Cell(f.default_value) + "\"`";
  return "`" + Cell(f.default_value) + "`";
}

std::string OneLine(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

}  // namespace

std::vector<FlagDoc> CollectFlagDocs() {
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  const std::string_view prefix = SourcePrefix();
  std::vector<FlagDoc> out;
  out.reserve(all.size());
  for (const auto& i : all) {
    FlagDoc d;
    d.name = i.name;
    d.type = i.type;
    d.default_value = i.default_value;
    d.description = i.description;
    d.file = i.filename;
    if (!prefix.empty() && std::string_view(d.file).substr(0, prefix.size()) == prefix) {
      d.file = d.file.substr(prefix.size());
      d.tessera = true;
    }
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [](const FlagDoc& a, const FlagDoc& b) {
    if (a.tessera != b.tessera) return a.tessera;
    if (a.file != b.file) return a.file < b.file;
    return a.name < b.name;
  });
  return out;
}

std::string FlagDocsMarkdown(const std::vector<FlagDoc>& flags, const std::string& launch_help) {
  std::map<std::string, std::vector<const FlagDoc*>> by_file;
  std::vector<const FlagDoc*> library;
  for (const auto& f : flags) {
    if (f.tessera) by_file[f.file].push_back(&f);
    else library.push_back(&f);
  }
  std::string md;
  md += "## Flags of the job processes\n\n";
  md += "Every process of a job (`tessera train`, which `tessera launch`, `mpirun` and `srun` start)\n"
        "accepts all of these, on the command line or in a `--flagfile`. " +
        std::to_string(flags.size() - library.size()) + " flags, grouped by the file that defines them.\n";
  for (const auto& [file, list] : by_file) {
    md += "\n### `" + file + "`\n\n";
    md += "| flag | type | default | description |\n|---|---|---|---|\n";
    for (const FlagDoc* f : list) {
      md += "| `--" + f->name + "` | " + f->type + " | " + DefaultCell(*f) + " | " +
            (f->description.empty() ? std::string("**(no description)**") : Cell(f->description)) + " |\n";
    }
  }
  if (!launch_help.empty()) {
    md += "\n## `tessera launch`'s own flags\n\n";
    md += "The local launcher reads these itself (they are not gflags) and hands every other flag\n"
          "to each process of the job. From `tessera launch --help`:\n\n```text\n";
    md += launch_help;
    if (md.back() != '\n') md += '\n';
    md += "```\n";
  }
  if (!library.empty()) {
    md += "\n## Flags of the gflags and glog libraries\n\n";
    md += "Linked into the binary with the libraries; their defaults may come from the environment\n"
          "(`GLOG_*`, `FLAGS_*`), so none are listed. `--flagfile`, `--v` and `--vmodule` are the useful ones.\n\n";
    md += "| flag | type | defined in | description |\n|---|---|---|---|\n";
    for (const FlagDoc* f : library) {
      md += "| `--" + f->name + "` | " + f->type + " | `" + Cell(f->file) + "` | " + Cell(f->description) + " |\n";
    }
  }
  return md;
}

std::string FlagDocsTsv(const std::vector<FlagDoc>& flags) {
  std::string out;
  for (const auto& f : flags) {
    out += (f.tessera ? "tessera" : "library");
    for (const std::string* s : {&f.file, &f.name, &f.type, &f.default_value, &f.description}) {
      out += '\t';
      out += OneLine(*s);
    }
    out += '\n';
  }
  return out;
}

int FlagsMain(int argc, char** argv) {
  bool tsv = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--markdown")) {
      tsv = false;
    } else if (!std::strcmp(argv[i], "--tsv")) {
      tsv = true;
    } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "usage: tessera flags [--markdown | --tsv]\n"
          "Prints every flag linked into this binary: name, type, default, description and the\n"
          "file that defines it. --markdown (default) is docs/configuration.md's generated part\n"
          "(scripts/gen-flag-docs.sh); --tsv is one tab-separated line per flag.\n");
      return 0;
    } else {
      std::fprintf(stderr, "tessera flags: unknown argument '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  const auto flags = CollectFlagDocs();
  const std::string text = tsv ? FlagDocsTsv(flags) : FlagDocsMarkdown(flags, LaunchHelpText());
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace tessera::launch
