#include "checkpoint/tool/ckpt_tool.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

#include "checkpoint/catalog.h"

namespace tessera::checkpoint {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: tessera ckpt ls DIR\n"
               "       tessera ckpt show DIR [STEP]     (default: the newest complete checkpoint)\n"
               "       tessera ckpt verify DIR [STEP]   (exit 0 only when the checkpoint is sound)\n"
               "DIR is a --checkpoint_dir; a step directory (with a MANIFEST) works too.\n");
  return 2;
}

std::string Time(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Mb(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f MB", static_cast<double>(b) / 1e6);
  return buf;
}

// Resolves DIR [STEP] to a step directory; "" and a message on stderr when impossible.
std::string Resolve(const std::string& dir, const char* step_arg) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(dir) / kManifestName) && step_arg == nullptr) return dir;
  auto all = ListCheckpoints(dir);
  if (!all.ok()) {
    std::fprintf(stderr, "tessera ckpt: %s\n", all.status().ToString().c_str());
    return "";
  }
  if (step_arg != nullptr) {
    char* end = nullptr;
    long long step = std::strtoll(step_arg, &end, 10);
    if (*end != '\0') {
      std::fprintf(stderr, "tessera ckpt: STEP must be a number, got '%s'\n", step_arg);
      return "";
    }
    for (const auto& c : *all) {
      if (c.step == step) return c.path;
    }
    std::fprintf(stderr, "tessera ckpt: no checkpoint of step %lld in %s\n", step, dir.c_str());
    return "";
  }
  for (auto it = all->rbegin(); it != all->rend(); ++it) {
    if (it->complete) return it->path;
  }
  std::fprintf(stderr, "tessera ckpt: no complete checkpoint in %s\n", dir.c_str());
  return "";
}

int Ls(const std::string& dir) {
  auto all = ListCheckpoints(dir);
  if (!all.ok()) {
    std::fprintf(stderr, "tessera ckpt: %s\n", all.status().ToString().c_str());
    return 2;
  }
  std::printf("%-12s %-22s %-12s %-6s %s\n", "step", "created (UTC)", "size", "kind", "state");
  for (const auto& c : *all) {
    std::string created = "-", kind = "-", state = "incomplete (no MANIFEST)";
    if (c.complete) {
      auto m = ReadManifest(c.path);
      if (m.ok()) {
        created = Time(m->created_unix_ms);
        kind = m->full ? "full" : "incr";
        state = "complete";
      } else {
        state = "damaged manifest: " + m.status().message();
      }
    }
    std::printf("%-12" PRId64 " %-22s %-12s %-6s %s\n", c.step, created.c_str(), Mb(c.bytes).c_str(), kind.c_str(),
                state.c_str());
  }
  return 0;
}

int Show(const std::string& step_dir) {
  auto m = ReadManifest(step_dir);
  if (!m.ok()) {
    std::fprintf(stderr, "tessera ckpt: %s\n", m.status().ToString().c_str());
    return 1;
  }
  std::printf("checkpoint  %s\nstep        %" PRId64 "\ncreated     %s\nkind        %s\n", step_dir.c_str(), m->step,
              Time(m->created_unix_ms).c_str(), m->full ? "full" : "incremental");
  if (!m->full) std::printf("parent      step %" PRId64 "\n", m->parent_step);
  std::printf("job         %d servers, %d workers, sync %s, grad_reduce %s, chunk_bytes %" PRIu64 "\n",
              m->num_servers, m->num_workers, m->sync.c_str(), m->grad_reduce.c_str(), m->chunk_bytes);
  std::printf("written     %s\n\nparameters (%zu):\n", Mb(m->bytes_written).c_str(), m->params.size());
  for (const auto& p : m->params) {
    std::printf("  %-40s lr %g seed %" PRIu64 "\n", DescribeParam(p).c_str(), static_cast<double>(p.optimizer.lr),
                p.seed);
  }
  std::printf("\nparts (w0: worker 0's all-reduced dense state):\n");
  for (const auto& s : m->servers) {
    const std::string who = s.index == kReplicaPart ? "w0" : std::to_string(s.index);
    std::printf("  %-2s %-10s %8" PRIu64 " records %12s  digest %016" PRIx64 "  params digest %016" PRIx64 "\n",
                who.c_str(), s.dir.c_str(), s.records, Mb(s.bytes).c_str(), s.digest, s.store_digest);
  }
  std::printf("\nworkers:\n");
  for (const auto& w : m->workers) {
    std::printf("  %d  next step %" PRId64 ", data cursor epoch %" PRId64 " position %" PRId64 "\n", w.index,
                w.next_step, w.epoch, w.position);
  }
  std::printf("\nflags:\n");
  for (const auto& [k, v] : m->flags) std::printf("  --%s=%s\n", k.c_str(), v.c_str());
  return 0;
}

int Verify(const std::string& step_dir) {
  VerifyReport r;
  Status st = VerifyCheckpoint(step_dir, &r);
  if (!st.ok()) {
    std::printf("DAMAGED %s: %s\n", step_dir.c_str(), st.ToString().c_str());
    return 1;
  }
  std::printf("OK %s: %" PRIu64 " records, %s, every checksum and digest matches\n", step_dir.c_str(), r.records,
              Mb(r.bytes).c_str());
  return 0;
}

}  // namespace

int CkptMain(int argc, char** argv) {
  if (argc < 3) return Usage();
  const std::string cmd = argv[1];
  const std::string dir = argv[2];
  const char* step = argc > 3 ? argv[3] : nullptr;
  if (argc > 4) return Usage();
  if (cmd == "ls" && step == nullptr) return Ls(dir);
  if (cmd == "show" || cmd == "verify") {
    std::string path = Resolve(dir, step);
    if (path.empty()) return 2;
    return cmd == "show" ? Show(path) : Verify(path);
  }
  return Usage();
}

}  // namespace tessera::checkpoint
