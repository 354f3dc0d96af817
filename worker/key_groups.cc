#include "worker/key_groups.h"

#include <cstring>
#include <string>

#include "common/row_width.h"

namespace tessera::worker {

Status GroupKeys(std::span<const Key> keys, KeyGroups* out) {
  const size_t n = keys.size();
  if (n >= (uint64_t{1} << 32)) return Status::InvalidArgument(std::to_string(n) + " keys in one request (limit 2^32 - 1)");
  out->unique.clear();
  out->begin.clear();
  out->positions.resize(n);
  if (n == 0) {
    out->begin.push_back(0);
    return Status::OK();
  }
  // A byte in which every key agrees orders nothing and is skipped: the bytes that vary
  // are those of (OR of the keys) ^ (AND of the keys). Their histograms in one pass.
  uint64_t any = 0, all = ~uint64_t{0};
  for (const Key k : keys) {
    any |= k;
    all &= k;
  }
  int bytes[8];
  int passes = 0;
  for (int b = 0; b < 8; ++b) {
    if (((any ^ all) >> (8 * b)) & 0xff) bytes[passes++] = b;
  }
  std::vector<uint32_t> hist(static_cast<size_t>(passes) * 256, 0);
  for (const Key k : keys) {
    for (int p = 0; p < passes; ++p) ++hist[p * 256 + ((k >> (8 * bytes[p])) & 0xff)];
  }
  std::vector<uint32_t> cur(n), next(n);
  for (uint32_t i = 0; i < n; ++i) cur[i] = i;
  for (int p = 0; p < passes; ++p) {
    const int b = bytes[p];
    uint32_t* h = hist.data() + p * 256;
    uint32_t sum = 0;
    for (int v = 0; v < 256; ++v) {
      const uint32_t c = h[v];
      h[v] = sum;
      sum += c;
    }
    for (const uint32_t i : cur) next[h[(keys[i] >> (8 * b)) & 0xff]++] = i;
    cur.swap(next);
  }
  for (uint32_t t = 0; t < n; ++t) {
    const Key k = keys[cur[t]];
    if (out->unique.empty() || out->unique.back() != k) {
      out->unique.push_back(k);
      out->begin.push_back(t);
    }
  }
  out->begin.push_back(static_cast<uint32_t>(n));
  out->positions.swap(cur);
  return Status::OK();
}

Status GroupAndSplitKeys(std::span<const Key> keys, const ShardMap& map, uint32_t param_id, KeyGroups* out) {
  TESSERA_RETURN_IF_ERROR(GroupKeys(keys, out));
  TESSERA_ASSIGN_OR_RETURN(out->split, map.SplitSparse(param_id, out->unique));
  return Status::OK();
}

namespace {

// SumGroups for rows of kWidth floats (0: `width`, known only at run time). With the
// width a constant a row's copy is a few vector moves, not a call to memcpy: 4096 calls
// for 64-byte rows were most of the function.
template <uint64_t kWidth>
void SumGroupsOf(const KeyGroups& groups, std::span<const uint64_t> rows, const float* grads, uint64_t width,
                 float* out) {
  const uint64_t w = kWidth != 0 ? kWidth : width;
  for (size_t j = 0; j < rows.size(); ++j) {
    const uint64_t u = rows[j];
    float* __restrict dst = out + j * w;
    const uint32_t b = groups.begin[u], e = groups.begin[u + 1];
    std::memcpy(dst, grads + uint64_t{groups.positions[b]} * w, w * sizeof(float));
    for (uint32_t t = b + 1; t < e; ++t) {
      const float* __restrict g = grads + uint64_t{groups.positions[t]} * w;
      for (uint64_t c = 0; c < w; ++c) dst[c] = dst[c] + g[c];
    }
  }
}

// ScatterGroups, specialised like SumGroupsOf (common/row_width.h says why).
template <uint64_t kWidth>
void ScatterGroupsOf(const KeyGroups& groups, std::span<const uint64_t> rows, const float* rows_in, uint64_t width,
                     float* out) {
  const uint64_t w = kWidth != 0 ? kWidth : width;
  for (size_t j = 0; j < rows.size(); ++j) {
    const uint64_t u = rows[j];
    const float* src = rows_in + j * w;
    for (uint32_t t = groups.begin[u]; t < groups.begin[u + 1]; ++t) {
      std::memcpy(out + uint64_t{groups.positions[t]} * w, src, w * sizeof(float));
    }
  }
}

}  // namespace

void ScatterGroups(const KeyGroups& groups, std::span<const uint64_t> rows, const float* rows_in, uint64_t width,
                   float* out) {
  WithRowWidth(width, [&]<uint64_t kWidth>() { ScatterGroupsOf<kWidth>(groups, rows, rows_in, width, out); });
}

void SumGroups(const KeyGroups& groups, std::span<const uint64_t> rows, const float* grads, uint64_t width,
               float* out) {
  WithRowWidth(width, [&]<uint64_t kWidth>() { SumGroupsOf<kWidth>(groups, rows, grads, width, out); });
}

}  // namespace tessera::worker
