// A job process for the parameter-server tests, in the spirit of ps-lite's test_kv_app:
// rank 0 coordinates, the next S ranks serve, the workers run the --scenario the test
// chose and write what they observed to --out_dir for the test to check.
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <thread>

#include "common/logging.h"
#include "launch/job.h"
#include "tests/ps/ps_scenario.h"
#include "tests/ps/stress_scenario.h"

DEFINE_string(scenario, "optimizers", "optimizers | steps | stress");
DEFINE_string(out_dir, "/tmp", "Where workers write their observations");
DEFINE_int32(steps, 2, "Steps to run");
DEFINE_int32(slow_worker, -1, "Worker index that sleeps --slow_ms per step");
DEFINE_int32(slow_ms, 0, "Sleep per step of the slow worker");
DEFINE_int32(window, 1, "stress: steps a worker may have in flight before waiting for the oldest");

namespace tessera {
namespace {

using launch::WorkerContext;
using worker::Handle;

int64_t MonoMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

Status RunOptimizers(WorkerContext& wc) {
  auto specs = testps::ScenarioParams();
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams(specs));
  const int w = wc.worker_index;
  for (int s = 0; s < FLAGS_steps; ++s) {
    std::vector<std::vector<float>> dense_grads(specs.size());
    std::vector<std::vector<Key>> keys(specs.size());
    std::vector<std::vector<float>> rows(specs.size());
    std::vector<Handle> handles;
    for (uint32_t p = 0; p < specs.size(); ++p) {
      const ParamSpec& spec = specs[p];
      if (spec.kind == ParamKind::kDense) {
        dense_grads[p].resize(static_cast<size_t>(spec.numel()));
        for (int64_t i = 0; i < spec.numel(); ++i) dense_grads[p][static_cast<size_t>(i)] = static_cast<float>(testps::DenseGrad(w, s, i));
        TensorView g{dense_grads[p].data(), DType::kF32, {spec.numel()}, Device::kCPU};
        handles.push_back(wc.client->Push(p, g, s));
      } else {
        keys[p] = testps::WorkerKeys(w);
        const int64_t width = spec.numel();
        rows[p].resize(keys[p].size() * static_cast<size_t>(width));
        for (size_t j = 0; j < keys[p].size(); ++j) {
          for (int64_t c = 0; c < width; ++c) rows[p][j * static_cast<size_t>(width) + static_cast<size_t>(c)] = static_cast<float>(testps::SparseGrad(w, s, static_cast<int>(j), c));
        }
        TensorView g{rows[p].data(), DType::kF32, {static_cast<int64_t>(keys[p].size()), width}, Device::kCPU};
        handles.push_back(wc.client->PushSparse(p, keys[p], g, s));
      }
    }
    for (auto& h : handles) TESSERA_RETURN_IF_ERROR(h.Wait(std::chrono::seconds(60)));
  }
  // Pull everything as of after the last step (bsp: waits for its update).
  std::FILE* f = std::fopen((FLAGS_out_dir + "/worker" + std::to_string(w) + ".txt").c_str(), "w");
  if (!f) return Status::IOError("cannot write to " + FLAGS_out_dir);
  for (uint32_t p = 0; p < specs.size(); ++p) {
    const ParamSpec& spec = specs[p];
    std::vector<float> out;
    Handle h;
    std::vector<Key> pk = testps::PullKeys();
    if (spec.kind == ParamKind::kDense) {
      out.resize(static_cast<size_t>(spec.numel()));
      h = wc.client->Pull(p, TensorView{out.data(), DType::kF32, {spec.numel()}, Device::kCPU}, FLAGS_steps);
    } else {
      out.resize(pk.size() * static_cast<size_t>(spec.numel()));
      h = wc.client->PullSparse(p, pk, TensorView{out.data(), DType::kF32, {static_cast<int64_t>(pk.size()), spec.numel()}, Device::kCPU}, FLAGS_steps);
    }
    TESSERA_RETURN_IF_ERROR(h.Wait(std::chrono::seconds(60)));
    std::fprintf(f, "%s", spec.name.c_str());
    for (float v : out) std::fprintf(f, " %.9g", v);
    std::fprintf(f, "\n");
  }
  std::fprintf(f, "keys_pushed %llu\n", static_cast<unsigned long long>(wc.client->stats().keys_pushed.load()));
  std::fclose(f);
  return Status::OK();
}

// Each worker runs --steps steps of push(step s) + pull(step s+1) on one small tensor,
// logging "push <s> <t_us>" before each push and "pulled <s+1> <t_us>" after each pull.
Status RunSteps(WorkerContext& wc) {
  ParamSpec spec;
  spec.name = "w";
  spec.shape = {64};
  spec.init = InitKind::kConstant;
  spec.init_scale = 0;
  spec.optimizer.kind = OptimizerKind::kSgd;
  spec.optimizer.lr = 1;
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams({spec}));
  std::ofstream log(FLAGS_out_dir + "/steps" + std::to_string(wc.worker_index) + ".txt");
  std::vector<float> g(64, 1.0f), v(64);
  TensorView gv{g.data(), DType::kF32, {64}, Device::kCPU}, vv{v.data(), DType::kF32, {64}, Device::kCPU};
  TESSERA_RETURN_IF_ERROR(wc.client->Pull(0, vv, 0).Wait(std::chrono::seconds(60)));
  for (int s = 0; s < FLAGS_steps; ++s) {
    if (wc.worker_index == FLAGS_slow_worker) std::this_thread::sleep_for(std::chrono::milliseconds(FLAGS_slow_ms));
    log << "push " << s << " " << MonoMicros() << "\n";
    log.flush();
    TESSERA_RETURN_IF_ERROR(wc.client->Push(0, gv, s).Wait(std::chrono::seconds(120)));
    TESSERA_RETURN_IF_ERROR(wc.client->Pull(0, vv, s + 1).Wait(std::chrono::seconds(120)));
    log << "pulled " << s + 1 << " " << MonoMicros() << " " << v[0] << "\n";
    wc.client->ReportStep(s, 0, 0);
  }
  return Status::OK();
}

