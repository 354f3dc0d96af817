// Conversions between the parameter plane's C++ vocabulary (ParamSpec, ShardMapData)
// and its wire form (ParamDecl, ShardMap in wire/tessera.capnp). Readers come from a
// validated InMessage, so reading cannot throw; values are still checked (enum ranges,
// sizes) because a peer is not trusted.
#pragma once

#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "common/cluster/shard_map.h"
#include "wire/tessera.capnp.h"

namespace tessera {

void ParamSpecToWire(const ParamSpec& spec, wire::capnp::ParamDecl::Builder out);
Result<ParamSpec> ParamSpecFromWire(wire::capnp::ParamDecl::Reader in);

void ParamSpecsToWire(const std::vector<ParamSpec>& specs, wire::capnp::ParamDecls::Builder out);
Result<std::vector<ParamSpec>> ParamSpecsFromWire(wire::capnp::ParamDecls::Reader in);

void ShardMapToWire(const ShardMapData& map, wire::capnp::ShardMap::Builder out);
// Converts and validates (ShardMap::FromData).
Result<ShardMap> ShardMapFromWire(wire::capnp::ShardMap::Reader in);

// Two declarations describe the same model: same names, kinds, dtypes and shapes in the
// same order. Returns InvalidArgument naming the first difference.
Status CheckSameParams(const std::vector<ParamSpec>& a, const std::vector<ParamSpec>& b);

}  // namespace tessera
