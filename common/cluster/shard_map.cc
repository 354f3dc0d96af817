#include "common/cluster/shard_map.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <queue>
#include <unordered_set>
#include <utility>

#include "common/hash.h"

namespace tessera {
namespace {

constexpr uint64_t kMaxDenseElements = uint64_t{1} << 48;

std::string ParamName(uint32_t id, const ParamSpec& spec) {
  return "param " + std::to_string(id) + " '" + spec.name + "'";
}

std::string RangeString(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Elements of a validated dense spec.
uint64_t DenseElements(const ParamSpec& spec) { return static_cast<uint64_t>(spec.numel()); }

Status ValidateSync(const SyncPolicy& sync) {
  const bool mode_ok =
      sync.mode == SyncMode::kBsp || sync.mode == SyncMode::kSsp || sync.mode == SyncMode::kAsp;
  if (!mode_ok || sync.staleness < 0 || sync.staleness > kMaxStaleness ||
      (sync.mode != SyncMode::kSsp && sync.staleness != 0)) {
    return Status::InvalidArgument("invalid sync policy (mode " +
                                   std::to_string(static_cast<int>(sync.mode)) + ", staleness " +
                                   std::to_string(sync.staleness) + ")");
  }
  return Status::OK();
}

// Checks everything that does not depend on the layouts.
Status ValidateCommon(const ShardMapData& d) {
  if (d.servers.empty()) return Status::InvalidArgument("shard map: no servers");
  if (d.servers.size() > UINT32_MAX) return Status::InvalidArgument("shard map: too many servers");
  if (d.num_workers == 0) return Status::InvalidArgument("shard map: num_workers must be >= 1");
  if (d.grad_reduce != GradReduce::kMean && d.grad_reduce != GradReduce::kSum) {
    return Status::InvalidArgument("shard map: invalid grad_reduce");
  }
  TESSERA_RETURN_IF_ERROR_CTX(ValidateSync(d.sync), "shard map");
  if (d.params.size() >= UINT32_MAX) return Status::InvalidArgument("shard map: too many params");
  std::unordered_set<std::string_view> names;
  for (uint32_t id = 0; id < d.params.size(); ++id) {
    const ParamSpec& p = d.params[id];
    TESSERA_RETURN_IF_ERROR_CTX(ValidateParamSpec(p), "param " + std::to_string(id));
    if (!names.insert(p.name).second) {
      return Status::InvalidArgument("duplicate parameter name '" + p.name + "' (param " +
                                     std::to_string(id) + ")");
    }
  }
  return Status::OK();
}

}  // namespace

KeyRange DenseLayout::ChunkRange(uint64_t i) const {
  const uint64_t begin = i * chunk_elements;
  return {begin, std::min(begin + chunk_elements, num_elements)};
}

Status ValidateParamSpec(const ParamSpec& spec) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("parameter '" + spec.name + "': " + why);
  };
  if (spec.name.empty()) return bad("empty name");
  if (spec.kind != ParamKind::kDense && spec.kind != ParamKind::kSparse) return bad("unknown kind");
  if (!IsValidDType(static_cast<uint8_t>(spec.dtype))) {
    return bad("unknown dtype " + std::to_string(static_cast<int>(spec.dtype)));
  }
  if (!IsFloating(spec.dtype)) {
    return bad("dtype " + std::string(DTypeName(spec.dtype)) + " is not a floating type");
  }
  if (static_cast<uint8_t>(spec.init) > static_cast<uint8_t>(InitKind::kConstant)) {
    return bad("unknown init kind " + std::to_string(static_cast<int>(spec.init)));
  }
  if (static_cast<uint8_t>(spec.optimizer.kind) > static_cast<uint8_t>(OptimizerKind::kAdamW)) {
    return bad("unknown optimizer kind " + std::to_string(static_cast<int>(spec.optimizer.kind)));
  }
  if (spec.kind == ParamKind::kSparse) {
    if (spec.shape.size() != 1 || spec.shape[0] <= 0 || spec.shape[0] > int64_t{UINT32_MAX}) {
      return bad("a sparse table's shape must be {row_width} with 0 < row_width < 2^32, got " +
                 ShapeToString(spec.shape));
    }
    return Status::OK();
  }
  uint64_t n = 1;
  for (int64_t dim : spec.shape) {
    if (dim <= 0)
      return bad("zero-size or negative dimension in shape " + ShapeToString(spec.shape));
    if (static_cast<uint64_t>(dim) > kMaxDenseElements / n) {
      return bad("shape " + ShapeToString(spec.shape) + " has 2^48 elements or more");
    }
    n *= static_cast<uint64_t>(dim);
  }
  return Status::OK();
}

