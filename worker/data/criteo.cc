#include "worker/data/criteo.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include "worker/data/dataset.h"
#include "worker/data/gz_lines.h"

namespace tessera::data {

namespace {

bool Blank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

Status BadField(int field, std::string_view text, const char* want) {
  const std::string name = field == 0              ? std::string("label")
                           : field <= kCriteoDense ? "I" + std::to_string(field)
                                                   : "C" + std::to_string(field - kCriteoDense);
  return Status::InvalidArgument("field " + name + " '" + std::string(text.substr(0, 40)) +
                                 "': expected " + want);
}

}  // namespace

Status ParseCriteoLine(std::string_view line, CriteoRow* row) {
  const int64_t fields = 1 + std::count(line.begin(), line.end(), '\t');
  if (fields != kCriteoFields) {
    return Status::InvalidArgument(
        std::to_string(fields) + " tab-separated fields, expected " +
        std::to_string(kCriteoFields) +
        " (label, 13 integer, 26 categorical; an unlabelled file such as the "
        "Kaggle test.txt has 39)");
  }
  int field = 0;
  size_t pos = 0;
  for (;; ++field) {
    const size_t tab = line.find('\t', pos);
    const std::string_view f =
        line.substr(pos, tab == std::string_view::npos ? std::string_view::npos : tab - pos);
    if (field == 0) {
      if (f != "0" && f != "1") return BadField(field, f, "0 or 1");
      row->label = f == "1" ? 1.0f : 0.0f;
    } else if (field <= kCriteoDense) {
      int64_t v = 0;
      if (!f.empty()) {
        const auto r = std::from_chars(f.data(), f.data() + f.size(), v);
        if (r.ec != std::errc() || r.ptr != f.data() + f.size())
          return BadField(field, f, "an integer or nothing");
      }
      row->dense[field - 1] =
          static_cast<float>(std::log1p(static_cast<double>(std::max<int64_t>(v, 0))));
    } else {
      uint64_t key = 0;
      if (!f.empty()) {
        uint32_t h = 0;
        const auto r = std::from_chars(f.data(), f.data() + f.size(), h, 16);
        if (f.size() > 8 || r.ec != std::errc() || r.ptr != f.data() + f.size()) {
          return BadField(field, f, "1 to 8 hex digits or nothing");
        }
        key = uint64_t{h} + 1;
      }
      row->keys[field - 1 - kCriteoDense] = key;
    }
    if (tab == std::string_view::npos) break;
    pos = tab + 1;
  }
  return Status::OK();
}

Result<int64_t> CountCriteoExamples(const std::string& path, int64_t limit) {
  TESSERA_ASSIGN_OR_RETURN(auto reader, GzLineReader::Open(path));
  int64_t n = 0;
  std::string_view line;
  while (limit <= 0 || n < limit) {
    TESSERA_ASSIGN_OR_RETURN(bool more, reader->Next(&line));
    if (!more) break;
    if (!Blank(line)) ++n;
  }
  return n;
}

Result<CriteoExamples> LoadCriteoRange(const std::string& path, int64_t begin, int64_t end) {
  if (begin < 0 || end < begin) {
    return Status::InvalidArgument("bad example range [" + std::to_string(begin) + ", " +
                                   std::to_string(end) + ")");
  }
  TESSERA_ASSIGN_OR_RETURN(auto reader, GzLineReader::Open(path));
  CriteoExamples out;
  out.first_index = begin;
  const size_t n = static_cast<size_t>(end - begin);
  out.label.reserve(n);
  out.dense.reserve(n * kCriteoDense);
  out.keys.reserve(n * kCriteoCategorical);
  int64_t index = 0;
  std::string_view line;
  CriteoRow row;
  while (index < end) {
    TESSERA_ASSIGN_OR_RETURN(bool more, reader->Next(&line));
    if (!more) {
      return Status::Corruption(path + ": " + std::to_string(index) +
                                " examples, expected at least " + std::to_string(end));
    }
    if (Blank(line)) continue;
    if (index++ < begin) continue;
    Status st = ParseCriteoLine(line, &row);
    if (!st.ok()) return Status::Corruption(reader->where() + ": " + st.message());
    out.label.push_back(row.label);
    out.dense.insert(out.dense.end(), row.dense, row.dense + kCriteoDense);
    out.keys.insert(out.keys.end(), row.keys, row.keys + kCriteoCategorical);
  }
  out.num_examples = end - begin;
  out.total_examples = out.num_examples;
  return out;
}

Result<CriteoPaths> CriteoSplitPaths(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto find = [&](const char* name) -> std::string {
    for (const char* ext : {".gz", ""}) {
      const std::string p = (fs::path(dir) / (std::string(name) + ext)).string();
      if (fs::is_regular_file(p, ec)) return p;
    }
    return "";
  };
  CriteoPaths out;
  out.train = find("train.txt");
  if (out.train.empty()) {
    return Status::NotFound(
        dir +
        ": no Criteo training file (train.txt.gz or train.txt) in the directory "
        "(`tessera datagen criteo -o " +
        dir + "` writes one)");
  }
  out.valid = find("valid.txt");
  return out;
}

Result<CriteoPlan> PlanCriteo(const CriteoPaths& paths, int rank, int world, int64_t train_limit,
                              int64_t test_limit) {
  if (world < 1 || rank < 0 || rank >= world || train_limit < 0 || test_limit < 0) {
    return Status::InvalidArgument("bad load options: rank " + std::to_string(rank) + " of " +
                                   std::to_string(world));
  }
  CriteoPlan plan;
  int64_t train_n = 0;
  if (!paths.valid.empty()) {
    TESSERA_ASSIGN_OR_RETURN(train_n, CountCriteoExamples(paths.train, train_limit));
    TESSERA_ASSIGN_OR_RETURN(plan.eval_end, CountCriteoExamples(paths.valid, test_limit));
  } else {
    TESSERA_ASSIGN_OR_RETURN(const int64_t all, CountCriteoExamples(paths.train));
    const int64_t held = all / 7;
    train_n = all - held;
    if (train_limit > 0) train_n = std::min(train_n, train_limit);
    plan.eval_begin = all - held;
    plan.eval_end = test_limit > 0 ? std::min(all, plan.eval_begin + test_limit) : all;
  }
  if (train_n < world) {
    return Status::InvalidArgument(paths.train + ": " + std::to_string(train_n) +
                                   " training examples for " + std::to_string(world) + " workers");
  }
  const ExampleRange r = ShardRange(train_n, rank, world);
  plan.total_train = train_n;
  plan.train_begin = r.begin;
  plan.train_end = r.end;
  return plan;
}

}  // namespace tessera::data
