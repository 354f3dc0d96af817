// payload_fuzzer_seeds <dir>: writes the seed corpus for payload_fuzzer: valid pushes,
// pulls and pushPulls (dense and sparse, asp and bsp) that server 0 of the fuzzer's
// shard map accepts, in the payload fuzz input format.
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/fuzz/payload_fuzz.h"
#include "wire/message.h"

using namespace tessera;
using wire::Op;
using wire::OutMessage;

namespace {

OutMessage Request(Op op, const ShardMap& map, bool sparse) {
  OutMessage m(op);
  m.SetJobId(fuzz::kPayloadJobId);
  m.SetSender(wire::Role::WORKER, 3);  // worker 0 of 2 servers
  m.SetStep(0);
  m.header().setShardMapVersion(map.version());
  auto d = m.header().getBody().initData();
  d.setParamId(sparse ? 1 : 0);
  d.setKind(sparse ? wire::capnp::ParamKind::SPARSE : wire::capnp::ParamKind::DENSE);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: payload_fuzzer_seeds <corpus dir>\n");
    return 2;
  }
  int written = 0;
  for (bool bsp : {false, true}) {
    auto map = fuzz::PayloadFuzzMap(bsp);
    if (!map.ok()) return 1;
    auto pieces = map->SplitDense(0, 0, 1000);
    if (!pieces.ok()) return 1;
    KeyRange mine{};
    for (const auto& p : *pieces) if (p.server == 0) { mine = {p.begin, p.end}; break; }
    // Keys server 0 owns.
    std::vector<Key> keys;
    for (Key k = 0; keys.size() < 3 && k < 1000; ++k) if (ShardMap::SparseServerOf(1, k, 2) == 0) keys.push_back(k);
    for (Op op : {Op::PUSH, Op::PULL, Op::PUSH_PULL}) {
      for (bool sparse : {false, true}) {
        OutMessage m = Request(op, *map, sparse);
        auto d = m.header().getBody().getData();
        if (sparse) {
          d.setNumKeys(keys.size());
          Buffer kb = Buffer::Allocate(keys.size() * sizeof(Key));
          std::memcpy(kb.data(), keys.data(), kb.size());
          if (!m.AddPayload(std::move(kb), DType::kU64, keys.size()).ok()) return 1;
          if (op != Op::PULL) {
            Buffer v = Buffer::Allocate(keys.size() * 3 * sizeof(float));
            for (size_t i = 0; i < keys.size() * 3; ++i) v.as<float>()[i] = 0.25f * static_cast<float>(i);
            if (!m.AddPayload(std::move(v), DType::kF32, keys.size() * 3).ok()) return 1;
          }
        } else {
          d.setBegin(mine.begin);
          d.setEnd(mine.end);
          if (op != Op::PULL) {
            const uint64_t n = mine.end - mine.begin;
            Buffer v = Buffer::Allocate(n * sizeof(float));
            for (uint64_t i = 0; i < n; ++i) v.as<float>()[i] = 0.5f;
            if (!m.AddPayload(std::move(v), DType::kF32, n).ok()) return 1;
          }
        }
        std::vector<std::span<const std::byte>> frames;
        for (const auto& p : m.payloads()) frames.push_back(p.bytes);
        const std::vector<std::byte> header = m.EncodeHeader();
        const auto input = fuzz::MakePayloadInput(bsp, frames, header);
        const std::string path = std::string(argv[1]) + "/seed_" + wire::OpName(op) + (sparse ? "_sparse" : "_dense") +
                                 (bsp ? "_bsp" : "_asp");
        std::ofstream f(path, std::ios::binary);
        f.write(reinterpret_cast<const char*>(input.data()), static_cast<long>(input.size()));
        if (!f) return 1;
        ++written;
      }
    }
  }
  printf("wrote %d seeds to %s\n", written, argv[1]);
  return 0;
}