Result<ShardMap> ShardMap::Build(const ShardMapOptions& options,
                                 std::vector<ServerEndpoint> servers,
                                 std::vector<ParamSpec> params) {
  if (options.chunk_bytes == 0) return Status::InvalidArgument("chunk_bytes must be >= 1");
  ShardMapData d;
  d.version = options.version;
  d.servers = std::move(servers);
  d.params = std::move(params);
  d.sync = options.sync;
  d.num_workers = options.num_workers;
  d.grad_reduce = options.grad_reduce;
  TESSERA_RETURN_IF_ERROR(ValidateCommon(d));

  const uint32_t num_servers = static_cast<uint32_t>(d.servers.size());
  // Min-heap of (bytes so far, server index): the least-loaded server, lowest index on ties.
  using Load = std::pair<uint64_t, uint32_t>;
  std::priority_queue<Load, std::vector<Load>, std::greater<>> loads;
  for (uint32_t s = 0; s < num_servers; ++s) loads.push({0, s});

  for (uint32_t id = 0; id < d.params.size(); ++id) {
    const ParamSpec& p = d.params[id];
    if (p.kind == ParamKind::kSparse) {
      d.sparse.push_back({id, static_cast<uint32_t>(p.shape[0])});
      continue;
    }
    const uint64_t elem = DTypeSize(p.dtype);
    DenseLayout layout;
    layout.param_id = id;
    layout.num_elements = DenseElements(p);
    layout.chunk_elements = std::max<uint64_t>(1, options.chunk_bytes / elem);
    const uint64_t chunks =
        (layout.num_elements + layout.chunk_elements - 1) / layout.chunk_elements;
    layout.chunk_server.reserve(chunks);
    for (uint64_t c = 0; c < chunks; ++c) {
      auto [bytes, server] = loads.top();
      loads.pop();
      layout.chunk_server.push_back(server);
      loads.push({bytes + layout.ChunkRange(c).size() * elem, server});
    }
    d.dense.push_back(std::move(layout));
  }
  return FromData(std::move(d));
}

Result<ShardMap> ShardMap::FromData(ShardMapData data) {
  TESSERA_RETURN_IF_ERROR(ValidateCommon(data));
  ShardMap map(std::move(data));
  TESSERA_RETURN_IF_ERROR(map.Index());
  return map;
}

