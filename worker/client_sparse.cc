// The worker client's sparse requests: PushSparse and PullSparse (a table's rows by key,
// split by server, duplicate keys merged on the way out and scattered on the way back),
// and the key groupings a push reuses from its table's last pull (GroupsOf), each with its
// split by server (the map is fixed once DeclareParams returns, so a kept split holds).
#include <cstring>

#include "kernels/ops.h"
#include "worker/client.h"
#include "worker/client_metrics.h"

namespace tessera::worker {

using wire::Op;
using wire::OutMessage;

Result<std::shared_ptr<const KeyGroups>> Client::GroupsOf(uint32_t param_id, std::span<const Key> keys, bool keep) {
  if (!keep) {
    std::lock_guard<std::mutex> l(groups_mu_);
    if (param_id < kept_groups_.size()) {
      const KeptGroups& k = kept_groups_[param_id];
      if (k.groups && k.keys.size() == keys.size() &&
          (keys.empty() || std::memcmp(k.keys.data(), keys.data(), keys.size_bytes()) == 0)) {
        return k.groups;
      }
    }
  }
  auto groups = std::make_shared<KeyGroups>();
  TESSERA_RETURN_IF_ERROR(GroupAndSplitKeys(keys, *map_, param_id, groups.get()));
  stats_.key_groupings++;
  if (keep) {
    std::lock_guard<std::mutex> l(groups_mu_);
    if (param_id >= kept_groups_.size()) kept_groups_.resize(param_id + 1);
    kept_groups_[param_id].keys.assign(keys.begin(), keys.end());
    kept_groups_[param_id].groups = groups;
  }
  return std::shared_ptr<const KeyGroups>(std::move(groups));
}

Handle Client::PushSparse(uint32_t param_id, std::span<const Key> keys, TensorView rows, int64_t step) {
  auto found = ParamOfKind(param_id, ParamKind::kSparse);
  if (!found.ok()) return Handle(found.status());
  const ParamSpec* spec = *found;
  const uint64_t width = static_cast<uint64_t>(spec->numel());
  Status st = CheckHostF32(rows, keys.size() * width, "sparse gradient rows");
  if (!st.ok()) return Handle(st.WithContext(spec->name));
  // Merge duplicates: only distinct keys travel, ascending (what a server trusts without
  // sorting), each server's summed rows written straight into its message buffer.
  auto grouped = GroupsOf(param_id, keys, /*keep=*/false);
  if (!grouped.ok()) return Handle(grouped.status().WithContext(spec->name));
  const KeyGroups& groups = **grouped;
  const SparseSplit* split = &groups.split;
  const uint32_t S = map_->num_servers();
  Handle h = Handle::Pending(static_cast<int>(S));
  for (uint32_t s = 0; s < S; ++s) {
    const auto& skeys = split->keys[s];
    const auto& spos = split->positions[s];
    OutMessage m = NewData(Op::PUSH, param_id, ParamKind::kSparse, step);
    m.header().getBody().getData().setNumKeys(skeys.size());
    Buffer kb = Buffer::Allocate(skeys.size() * sizeof(Key));
    if (!skeys.empty()) std::memcpy(kb.data(), skeys.data(), skeys.size() * sizeof(Key));
    const uint64_t vbytes = skeys.size() * width * sizeof(float);
    Buffer vb;
    // A leading caller stands in for the loop (wire/reactor.h), so it may take a slot of a
    // same-host server's arena and sum the rows straight into it: sent from there without
    // ShmTxArena::Put's copy, 2-5 % of a 1x1 job's samples (docs/benchmarks-sparse-threads.md,
    // branch sp39). The slot is written here, off the loop lock,
    // before SendToServer takes the lock again to send it; the Buffer is heap memory when
    // the server has no channel (yet), and dropped unsent it frees its slot.
    if (leader_ != nullptr && s < server_tcp_only_.size() && !server_tcp_only_[s] && vbytes > 0) {
      reactor_->RunInline([&] { vb = servers_[s]->AllocatePayload({}, vbytes); });
    }
    if (vb.empty()) vb = Buffer::Allocate(vbytes);
    if (!spos.empty()) SumGroups(groups, spos, static_cast<const float*>(rows.data), width, vb.as<float>());
    stats_.keys_pushed += skeys.size();
    Status a = m.AddPayload(std::move(kb), DType::kU64, skeys.size());
    if (a.ok()) a = m.AddPayload(std::move(vb), DType::kF32, skeys.size() * width);
    if (!a.ok()) {
      h.CompletePart(a);
      continue;
    }
    Part p;
    p.handle = h;
    p.param_id = param_id;
    p.what = "sparse push of '" + spec->name + "' (" + std::to_string(skeys.size()) + " keys) to server " + std::to_string(s);
    SendToServer(s, std::move(m), std::move(p));
  }
  return h;
}

Handle Client::PullSparse(uint32_t param_id, std::span<const Key> keys, TensorView out, int64_t step) {
  auto found = ParamOfKind(param_id, ParamKind::kSparse);
  if (!found.ok()) return Handle(found.status());
  const ParamSpec* spec = *found;
  const uint64_t width = static_cast<uint64_t>(spec->numel());
  Status st = CheckHostF32(out, keys.size() * width, "sparse output rows");
  if (!st.ok()) return Handle(st.WithContext(spec->name));
  // Distinct keys, each group remembering every output row that wants it (flat: no
  // allocation per key).
  auto grouped = GroupsOf(param_id, keys, /*keep=*/true);
  if (!grouped.ok()) return Handle(grouped.status().WithContext(spec->name));
  std::shared_ptr<const KeyGroups> groups = *std::move(grouped);
  const SparseSplit* split = &groups->split;
  const uint32_t S = map_->num_servers();
  int parts = 0;
  for (uint32_t s = 0; s < S; ++s) parts += split->keys[s].empty() ? 0 : 1;
  Handle h = Handle::Pending(parts);
  for (uint32_t s = 0; s < S; ++s) {
    const auto& skeys = split->keys[s];
    if (skeys.empty()) continue;
    OutMessage m = NewData(Op::PULL, param_id, ParamKind::kSparse, step);
    m.header().getBody().getData().setNumKeys(skeys.size());
    Buffer kb = Buffer::Allocate(skeys.size() * sizeof(Key));
    std::memcpy(kb.data(), skeys.data(), skeys.size() * sizeof(Key));
    stats_.keys_pulled += skeys.size();
    Status a = m.AddPayload(std::move(kb), DType::kU64, skeys.size());
    if (!a.ok()) {
      h.CompletePart(a);
      continue;
    }
    Part p;
    p.handle = h;
    p.param_id = param_id;
    p.out = out.as<float>();
    p.out_elements = skeys.size() * width;
    p.row_width = width;
    p.groups = groups;
    p.group_of = split->positions[s];  // a view: `groups` holds it, and the push reuses it
    p.what = "sparse pull of '" + spec->name + "' (" + std::to_string(skeys.size()) + " keys) from server " + std::to_string(s);
    SendToServer(s, std::move(m), std::move(p));
  }
  return h;
}

}  // namespace tessera::worker
