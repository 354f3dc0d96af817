// All-reduce benchmark in the style of nccl-tests, run under mpirun:
//
//   mpirun -np N ... build/bench/collective/collective_bench [--max_bytes=268435456]
//
// Part 1, per size (4 KiB x4 .. --max_bytes), f32 sum, in place: our MpiCommunicator
// (enqueue, the communication thread runs MPI_Allreduce, the handle completes) against
// raw MPI_Allreduce on the same buffer, run on the same communication thread through
// MpiCommunicator::Run, iterations alternating ours/raw so machine load hits both alike.
// algbw = bytes / time; busbw = algbw * 2 (n-1) / n (nccl-tests' all-reduce factor).
// Time per call is the slowest rank's (max over ranks of the mean).
//
// Part 2, tensor fusion, for each size mix in --fusion_mixes (deterministic sizes):
//   gradient: what backward produces: per layer one weight (log-uniform in
//             [--large_min, --max_tensor]) then three small tensors (biases, norm scales;
//             log-uniform in [--min_tensor, --small_max]): 3/4 of the tensors are small,
//             almost all the bytes are in the weights;
//   small:    every tensor log-uniform in [--min_tensor, --small_max];
//   loguniform: every tensor log-uniform in [--min_tensor, --max_tensor] (the issue's
//             "200 tensors of 10 KiB to 4 MiB" read literally: mostly 100 KiB-4 MiB).
// --tensors tensors are all-reduced (mean) per step as (a) one call per tensor, each waited
// before the next; (b) one call per tensor, all issued then all waited; (c) the Bucketer
// with --bucket_mb buckets, copying tensors in and out; (d) the same with the tensors
// living in the buckets (AdoptBucketMemory, as the trainer does). Variants interleave
// step by step; rank 0 prints one table per mix: median and mean time per step (slowest
// rank) and each variant's speed-up over (a) and over (b), from the medians.
#include <gflags/gflags.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "collective/bucketer.h"
#include "collective/mpi_communicator.h"
#include "common/hash.h"

DEFINE_int64(min_bytes, 4 << 10, "Smallest all-reduce");
DEFINE_int64(max_bytes, 256 << 20, "Largest all-reduce");
DEFINE_double(seconds_per_size, 1.0, "Rough time budget per size and variant");
DEFINE_int32(tensors, 200, "Fusion case: number of tensors");
DEFINE_int64(min_tensor, 10 << 10, "Fusion case: smallest tensor in bytes");
DEFINE_int64(small_max, 64 << 10, "Fusion case: largest small tensor (gradient and small mixes)");
DEFINE_int64(large_min, 256 << 10, "Fusion case: smallest weight tensor (gradient mix)");
DEFINE_int64(max_tensor, 4 << 20, "Fusion case: largest tensor in bytes");
DEFINE_string(fusion_mixes, "gradient,small,loguniform", "Fusion case: size mixes to run (gradient, small, loguniform)");
DEFINE_double(bucket_mb, 25, "Fusion case: bucket size in MiB");
DEFINE_int32(fusion_steps, 10, "Fusion case: steps timed per variant");

namespace tessera::collective {
namespace {

const Duration kWait = std::chrono::seconds(600);

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void Must(const Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);  // benchmark only: nothing to save
  }
}

// Max over ranks of x (through the communicator itself, outside the timed region).
double MaxOverRanks(MpiCommunicator& c, double x) {
  double out = x;
  Must(c.Run([&](void* comm) {
          MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_MAX, *static_cast<MPI_Comm*>(comm));
          return Status::OK();
        }).Wait(kWait),
       "max over ranks");
  return out;
}

