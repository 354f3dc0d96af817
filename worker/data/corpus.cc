#include "worker/data/corpus.h"

#include <algorithm>
#include <cmath>

#include "worker/data/dataset.h"
#include "worker/data/gz_lines.h"

namespace tessera::data {

int32_t Vocab::Find(const std::string& w) const {
  auto it = ids.find(w);
  return it == ids.end() ? -1 : it->second;
}

Result<Corpus> LoadCorpus(const std::string& path, const CorpusOptions& o) {
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world || o.limit < 0 || o.min_count < 1 ||
      !(o.heldout_fraction >= 0 && o.heldout_fraction <= 0.5)) {
    return Status::InvalidArgument("bad corpus options: rank " + std::to_string(o.rank) + " of " +
                                   std::to_string(o.world) + ", limit " + std::to_string(o.limit) +
                                   ", min_count " + std::to_string(o.min_count) +
                                   ", heldout_fraction " + std::to_string(o.heldout_fraction));
  }
  TESSERA_ASSIGN_OR_RETURN(std::vector<std::string> files, TextFilesAt(path));
  // Intern tokens while reading: the corpus as ids into a first-seen dictionary.
  std::unordered_map<std::string, int32_t> seen;
  std::vector<std::string> seen_words;
  std::vector<int32_t> seq;
  std::string word;
  bool full = false;
  for (const std::string& file : files) {
    TESSERA_ASSIGN_OR_RETURN(auto reader, GzLineReader::Open(file));
    std::string_view line;
    while (!full) {
      TESSERA_ASSIGN_OR_RETURN(bool more, reader->Next(&line));
      if (!more) break;
      size_t i = 0;
      while (i < line.size() && !full) {
        const unsigned char c = static_cast<unsigned char>(line[i]);
        if (c == ' ' || c == '\t' || c == '\r') {
          ++i;
          continue;
        }
        size_t e = i;
        for (; e < line.size(); ++e) {
          const unsigned char d = static_cast<unsigned char>(line[e]);
          if (d == ' ' || d == '\t' || d == '\r') break;
          if (d < 0x21 || d > 0x7e) {
            return Status::Corruption(reader->where() + ": byte 0x" + "0123456789abcdef"[d >> 4] +
                                      "0123456789abcdef"[d & 15] + " at column " +
                                      std::to_string(e + 1) +
                                      " is not printable ASCII (expected cleaned text)");
          }
        }
        word.assign(line.substr(i, e - i));
        auto [it, inserted] = seen.try_emplace(word, static_cast<int32_t>(seen_words.size()));
        if (inserted) seen_words.push_back(word);
        seq.push_back(it->second);
        i = e;
        if (o.limit > 0 && static_cast<int64_t>(seq.size()) == o.limit) full = true;
      }
    }
    if (full) break;
  }
  const int64_t n = static_cast<int64_t>(seq.size());
  const int64_t n_heldout =
      static_cast<int64_t>(std::floor(static_cast<double>(n) * o.heldout_fraction));
  const int64_t n_train = n - n_heldout;

  std::vector<int64_t> counts(seen_words.size(), 0);
  for (int64_t i = 0; i < n_train; ++i) ++counts[seq[i]];
  std::vector<int32_t> order;
  for (size_t w = 0; w < counts.size(); ++w) {
    if (counts[w] >= o.min_count) order.push_back(static_cast<int32_t>(w));
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return counts[a] != counts[b] ? counts[a] > counts[b] : seen_words[a] < seen_words[b];
  });
  if (order.empty()) {
    return Status::InvalidArgument(path +
                                   ": no word occurs --min_count=" + std::to_string(o.min_count) +
                                   " times in the " + std::to_string(n_train) + " training tokens");
  }
  Corpus c;
  std::vector<int32_t> remap(seen_words.size(), -1);
  for (size_t id = 0; id < order.size(); ++id) {
    remap[order[id]] = static_cast<int32_t>(id);
    c.vocab.words.push_back(seen_words[order[id]]);
    c.vocab.counts.push_back(counts[order[id]]);
    c.vocab.ids.emplace(seen_words[order[id]], static_cast<int32_t>(id));
    c.vocab.total += counts[order[id]];
  }
  std::vector<int32_t> train;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = remap[seq[i]];
    if (id < 0) continue;
    (i < n_train ? train : c.heldout).push_back(id);
  }
  c.total_train = static_cast<int64_t>(train.size());
  const ExampleRange r = ShardRange(c.total_train, o.rank, o.world);
  c.first_index = r.begin;
  c.train.assign(train.begin() + r.begin, train.begin() + r.end);
  return c;
}

std::vector<int32_t> UnigramTable(const Vocab& vocab, double power, int64_t size) {
  double norm = 0;
  for (int64_t c : vocab.counts) norm += std::pow(static_cast<double>(c), power);
  std::vector<int32_t> table(static_cast<size_t>(size));
  int32_t w = 0;
  double cum = std::pow(static_cast<double>(vocab.counts[0]), power) / norm;
  for (int64_t i = 0; i < size; ++i) {
    table[i] = w;
    if (static_cast<double>(i + 1) / static_cast<double>(size) > cum && w + 1 < vocab.size()) {
      ++w;
      cum += std::pow(static_cast<double>(vocab.counts[w]), power) / norm;
    }
  }
  return table;
}

std::vector<float> KeepProbabilities(const Vocab& vocab, double t) {
  std::vector<float> keep(vocab.counts.size(), 1.0f);
  if (t <= 0) return keep;
  const double tn = t * static_cast<double>(vocab.total);
  for (size_t w = 0; w < keep.size(); ++w) {
    const double f = static_cast<double>(vocab.counts[w]);
    keep[w] = static_cast<float>(std::min(1.0, (std::sqrt(f / tn) + 1.0) * tn / f));
  }
  return keep;
}

}  // namespace tessera::data
