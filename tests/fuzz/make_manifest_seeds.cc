// manifest_fuzzer_seeds <dir>: writes valid manifests (full and incremental, dense and
// sparse parameters, several servers and workers) as the manifest fuzzer's seeds.
#include <cstdio>
#include <fstream>
#include <string>

#include "checkpoint/manifest.h"

using namespace tessera;

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: manifest_fuzzer_seeds <corpus dir>\n");
    return 2;
  }
  int written = 0;
  for (bool full : {true, false}) {
    checkpoint::Manifest m;
    m.step = full ? 120 : 140;
    m.created_unix_ms = 1764094000123;
    m.full = full;
    m.parent_step = full ? -1 : 120;
    m.num_servers = 2;
    m.num_workers = 3;
    m.sync = "ssp:2";
    m.grad_reduce = "mean";
    m.chunk_bytes = 1 << 20;
    m.flags = {{"lr", "0.1"}, {"model", "mlp with space"}};
    ParamSpec d;
    d.name = "fc1.weight";
    d.shape = {784, 128};
    d.optimizer.kind = OptimizerKind::kAdam;
    ParamSpec s;
    s.name = "emb";
    s.kind = ParamKind::kSparse;
    s.shape = {16};
    m.params = {d, s};
    for (int i = 0; i < 2; ++i) {
      checkpoint::ServerPart p;
      p.index = i;
      p.dir = "server-" + std::to_string(i);
      p.digest = 0x1234 + i;
      p.store_digest = 0x5678 + i;
      p.records = 10 + i;
      p.bytes = 4096;
      p.files = {{"000001.sst", 4000}, {"MANIFEST-000002", 96}};
      m.servers.push_back(p);
    }
    if (!full) {  // an --sync=hybrid checkpoint: worker 0's replica part beside the servers'
      m.sync = "hybrid";
      m.servers.push_back({checkpoint::kReplicaPart, checkpoint::kReplicaDir, 0x9abc, 0, 4, 2048, {{"000004.sst", 2000}}});
    }
    for (int w = 0; w < 3; ++w) m.workers.push_back({w, m.step, 1, 640 * w});
    m.bytes_written = 8192;
    const std::string path = std::string(argv[1]) + (full ? "/full" : "/incremental");
    std::ofstream(path) << checkpoint::SerializeManifest(m);
    ++written;
  }
  printf("wrote %d seeds to %s\n", written, argv[1]);
  return 0;
}
