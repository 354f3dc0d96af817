// docs/configuration.md is `tessera flags --markdown` between its GENERATED markers: these
// tests run the built binary and fail when a flag was added, removed or changed without
// regenerating the page, when a flag has no description, and when docs/training.md's
// flag tables name a flag that does not exist.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::SourceDir;
using testing::TesseraBinary;

constexpr char kRegenerate[] = "run scripts/gen-flag-docs.sh (builds the tessera target, then rewrites the page)";
constexpr char kBegin[] = "<!-- BEGIN GENERATED";
constexpr char kEnd[] = "<!-- END GENERATED";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string RunTessera(const std::string& args) {
  const auto r = RunCommand(TesseraBinary() + " " + args + " 2>/dev/null", 60);
  EXPECT_EQ(r.exit_code, 0) << "tessera " << args << ":\n" << r.output;
  return r.output;
}

// The text between the GENERATED markers (exclusive), or "" (with a failure) when the
// markers are missing.
std::string GeneratedPart(const std::string& doc) {
  const auto b = doc.find(kBegin);
  const auto e = doc.find(kEnd);
  if (b == std::string::npos || e == std::string::npos || e < b) {
    ADD_FAILURE() << "docs/configuration.md lacks the '" << kBegin << "' / '" << kEnd << "' markers; " << kRegenerate;
    return "";
  }
  const auto start = doc.find('\n', b);
  return doc.substr(start + 1, e - start - 1);
}

// "--name" -> its table row, for every "| `--name` |" row of a Markdown text.
std::map<std::string, std::string> FlagRows(const std::string& md) {
  static const std::regex row(R"(^\| `--([A-Za-z0-9_]+)` \|)");
  std::map<std::string, std::string> out;
  for (const auto& line : Lines(md)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) out[m[1]] = line;
  }
  return out;
}

struct FlagLine {
  std::string scope, file, name, type, default_value, description;
};

std::vector<FlagLine> FlagsTsv() {
  std::vector<FlagLine> out;
  for (const auto& line : Lines(RunTessera("flags --tsv"))) {
    std::vector<std::string> f;
    std::string::size_type pos = 0;
    for (int i = 0; i < 5; ++i) {
      const auto tab = line.find('\t', pos);
      if (tab == std::string::npos) break;
      f.push_back(line.substr(pos, tab - pos));
      pos = tab + 1;
    }
    f.push_back(line.substr(pos));
    if (f.size() != 6) {
      ADD_FAILURE() << "tessera flags --tsv: malformed line '" << line << "'";
      continue;
    }
    out.push_back({f[0], f[1], f[2], f[3], f[4], f[5]});
  }
  return out;
}

// Names `tessera launch` reads itself: the "  --name" lines of its --help.
std::set<std::string> LauncherFlagNames() {
  static const std::regex opt(R"(^  --([a-z0-9_]+))");
  std::set<std::string> out;
  for (const auto& line : Lines(RunTessera("launch --help"))) {
    std::smatch m;
    if (std::regex_search(line, m, opt)) out.insert(m[1]);
  }
  return out;
}

TEST(FlagDocs, ConfigurationMdMatchesTheBinary) {
  const std::string path = SourceDir() + "/docs/configuration.md";
  const std::string doc = ReadFile(path);
  ASSERT_FALSE(doc.empty()) << path << " is missing or empty; " << kRegenerate;
  const std::string want = RunTessera("flags --markdown");
  ASSERT_FALSE(want.empty());
  const std::string have = GeneratedPart(doc);
  if (have == want) return;

  const auto want_rows = FlagRows(want);
  const auto have_rows = FlagRows(have);
  std::ostringstream why;
  for (const auto& [name, row] : want_rows) {
    auto it = have_rows.find(name);
    if (it == have_rows.end()) why << "  undocumented: --" << name << "\n";
    else if (it->second != row) why << "  changed: --" << name << "\n      doc:    " << it->second << "\n      binary: " << row << "\n";
  }
  for (const auto& [name, row] : have_rows) {
    if (!want_rows.count(name)) why << "  documented but not a flag of the binary: --" << name << "\n";
  }
  if (why.str().empty()) {  // same flags, other text: name the first differing line
    const auto a = Lines(have), b = Lines(want);
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    why << "  first differing line " << i + 1 << " of the generated part:\n      doc:    "
        << (i < a.size() ? a[i] : "<end>") << "\n      binary: " << (i < b.size() ? b[i] : "<end>") << "\n";
  }
  FAIL() << "docs/configuration.md is out of date with `tessera flags --markdown`:\n" << why.str() << kRegenerate;
}