Status ShardMap::Index() {
  const size_t num_params = data_.params.size();
  const uint32_t num_servers = static_cast<uint32_t>(data_.servers.size());
  dense_index_.assign(num_params, -1);
  server_bytes_.assign(num_servers, 0);
  std::vector<bool> seen(num_params, false);

  for (size_t i = 0; i < data_.dense.size(); ++i) {
    const DenseLayout& l = data_.dense[i];
    if (l.param_id >= num_params) {
      return Status::InvalidArgument("dense layout for unknown param " +
                                     std::to_string(l.param_id));
    }
    const ParamSpec& p = data_.params[l.param_id];
    const std::string name = ParamName(l.param_id, p);
    if (p.kind != ParamKind::kDense)
      return Status::InvalidArgument(name + " is sparse but has a dense layout");
    if (seen[l.param_id]) return Status::InvalidArgument(name + " has two layouts");
    seen[l.param_id] = true;
    if (l.num_elements != DenseElements(p)) {
      return Status::InvalidArgument(name + ": layout has " + std::to_string(l.num_elements) +
                                     " elements, shape " + ShapeToString(p.shape) + " has " +
                                     std::to_string(DenseElements(p)));
    }
    if (l.chunk_elements == 0) return Status::InvalidArgument(name + ": chunk_elements is 0");
    const uint64_t chunks = (l.num_elements + l.chunk_elements - 1) / l.chunk_elements;
    if (l.chunk_server.size() != chunks) {
      return Status::InvalidArgument(name + ": " + std::to_string(l.chunk_server.size()) +
                                     " chunk owners for " + std::to_string(chunks) + " chunks");
    }
    const uint64_t elem = DTypeSize(p.dtype);
    for (uint64_t c = 0; c < chunks; ++c) {
      const uint32_t s = l.chunk_server[c];
      if (s >= num_servers) {
        return Status::InvalidArgument(name + ": chunk " + std::to_string(c) +
                                       " placed on server " + std::to_string(s) + " of " +
                                       std::to_string(num_servers));
      }
      server_bytes_[s] += l.ChunkRange(c).size() * elem;
    }
    dense_index_[l.param_id] = static_cast<int64_t>(i);
  }
  for (const SparseLayout& l : data_.sparse) {
    if (l.param_id >= num_params) {
      return Status::InvalidArgument("sparse layout for unknown param " +
                                     std::to_string(l.param_id));
    }
    const ParamSpec& p = data_.params[l.param_id];
    const std::string name = ParamName(l.param_id, p);
    if (p.kind != ParamKind::kSparse)
      return Status::InvalidArgument(name + " is dense but has a sparse layout");
    if (seen[l.param_id]) return Status::InvalidArgument(name + " has two layouts");
    seen[l.param_id] = true;
    if (l.row_width != static_cast<uint64_t>(p.shape[0])) {
      return Status::InvalidArgument(name + ": layout row width " + std::to_string(l.row_width) +
                                     " differs from the declared " + std::to_string(p.shape[0]));
    }
  }
  for (uint32_t id = 0; id < num_params; ++id) {
    if (!seen[id])
      return Status::InvalidArgument(ParamName(id, data_.params[id]) + " has no layout");
  }
  return Status::OK();
}

const ParamSpec* ShardMap::param(uint32_t param_id) const {
  return param_id < data_.params.size() ? &data_.params[param_id] : nullptr;
}

const DenseLayout* ShardMap::dense_layout(uint32_t param_id) const {
  if (param_id >= dense_index_.size() || dense_index_[param_id] < 0) return nullptr;
  return &data_.dense[static_cast<size_t>(dense_index_[param_id])];
}

uint64_t ShardMap::ServerBytes(uint32_t server) const {
  return server < server_bytes_.size() ? server_bytes_[server] : 0;
}

uint32_t ShardMap::SparsePartitionOf(uint32_t table_id, Key key) {
  return static_cast<uint32_t>(Mix64(key ^ Mix64(table_id)) % kSparsePartitions);
}

uint32_t ShardMap::SparseServerOf(uint32_t table_id, Key key, uint32_t num_servers) {
  return SparsePartitionOf(table_id, key) % num_servers;
}

