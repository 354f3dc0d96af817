// Client::PushTopK: the dense push of --compress=topk:R on the parameter-server path.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "worker/client.h"

namespace tessera::worker {

using wire::Op;
using wire::OutMessage;

Handle Client::PushTopK(uint32_t param_id, std::span<const uint32_t> indices, std::span<const float> values,
                        int64_t step) {
  auto found = ParamOfKind(param_id, ParamKind::kDense);
  if (!found.ok()) return Handle(found.status());
  const ParamSpec* spec = *found;
  const uint64_t n = static_cast<uint64_t>(spec->numel());
  if (indices.size() != values.size()) {
    return Handle(Status::InvalidArgument(spec->name + ": " + std::to_string(indices.size()) + " indices but " +
                                          std::to_string(values.size()) + " values"));
  }
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] >= n || (i > 0 && indices[i] <= indices[i - 1])) {
      return Handle(Status::InvalidArgument(spec->name + ": top-k index " + std::to_string(indices[i]) +
                                            " is past the end or not ascending"));
    }
  }
  auto pieces = map_->SplitDense(param_id, 0, n);
  if (!pieces.ok()) return Handle(pieces.status());
  Handle h = Handle::Pending(static_cast<int>(pieces->size()));
  for (const DensePiece& piece : *pieces) {
    if (piece.end - piece.begin > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      h.CompletePart(Status::InvalidArgument(spec->name + ": a piece of over 2^31 elements cannot be sent top-k"));
      continue;
    }
    const auto first = std::lower_bound(indices.begin(), indices.end(), piece.begin);
    const auto last = std::lower_bound(first, indices.end(), piece.end);
    const size_t k = static_cast<size_t>(last - first), at = static_cast<size_t>(first - indices.begin());
    Buffer ob = Buffer::Allocate(k * sizeof(int32_t));
    Buffer vb = Buffer::Allocate(k * sizeof(float));
    for (size_t j = 0; j < k; ++j) ob.as<int32_t>()[j] = static_cast<int32_t>(first[j] - piece.begin);
    if (k > 0) std::memcpy(vb.data(), values.data() + at, k * sizeof(float));
    OutMessage m = NewDensePiece(Op::PUSH, param_id, piece, step);
    m.header().getBody().getData().setNumKeys(k);
    Status st = m.AddPayload(std::move(ob), DType::kI32, k);
    if (st.ok()) st = m.AddPayload(std::move(vb), DType::kF32, k);
    if (!st.ok()) {
      h.CompletePart(st);
      continue;
    }
    Part p;
    p.handle = h;
    p.param_id = param_id;
    p.what = "top-k push of '" + spec->name + "' (" + std::to_string(k) + " of [" + std::to_string(piece.begin) +
             ", " + std::to_string(piece.end) + ")) to server " + std::to_string(piece.server);
    SendToServer(piece.server, std::move(m), std::move(p));
  }
  return h;
}

}  // namespace tessera::worker
