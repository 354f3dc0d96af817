#include "worker/data/libsvm.h"

#include <charconv>
#include <cmath>
#include <filesystem>

#include "worker/data/gz_lines.h"

namespace tessera::data {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view NextToken(std::string_view* rest) {
  size_t b = 0;
  while (b < rest->size() && IsSpace((*rest)[b])) ++b;
  size_t e = b;
  while (e < rest->size() && !IsSpace((*rest)[e])) ++e;
  std::string_view tok = rest->substr(b, e - b);
  rest->remove_prefix(e);
  return tok;
}

bool ParseFloat(std::string_view s, float* out) {
  // from_chars rejects a leading '+', which LIBSVM labels use ("+1").
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}

}  // namespace

Result<SparseExamples> LoadLibsvm(const std::string& path, const LoadOptions& options) {
  if (options.world < 1 || options.rank < 0 || options.rank >= options.world || options.limit < 0) {
    return Status::InvalidArgument("bad load options: rank " + std::to_string(options.rank) +
                                   " of " + std::to_string(options.world) + ", limit " +
                                   std::to_string(options.limit));
  }
  TESSERA_ASSIGN_OR_RETURN(auto reader, GzLineReader::Open(path));
  // Parse everything (the shard bounds need N), keeping all examples; a9a-sized files
  // are small, and this keeps the parse and the error reporting in one pass.
  SparseExamples all;
  std::string_view line;
  for (;;) {
    TESSERA_ASSIGN_OR_RETURN(bool more, reader->Next(&line));
    if (!more) break;
    if (options.limit > 0 && all.num_examples == options.limit) break;
    std::string_view rest = line;
    std::string_view tok = NextToken(&rest);
    if (tok.empty() || tok[0] == '#') continue;
    float y;
    if (!ParseFloat(tok, &y)) {
      return Status::Corruption(reader->where() + ": bad label '" + std::string(tok) + "'");
    }
    uint32_t prev = 0;
    for (tok = NextToken(&rest); !tok.empty(); tok = NextToken(&rest)) {
      if (tok[0] == '#') break;  // trailing comment
      const size_t colon = tok.find(':');
      uint64_t index = 0;
      float v = 0;
      const auto r = colon == std::string_view::npos
                         ? std::from_chars_result{tok.data(), std::errc::invalid_argument}
                         : std::from_chars(tok.data(), tok.data() + colon, index);
      if (r.ec != std::errc() || r.ptr != tok.data() + colon || index < 1 || index > UINT32_MAX ||
          !ParseFloat(tok.substr(colon + 1), &v)) {
        return Status::Corruption(
            reader->where() + ": bad feature '" + std::string(tok) +
            "' (expected <index>:<value> with index >= 1 and a finite value)");
      }
      if (index <= prev) {
        return Status::Corruption(reader->where() + ": feature index " + std::to_string(index) +
                                  " does not increase (after " + std::to_string(prev) + ")");
      }
      prev = static_cast<uint32_t>(index);
      all.feature.push_back(prev);
      all.value.push_back(v);
    }
    all.label.push_back(y > 0 ? 1.0f : 0.0f);
    all.offsets.push_back(static_cast<int64_t>(all.feature.size()));
    ++all.num_examples;
  }
  const ExampleRange r = ShardRange(all.num_examples, options.rank, options.world);
  SparseExamples out;
  out.total_examples = all.num_examples;
  out.first_index = r.begin;
  out.num_examples = r.size();
  const int64_t fb = all.offsets[r.begin], fe = all.offsets[r.end];
  out.feature.assign(all.feature.begin() + fb, all.feature.begin() + fe);
  out.value.assign(all.value.begin() + fb, all.value.begin() + fe);
  out.label.assign(all.label.begin() + r.begin, all.label.begin() + r.end);
  out.offsets.resize(r.size() + 1);
  for (int64_t i = 0; i <= r.size(); ++i) out.offsets[i] = all.offsets[r.begin + i] - fb;
  for (uint32_t f : out.feature) out.max_feature = std::max(out.max_feature, f);
  return out;
}

Result<std::string> LibsvmSplitPath(const std::string& dir, Split split) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* name : {"a9a", "train"}) {
    for (const char* ext : {".gz", ""}) {
      const std::string train = (fs::path(dir) / (std::string(name) + ext)).string();
      if (!fs::is_regular_file(train, ec)) continue;
      if (split == Split::kTrain) return train;
      const std::string test = (fs::path(dir) / (std::string(name) + ".t" + ext)).string();
      if (fs::is_regular_file(test, ec)) return test;
      return Status::NotFound(test + ": no such file (the test split next to " + train + ")");
    }
  }
  return Status::NotFound(
      dir + ": no LIBSVM training file (a9a.gz, a9a, train.gz or train) in the directory");
}

}  // namespace tessera::data