// Each worker pushes the same dense gradient and sparse rows --steps times, keeping up
// to --window steps in flight (asp), or, with --window=1, in lock-step: push, then pull
// the next step's parameters (bsp). Then, once every worker is
// done, it pulls everything and writes it with the number of pushes it had answered.
Status RunStress(WorkerContext& wc) {
  auto specs = testps::StressParams();
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams(specs));
  const int w = wc.worker_index;
  std::vector<float> dense(static_cast<size_t>(testps::kStressDense));
  for (int64_t i = 0; i < testps::kStressDense; ++i) dense[static_cast<size_t>(i)] = testps::StressDenseGrad(w, i);
  const std::vector<Key> keys = testps::StressKeys(w);
  std::vector<float> rows(keys.size() * testps::kStressRowWidth);
  for (size_t j = 0; j < keys.size(); ++j) {
    for (int64_t c = 0; c < testps::kStressRowWidth; ++c) rows[j * testps::kStressRowWidth + static_cast<size_t>(c)] = testps::StressRowGrad(w, c);
  }
  const TensorView dv{dense.data(), DType::kF32, {testps::kStressDense}, Device::kCPU};
  const TensorView rv{rows.data(), DType::kF32, {static_cast<int64_t>(keys.size()), testps::kStressRowWidth}, Device::kCPU};
  std::deque<Handle> inflight;
  uint64_t answered = 0;
  std::vector<float> pulled(dense.size());
  const size_t window = static_cast<size_t>(std::max(1, FLAGS_window)) * 2;
  for (int s = 0; s < FLAGS_steps; ++s) {
    inflight.push_back(wc.client->Push(0, dv, s));
    inflight.push_back(wc.client->PushSparse(1, keys, rv, s));
    while (inflight.size() >= window) {
      TESSERA_RETURN_IF_ERROR_CTX(inflight.front().Wait(std::chrono::seconds(120)), "push of step " + std::to_string(s));
      inflight.pop_front();
      ++answered;
    }
    if (FLAGS_window <= 1) {
      // Lock-step (bsp): a push is answered when it is buffered, not applied, so
      // without this pull a worker could run up to the server's pending-step bound.
      for (; !inflight.empty(); inflight.pop_front(), ++answered) TESSERA_RETURN_IF_ERROR(inflight.front().Wait(std::chrono::seconds(120)));
      TESSERA_RETURN_IF_ERROR(wc.client->Pull(0, TensorView{pulled.data(), DType::kF32, {testps::kStressDense}, Device::kCPU}, s + 1)
                                  .Wait(std::chrono::seconds(120)));
    }
    if (s % 10 == 0) wc.client->ReportStep(s, 0, 0);
  }
  for (; !inflight.empty(); inflight.pop_front(), ++answered) TESSERA_RETURN_IF_ERROR(inflight.front().Wait(std::chrono::seconds(120)));
  TESSERA_RETURN_IF_ERROR(wc.client->Barrier(std::chrono::seconds(120)));
  std::vector<float> pulled_dense(dense.size());
  const std::vector<Key> pk = testps::StressPullKeys(wc.num_workers);
  std::vector<float> pulled_rows(pk.size() * testps::kStressRowWidth);
  TESSERA_RETURN_IF_ERROR(wc.client->Pull(0, TensorView{pulled_dense.data(), DType::kF32, {testps::kStressDense}, Device::kCPU}, FLAGS_steps)
                              .Wait(std::chrono::seconds(120)));
  TESSERA_RETURN_IF_ERROR(wc.client->PullSparse(1, pk, TensorView{pulled_rows.data(), DType::kF32, {static_cast<int64_t>(pk.size()), testps::kStressRowWidth}, Device::kCPU}, FLAGS_steps)
                              .Wait(std::chrono::seconds(120)));
  std::FILE* f = std::fopen((FLAGS_out_dir + "/stress" + std::to_string(w) + ".txt").c_str(), "w");
  if (!f) return Status::IOError("cannot write to " + FLAGS_out_dir);
  std::fprintf(f, "answered %llu\ndense", static_cast<unsigned long long>(answered));
  for (float v : pulled_dense) std::fprintf(f, " %.9g", v);
  std::fprintf(f, "\nsparse");
  for (float v : pulled_rows) std::fprintf(f, " %.9g", v);
  std::fprintf(f, "\n");
  std::fclose(f);
  return Status::OK();
}

// Peak resident memory of this process (VmHWM), written for the test's memory bound.
void WritePeakRss() {
  const char* rank = std::getenv("TESSERA_RANK");
  if (rank == nullptr) return;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::ofstream(FLAGS_out_dir + "/rss" + rank + ".txt") << line.substr(6) << "\n";
      return;
    }
  }
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  tessera::InitProcess(&argc, &argv, "ps_peer: a parameter-server test job process");
  const int code = tessera::launch::RunJobProcess([](tessera::launch::WorkerContext& wc) {
    if (FLAGS_scenario == "optimizers") return tessera::RunOptimizers(wc);
    if (FLAGS_scenario == "steps") return tessera::RunSteps(wc);
    if (FLAGS_scenario == "stress") return tessera::RunStress(wc);
    return tessera::Status::InvalidArgument("unknown --scenario " + FLAGS_scenario);
  });
  if (FLAGS_scenario == "stress") tessera::WritePeakRss();
  return code;
}