TEST(FlagDocs, EveryTesseraFlagHasADescription) {
  const auto flags = FlagsTsv();
  int tessera = 0;
  for (const auto& f : flags) {
    if (f.scope != "tessera") continue;
    ++tessera;
    EXPECT_GE(f.description.size(), 8u) << "--" << f.name << " (" << f.file
                                        << ") has no real description: say what it does in its DEFINE_*";
    EXPECT_NE(f.file[0], '/') << "--" << f.name << ": defining file not relative to the source tree: " << f.file;
  }
  // The job flags and train flags are linked in; a binary without them would pass vacuously.
  EXPECT_GT(tessera, 40) << "tessera flags found only " << tessera << " Tessera flags";
}

// docs/training.md documents the train flags in tables ("| `--name` | default | what |"):
// each row must name a real flag. Rows are not required for every flag (that is
// docs/configuration.md's job), but none may be invented or left after a rename.
TEST(FlagDocs, TrainingMdFlagTablesNameRealFlags) {
  std::set<std::string> known = LauncherFlagNames();
  for (const auto& f : FlagsTsv()) known.insert(f.name);
  const auto rows = FlagRows(ReadFile(SourceDir() + "/docs/training.md"));
  ASSERT_GT(rows.size(), 20u) << "docs/training.md: its flag tables were not found";
  for (const auto& [name, row] : rows) {
    EXPECT_TRUE(known.count(name)) << "docs/training.md documents --" << name
                                   << ", which is not a flag of `tessera train` or `tessera launch`:\n  " << row;
  }
}

// Flags of the other programs whose commands the docs show: DEFINE_* in bench/, examples/
// and tests/ sources, and the options the scripts' `case` statements accept ("--name)").
std::set<std::string> OtherProgramsFlagNames() {
  namespace fs = std::filesystem;
  static const std::regex define(R"(DEFINE_[a-z0-9]+\(\s*([a-z0-9_]+))");
  static const std::regex option(R"(--([a-z0-9_]+)\))");
  std::set<std::string> out;
  for (const char* dir : {"bench", "examples", "tests", "scripts"}) {
    for (const auto& e : fs::recursive_directory_iterator(SourceDir() + "/" + dir)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".cc" && ext != ".sh")) continue;
      const std::string text = ReadFile(e.path().string());
      const std::regex& re = ext == ".cc" ? define : option;
      for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
        out.insert((*it)[1]);
      }
    }
  }
  return out;
}

// Every `--name` in inline code in docs/*.md and README.md. Names with a '-' (gflags
// names use '_') and wildcards ("--checkpoint_*") are other programs' or families;
// mpirun's and Slurm's flags appear too, so names that are still unknown are listed as
// a warning, not a failure.
TEST(FlagDocs, FlagsMentionedInDocsExistOrAreListed) {
  std::set<std::string> known = LauncherFlagNames();
  for (const auto& f : FlagsTsv()) known.insert(f.name);
  const std::set<std::string> other = OtherProgramsFlagNames();
  EXPECT_TRUE(other.count("bench_mode")) << "bench/ps/ps_bench.cc's flags were not found";
  static const std::regex code(R"(`--([a-z][a-z0-9_-]*)[^`]*`)");
  std::map<std::string, std::set<std::string>> unknown;  // name -> files
  std::vector<std::string> paths = {SourceDir() + "/README.md"};
  for (const auto& e : std::filesystem::directory_iterator(SourceDir() + "/docs")) {
    if (e.path().extension() == ".md") paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  int files = 0;
  for (const auto& path : paths) {
    if (path.find("/docs/configuration.md") != std::string::npos) continue;
    ++files;
    const std::string text = ReadFile(path);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), code); it != std::sregex_iterator(); ++it) {
      const std::string name = (*it)[1];
      if (name.find('-') != std::string::npos || name.back() == '_') continue;
      if (!known.count(name) && !other.count(name)) unknown[name].insert(path.substr(path.rfind('/') + 1));
    }
  }
  EXPECT_GT(files, 10);
  if (unknown.empty()) return;
  std::ostringstream list;
  for (const auto& [name, where] : unknown) {
    list << "  --" << name << ":";
    for (const auto& w : where) list << " " << w;
    list << "\n";
  }
  std::cout << "[warning] `--name` in docs that is not a flag of tessera, its launcher, a benchmark, an "
               "example or a script (fine for mpirun/srun/sbatch flags; check the rest):\n"
            << list.str();
}

}  // namespace
}  // namespace tessera