namespace {

// Shared by SplitDense and CheckDenseOwner: the layout of a dense param and a valid range.
Result<const DenseLayout*> DenseFor(const ShardMap& map, uint32_t param_id, uint64_t begin,
                                    uint64_t end) {
  const ParamSpec* p = map.param(param_id);
  if (p == nullptr) {
    return Status::NotFound("unknown param " + std::to_string(param_id) + " (shard map version " +
                            std::to_string(map.version()) + " has " +
                            std::to_string(map.num_params()) + ")");
  }
  const DenseLayout* l = map.dense_layout(param_id);
  if (l == nullptr) {
    return Status::InvalidArgument(ParamName(param_id, *p) + " is sparse, not dense");
  }
  if (begin >= end || end > l->num_elements) {
    return Status::InvalidArgument(ParamName(param_id, *p) + ": range " + RangeString(begin, end) +
                                   " is empty or outside [0, " + std::to_string(l->num_elements) +
                                   ")");
  }
  return l;
}

Status SparseFor(const ShardMap& map, uint32_t param_id) {
  const ParamSpec* p = map.param(param_id);
  if (p == nullptr) {
    return Status::NotFound("unknown param " + std::to_string(param_id) + " (shard map version " +
                            std::to_string(map.version()) + " has " +
                            std::to_string(map.num_params()) + ")");
  }
  if (p->kind != ParamKind::kSparse) {
    return Status::InvalidArgument(ParamName(param_id, *p) + " is dense, not a sparse table");
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<DensePiece>> ShardMap::SplitDense(uint32_t param_id, uint64_t begin,
                                                     uint64_t end) const {
  TESSERA_ASSIGN_OR_RETURN(const DenseLayout* l, DenseFor(*this, param_id, begin, end));
  std::vector<DensePiece> pieces;
  const uint64_t first = begin / l->chunk_elements;
  const uint64_t last = (end - 1) / l->chunk_elements;
  for (uint64_t c = first; c <= last; ++c) {
    const KeyRange r = l->ChunkRange(c);
    const uint64_t b = std::max(begin, r.begin);
    const uint64_t e = std::min(end, r.end);
    const uint32_t s = l->chunk_server[c];
    if (!pieces.empty() && pieces.back().server == s && pieces.back().end == b) {
      pieces.back().end = e;
    } else {
      pieces.push_back({s, b, e});
    }
  }
  return pieces;
}

Result<SparseSplit> ShardMap::SplitSparse(uint32_t param_id, std::span<const Key> keys) const {
  TESSERA_RETURN_IF_ERROR(SparseFor(*this, param_id));
  SparseSplit split;
  const uint32_t S = num_servers();
  split.keys.resize(S);
  split.positions.resize(S);
  if (S == 1) {  // one owner: no hashing
    split.keys[0].assign(keys.begin(), keys.end());
    split.positions[0].resize(keys.size());
    std::iota(split.positions[0].begin(), split.positions[0].end(), uint64_t{0});
    return split;
  }
  // SparseServerOf with the table's hash taken once; each list reserved for its share
  // (the hash balances keys) plus slack, so a batch rarely reallocates.
  const uint64_t salt = Mix64(param_id);
  for (uint32_t s = 0; s < S; ++s) {
    split.keys[s].reserve(keys.size() / S + keys.size() / (4 * S) + 16);
    split.positions[s].reserve(keys.size() / S + keys.size() / (4 * S) + 16);
  }
  for (uint64_t i = 0; i < keys.size(); ++i) {
    const auto s = static_cast<uint32_t>(Mix64(keys[i] ^ salt) % kSparsePartitions % S);
    split.keys[s].push_back(keys[i]);
    split.positions[s].push_back(i);
  }
  return split;
}

Status ShardMap::CheckDenseOwner(uint32_t server, uint32_t param_id, uint64_t begin,
                                 uint64_t end) const {
  TESSERA_ASSIGN_OR_RETURN(const DenseLayout* l, DenseFor(*this, param_id, begin, end));
  const uint64_t first = begin / l->chunk_elements;
  const uint64_t last = (end - 1) / l->chunk_elements;
  for (uint64_t c = first; c <= last; ++c) {
    if (l->chunk_server[c] != server) {
      const KeyRange r = l->ChunkRange(c);
      return Status::InvalidArgument(ParamName(param_id, data_.params[param_id]) + ": range " +
                                     RangeString(begin, end) + " is not owned by server " +
                                     std::to_string(server) + ": elements " +
                                     RangeString(std::max(begin, r.begin), std::min(end, r.end)) +
                                     " live on server " + std::to_string(l->chunk_server[c]) +
                                     " (shard map version " + std::to_string(version()) + ")");
    }
  }
  return Status::OK();
}

Status ShardMap::CheckKeyOwner(uint32_t server, uint32_t param_id, Key key) const {
  TESSERA_RETURN_IF_ERROR(SparseFor(*this, param_id));
  const uint32_t owner = SparseServerOf(param_id, key, num_servers());
  if (owner != server) {
    return Status::InvalidArgument(
        ParamName(param_id, data_.params[param_id]) + ": key " + std::to_string(key) +
        " is not owned by server " + std::to_string(server) + "; it lives on server " +
        std::to_string(owner) + " (shard map version " + std::to_string(version()) + ")");
  }
  return Status::OK();
}

}  // namespace tessera
