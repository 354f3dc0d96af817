// kv_app: the client API used directly, like ps-lite's test_kv_app.
//
//   tessera launch --servers 2 --workers 2 --program build/examples/kv_app -- --rounds 5
//
// Every worker registers a dense tensor and a sparse table, then for each round pushes
// a gradient of all ones and pulls the result. With SGD at lr 1 and grad_reduce=sum, the
// values fall by exactly W per round: after R rounds every dense element and every
// touched sparse element is -R*W, which each worker checks and prints.
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstdio>
#include <vector>

#include "common/logging.h"
#include "launch/job.h"

DEFINE_int32(rounds, 5, "push/pull rounds");
DEFINE_int64(size, 1 << 20, "elements of the dense tensor");

namespace {

using tessera::DType;
using tessera::Device;
using tessera::Status;
using tessera::TensorView;

Status Run(tessera::launch::WorkerContext& wc) {
  tessera::ParamSpec dense;
  dense.name = "weights";
  dense.shape = {FLAGS_size};
  dense.init = tessera::InitKind::kZeros;
  dense.optimizer.kind = tessera::OptimizerKind::kSgd;
  dense.optimizer.lr = 1.0f;
  tessera::ParamSpec table = dense;
  table.name = "embeddings";
  table.kind = tessera::ParamKind::kSparse;
  table.shape = {8};
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams({dense, table}));

  std::vector<float> grad(static_cast<size_t>(FLAGS_size), 1.0f), values(grad.size());
  std::vector<tessera::Key> keys = {7, 42, 42, 1u << 30, static_cast<tessera::Key>(wc.worker_index)};
  std::vector<float> rows(keys.size() * 8, 1.0f), pulled(keys.size() * 8);
  TensorView g{grad.data(), DType::kF32, {FLAGS_size}, Device::kCPU};
  TensorView v{values.data(), DType::kF32, {FLAGS_size}, Device::kCPU};
  TensorView rg{rows.data(), DType::kF32, {static_cast<int64_t>(keys.size()), 8}, Device::kCPU};
  TensorView rv{pulled.data(), DType::kF32, {static_cast<int64_t>(keys.size()), 8}, Device::kCPU};
  const auto timeout = std::chrono::seconds(60);
  for (int r = 0; r < FLAGS_rounds; ++r) {
    // Both pushes go out in parallel; the pulls ask for the values after this round.
    auto h1 = wc.client->Push(0, g, r);
    auto h2 = wc.client->PushSparse(1, keys, rg, r);
    TESSERA_RETURN_IF_ERROR(h1.Wait(timeout));
    TESSERA_RETURN_IF_ERROR(h2.Wait(timeout));
    TESSERA_RETURN_IF_ERROR(wc.client->Pull(0, v, r + 1).Wait(timeout));
    TESSERA_RETURN_IF_ERROR(wc.client->PullSparse(1, keys, rv, r + 1).Wait(timeout));
  }
  // Every worker is past its last pull before anyone reports (a coordinator barrier).
  TESSERA_RETURN_IF_ERROR(wc.client->Barrier(timeout));
  // Dense: every worker pushed 1 per round. Key 42 appears twice in each push (merged
  // to 2 on the worker); keys 7 and 2^30 once; key `worker_index` once (shared with
  // key 7 for worker 7 only).
  const float want = -static_cast<float>(FLAGS_rounds * wc.num_workers);
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] != want) {
      return Status::Internal("dense element " + std::to_string(i) + " is " + std::to_string(values[i]) +
                              ", expected " + std::to_string(want));
    }
  }
  const float want42 = 2 * want;
  if (pulled[1 * 8] != want42 || pulled[2 * 8] != want42 || pulled[0] != want) {
    return Status::Internal("sparse rows wrong: key 7 -> " + std::to_string(pulled[0]) + ", key 42 -> " +
                            std::to_string(pulled[8]));
  }
  std::printf("worker %d: barrier passed; %d rounds of %lld-element push+pull and sparse push+pull: values correct (%g)\n",
              wc.worker_index, FLAGS_rounds, static_cast<long long>(FLAGS_size), static_cast<double>(want));
  return Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  tessera::InitProcess(&argc, &argv, "kv_app: push and pull through Tessera's parameter servers");
  // Sum, not mean, so the expected values are easy to state.
  gflags::SetCommandLineOptionWithMode("grad_reduce", "sum", gflags::SET_FLAGS_DEFAULT);
  return tessera::launch::RunJobProcess(Run);
}