void Sizes(MpiCommunicator& c) {
  const int n = c.size();
  if (c.rank() == 0) {
    std::printf("## all-reduce, f32 sum, in place, %d ranks\n\n", n);
    std::printf("| size | iters | ours µs | raw µs | ours algbw GB/s | ours busbw GB/s | raw busbw GB/s | ours / raw time |\n");
    std::printf("|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  }
  std::vector<float> buf(static_cast<size_t>(FLAGS_max_bytes / 4), 1.0f);  // allocated and touched once
  for (int64_t bytes = FLAGS_min_bytes; bytes <= FLAGS_max_bytes; bytes *= 4) {
    const int64_t count = bytes / 4;
    TensorView t{buf.data(), DType::kF32, {count}, Device::kCPU};
    auto ours = [&] { Must(c.AllReduce(t, ReduceOp::kSum).Wait(kWait), "all-reduce"); };
    auto raw = [&] {
      Must(c.Run([&](void* comm) {
              MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                            *static_cast<MPI_Comm*>(comm));
              return Status::OK();
            }).Wait(kWait),
           "raw");
    };
    ours();
    raw();
    // Iterations from a timed probe, agreed on by every rank.
    double t0 = Now();
    ours();
    const double probe = MaxOverRanks(c, Now() - t0);
    const int iters = static_cast<int>(std::clamp(FLAGS_seconds_per_size / std::max(probe, 1e-6), 3.0, 1000.0));
    double t_ours = 0, t_raw = 0;
    for (int i = 0; i < iters; ++i) {
      t0 = Now();
      ours();
      t_ours += Now() - t0;
      t0 = Now();
      raw();
      t_raw += Now() - t0;
    }
    const double mo = MaxOverRanks(c, t_ours / iters), mr = MaxOverRanks(c, t_raw / iters);
    if (c.rank() == 0) {
      const double alg = bytes / mo / 1e9, factor = 2.0 * (n - 1) / n;
      char size[32];
      if (bytes >= (1 << 20)) std::snprintf(size, sizeof(size), "%lld MiB", static_cast<long long>(bytes >> 20));
      else std::snprintf(size, sizeof(size), "%lld KiB", static_cast<long long>(bytes >> 10));
      std::printf("| %s | %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.3f |\n", size, iters, mo * 1e6, mr * 1e6, alg,
                  alg * factor, bytes / mr / 1e9 * factor, mo / mr);
      std::fflush(stdout);
    }
  }
}

// Log-uniform in [lo, hi] bytes, from the k-th deterministic uniform draw.
size_t LogUniform(uint64_t k, int64_t lo, int64_t hi) {
  const double u = static_cast<double>(Mix64(k + 1) >> 11) / static_cast<double>(1ull << 53);
  const double a = std::log(static_cast<double>(lo)), b = std::log(static_cast<double>(hi));
  return static_cast<size_t>(std::exp(a + u * (b - a)));
}

size_t TensorBytes(const std::string& mix, size_t k) {
  if (mix == "small") return LogUniform(k, FLAGS_min_tensor, FLAGS_small_max);
  if (mix == "gradient") {
    return k % 4 == 0 ? LogUniform(k, FLAGS_large_min, FLAGS_max_tensor) : LogUniform(k, FLAGS_min_tensor, FLAGS_small_max);
  }
  return LogUniform(k, FLAGS_min_tensor, FLAGS_max_tensor);
}

void Fusion(MpiCommunicator& c, const std::string& mix) {
  std::vector<std::vector<float>> tensors(static_cast<size_t>(FLAGS_tensors));
  int64_t total = 0, small = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const size_t bytes = TensorBytes(mix, k);
    tensors[k].assign(std::max<size_t>(1, bytes / 4), 0.5f);
    total += static_cast<int64_t>(tensors[k].size() * 4);
    if (static_cast<int64_t>(bytes) <= FLAGS_small_max) ++small;
  }
  std::vector<TensorView> views;
  for (auto& t : tensors) views.push_back({t.data(), DType::kF32, {static_cast<int64_t>(t.size())}, Device::kCPU});
  BucketOptions bo;
  bo.bucket_bytes = static_cast<size_t>(FLAGS_bucket_mb * (1 << 20));
  auto b = Bucketer::Create(&c, views, bo);
  Must(b.status(), "Bucketer");
  // (d) the same buckets with the tensors living inside them (no copies).
  std::vector<std::vector<float>> copies(tensors);
  std::vector<TensorView> cviews;
  for (auto& t : copies) cviews.push_back({t.data(), DType::kF32, {static_cast<int64_t>(t.size())}, Device::kCPU});
  auto bv = Bucketer::Create(&c, cviews, bo);
  Must(bv.status(), "Bucketer");
  std::vector<Tensor> homes;
  for (size_t i = 0; i < cviews.size(); ++i) {
    if (!(*bv)->fused(i)) continue;
    auto t = (*bv)->AdoptBucketMemory(i);
    Must(t.status(), "AdoptBucketMemory");
    homes.push_back(std::move(t).value());
  }
  auto viewed = [&] {
    for (size_t i = 0; i < cviews.size(); ++i) Must((*bv)->MarkReady(i), "MarkReady");
    Must((*bv)->Finish(kWait), "Finish");
  };
  auto sync_each = [&] {
    for (auto& v : views) Must(c.AllReduce(v, ReduceOp::kMean).Wait(kWait), "per-tensor");
  };
  auto async_all = [&] {
    std::vector<CollHandle> hs;
    for (auto& v : views) hs.push_back(c.AllReduce(v, ReduceOp::kMean));
    for (auto& h : hs) Must(h.Wait(kWait), "per-tensor async");
  };
  auto fused = [&] {
    for (size_t i = 0; i < views.size(); ++i) Must((*b)->MarkReady(i), "MarkReady");
    Must((*b)->Finish(kWait), "Finish");
  };
  const std::function<void()> variants[4] = {sync_each, async_all, fused, viewed};
  for (const auto& v : variants) v();  // warm-up
  // Per step and variant, the slowest rank's time (agreed on outside the timed region).
  // Variants interleave step by step, like part 1; the median resists the load spikes of
  // a shared VM, the mean is printed next to it.
  std::vector<double> times[4];
  for (int s = 0; s < FLAGS_fusion_steps; ++s) {
    for (int i = 0; i < 4; ++i) {
      const double t0 = Now();
      variants[i]();
      times[i].push_back(MaxOverRanks(c, Now() - t0));
    }
  }
  double med[4], mean[4];
  for (int i = 0; i < 4; ++i) {
    std::vector<double> v = times[i];
    std::sort(v.begin(), v.end());
    med[i] = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    mean[i] = 0;
    for (double x : v) mean[i] += x / static_cast<double>(v.size());
  }
  (void)homes;
  if (c.rank() == 0) {
    std::printf("\n## fusion, mix %s: %d tensors (%lld of them <= %lld bytes), %.1f MiB in all, %d ranks, "
                "%zu buckets of %.0f MiB, %d steps\n\n",
                mix.c_str(), FLAGS_tensors, static_cast<long long>(small), static_cast<long long>(FLAGS_small_max),
                total / 1048576.0, c.size(), (*b)->num_buckets(), FLAGS_bucket_mb, FLAGS_fusion_steps);
    std::printf("| variant | median ms per step | mean ms | busbw GB/s (median) | speed-up vs each waited | "
                "speed-up vs all in flight |\n|---|--:|--:|--:|--:|--:|\n");
    const char* names[4] = {"one call per tensor, each waited", "one call per tensor, all in flight",
                            "fused (Bucketer, copies in and out)", "fused, tensors as bucket views"};
    const double factor = 2.0 * (c.size() - 1) / c.size();
    for (int i = 0; i < 4; ++i) {
      std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", names[i], med[i] * 1e3, mean[i] * 1e3,
                  total / med[i] / 1e9 * factor, med[0] / med[i], med[1] / med[i]);
    }
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace tessera::collective

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto c = tessera::collective::MpiCommunicator::Start({});
  if (!c.ok()) {
    std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
    return 1;
  }
  if (FLAGS_max_bytes >= FLAGS_min_bytes) tessera::collective::Sizes(**c);
  if (FLAGS_tensors > 0) {
    std::stringstream mixes(FLAGS_fusion_mixes);
    for (std::string mix; std::getline(mixes, mix, ',');) {
      if (mix != "gradient" && mix != "small" && mix != "loguniform") {
        std::fprintf(stderr, "--fusion_mixes: unknown mix '%s' (gradient, small, loguniform)\n", mix.c_str());
        return 2;
      }
      tessera::collective::Fusion(**c, mix);
    }
  }
  return 0;
}
