// Checkpoint write and restore of one server's shard (a dense tensor with Adam's two
// slots, 1 MiB chunks) of a given size, on this machine's disk:
//   snapshot     ShardStore::Snapshot on the reactor thread: the training stall of a
//                background checkpoint
//   write sst    SstFileWriter + IngestExternalFile        } the background write, and
//   write batch  WriteBatch (WAL off) + Flush               } snapshot + write = the stall
//                                                             of a synchronous checkpoint
//   restore      RestoreShards into a fresh server (page cache dropped for the files)
//   dd           `dd bs=4M` of the same files (page cache dropped): the disk's sequential
//                read bandwidth, the baseline of restore
// Usage: checkpoint_bench --mb=100,1000 --dir=/tmp/ckbench
#include <fcntl.h>
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "checkpoint/catalog.h"
#include "checkpoint/fs_util.h"
#include "checkpoint/manifest.h"
#include "paramserver/checkpoint_participant.h"

DEFINE_string(mb, "100,1000", "Sizes to measure, MB of values + slots");
DEFINE_string(dir, "/tmp/tessera-ckbench", "Scratch directory (removed afterwards)");

namespace tessera {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void DropCache(const std::string& dir) {
  auto files = checkpoint::ListFiles(dir);
  for (const auto& f : *files) {
    int fd = open((dir + "/" + f.name).c_str(), O_RDONLY);
    if (fd < 0) continue;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

double DdSeconds(const std::string& dir) {
  DropCache(dir);
  auto files = checkpoint::ListFiles(dir);
  const auto t = Clock::now();
  for (const auto& f : *files) {
    std::string cmd = "dd if='" + dir + "/" + f.name + "' of=/dev/null bs=4M status=none";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "dd failed on %s\n", f.name.c_str());
  }
  return Since(t);
}

int Main() {
  std::vector<uint64_t> sizes;
  std::stringstream ss(FLAGS_mb);
  for (std::string s; std::getline(ss, s, ',');) sizes.push_back(std::stoull(s));
  std::printf("| size | first snapshot | snapshot (stall, background) | write sst | write batch | sync stall (snapshot + sst) | restore | dd read | restore / dd bandwidth |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (uint64_t mb : sizes) {
    fs::remove_all(FLAGS_dir);
    const uint64_t bytes = mb * 1000 * 1000;
    ParamSpec p;
    p.name = "big.weight";
    p.shape = {static_cast<int64_t>(bytes / 12)};  // values + 2 Adam slots, f32
    p.init = InitKind::kUniform;
    p.init_scale = 0.1f;
    p.seed = 1;
    p.optimizer.kind = OptimizerKind::kAdam;
    ShardMapOptions o;
    o.chunk_bytes = 1 << 20;
    auto map = ShardMap::Build(o, {{1, "inproc://s"}}, {p});
    if (!map.ok()) return std::fprintf(stderr, "%s\n", map.status().ToString().c_str()), 1;
    auto core = paramserver::ParamServerCore::Create(*map, 0);
    if (!core.ok()) return std::fprintf(stderr, "%s\n", core.status().ToString().c_str()), 1;

    // The first snapshot of a run pays for fresh memory; later ones reuse it
    // (ShardStore::SnapshotInto, what a server does from its second checkpoint on).
    auto t = Clock::now();
    paramserver::ShardSnapshot snap;
    core->store().SnapshotInto(&snap);
    const double first_snap_s = Since(t);
    t = Clock::now();
    core->store().SnapshotInto(&snap);
    const double snap_s = Since(t);
    std::vector<std::string> names = {p.name};
    double write_s[2] = {0, 0};
    uint64_t digest = 0, records = 0, file_bytes = 0;
    for (int m = 0; m < 2; ++m) {
      std::vector<checkpoint::RecordRef> refs;
      for (const auto& c : snap.chunks) {
        refs.push_back({checkpoint::RecordKind::kDense, names[0], c.begin, c.updates, c.values, c.slots});
      }
      const std::string step_dir = checkpoint::StepDir(FLAGS_dir + (m == 0 ? "/sst" : "/batch"), 1);
      t = Clock::now();
      auto st = checkpoint::WriteShard(step_dir + "/server-0", std::move(refs),
                                       m == 0 ? checkpoint::WriteMethod::kSstIngest : checkpoint::WriteMethod::kWriteBatch);
      write_s[m] = Since(t);
      if (!st.ok()) return std::fprintf(stderr, "%s\n", st.status().ToString().c_str()), 1;
      digest = st->digest;
      records = st->records;
      file_bytes = st->file_bytes;
    }
    // A manifest for the SST copy, then a restore into a fresh server.
    const std::string step_dir = checkpoint::StepDir(FLAGS_dir + "/sst", 1);
    checkpoint::Manifest mf;
    mf.step = 1;
    mf.num_servers = 1;
    mf.num_workers = 1;
    mf.params = {p};
    checkpoint::ServerPart sp;
    sp.dir = "server-0";
    sp.digest = digest;
    sp.records = records;
    sp.files = *checkpoint::ListFiles(step_dir + "/server-0");
    mf.servers.push_back(sp);
    if (!checkpoint::WriteFileAtomically(step_dir + "/MANIFEST", checkpoint::SerializeManifest(mf)).ok()) return 1;
    snap = {};
    auto fresh = paramserver::ParamServerCore::Create(*map, 0);
    DropCache(step_dir + "/server-0");
    t = Clock::now();
    Status rs = paramserver::RestoreShards(step_dir, *fresh);
    const double restore_s = Since(t);
    if (!rs.ok()) return std::fprintf(stderr, "%s\n", rs.ToString().c_str()), 1;
    if (fresh->Digest() != core->Digest()) return std::fprintf(stderr, "restored values differ\n"), 1;
    const double dd_s = DdSeconds(step_dir + "/server-0");
    const double fmb = static_cast<double>(file_bytes) / 1e6;
    std::printf("| %llu MB (%.0f MB on disk) | %.3f s | %.3f s | %.2f s (%.0f MB/s) | %.2f s (%.0f MB/s) | %.2f s | %.2f s (%.0f MB/s) | %.2f s (%.0f MB/s) | %.0f%% |\n",
                static_cast<unsigned long long>(mb), fmb, first_snap_s, snap_s, write_s[0], fmb / write_s[0], write_s[1],
                fmb / write_s[1], snap_s + write_s[0], restore_s, fmb / restore_s, dd_s, fmb / dd_s,
                100.0 * dd_s / restore_s);
    std::fflush(stdout);
    fs::remove_all(FLAGS_dir);
  }
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  return tessera::Main();
}
