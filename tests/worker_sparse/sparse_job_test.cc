// The sparse models as users run them: real jobs through `tessera launch` (coordinator,
// 2 servers, 2 workers on loopback) on subsets of data/a9a and data/text8-head, checked
// through worker 0's metrics file and --embeddings_out.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/worker_sparse/sparse_test_util.h"
#include "worker/data/libsvm.h"
#include "worker/sparse/ctr_workload.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::SourceDir;
using testing::TesseraBinary;

struct JobResult {
  int exit_code = -1;
  std::string output;
  std::string summary;  // the summary line of the metrics file
};

JobResult RunTrain(const std::string& flags, int servers = 2, int workers = 2) {
  testing::TempDir dir;
  const std::string metrics = dir.path() + "/metrics.jsonl";
  const std::string cmd = TesseraBinary() + " launch --servers " + std::to_string(servers) +
                          " --workers " + std::to_string(workers) + " --grace_s 2 " + flags +
                          " --metrics_out=" + metrics;
  auto r = RunCommand(cmd, 240);
  JobResult out;
  out.exit_code = r.exit_code;
  out.output = r.output;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"event\":\"summary\"") != std::string::npos) out.summary = line;
  }
  return out;
}

double Number(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const size_t p = json.find(k);
  if (p == std::string::npos) return std::nan("");
  return std::stod(json.substr(p + k.size()));
}

std::string A9a() { return " --data=" + SourceDir() + "/data/a9a"; }

// An untrained model has AUC 0.5 and log-loss log 2 = 0.693 (it starts at zero).
TEST(SparseJob, LogregLearnsA9aSubset) {
  JobResult r = RunTrain(
      "--model=logreg" + A9a() +
      " --train_limit=8000 --test_limit=4000 --epochs=2 --batch_size=64 --optimizer=adagrad "
      "--lr=0.05 --log_every=0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(Number(r.summary, "initial_eval_loss"), std::log(2.0), 1e-4) << r.summary;
  EXPECT_GT(Number(r.summary, "test_auc"), 0.88) << r.summary;
  EXPECT_LT(Number(r.summary, "logloss"), 0.40) << r.summary;
  EXPECT_EQ(Number(r.summary, "test_examples"), 4000) << r.summary;
  EXPECT_GT(Number(r.summary, "samples_per_sec"), 0) << r.summary;
}

TEST(SparseJob, WideDeepLearnsA9aSubset) {
  JobResult r = RunTrain(
      "--model=widedeep" + A9a() +
      " --train_limit=8000 --test_limit=4000 --epochs=2 --batch_size=64 --optimizer=adagrad "
      "--lr=0.03 --hidden=16 --embed_dim=4 --log_every=0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(Number(r.summary, "test_auc"), 0.88) << r.summary;
  EXPECT_LT(Number(r.summary, "logloss"), 0.40) << r.summary;
}

// ssp and asp take the prefetch path (the next batch's rows are pulled while the current
// one computes); they must still learn.
TEST(SparseJob, LogregLearnsUnderSspAndAsp) {
  for (const char* sync : {"ssp:1", "asp"}) {
    JobResult r = RunTrain(
        std::string("--sync=") + sync + " --model=logreg" + A9a() +
        " --train_limit=8000 --test_limit=4000 --epochs=2 --batch_size=64 --optimizer=adagrad "
        "--lr=0.05 --log_every=0");
    ASSERT_EQ(r.exit_code, 0) << sync << "\n" << r.output;
    EXPECT_GT(Number(r.summary, "test_auc"), 0.88) << sync << " " << r.summary;
  }
}

std::string Digest(const std::string& summary) {
  const std::string k = "\"params_digest\":\"";
  const size_t p = summary.find(k);
  return p == std::string::npos ? "" : summary.substr(p + k.size(), 16);
}

// bsp sums the workers' pushes in worker order and the batches are a pure function of the
// seed, so two runs with the same flags evaluate bitwise-equal parameters.
TEST(SparseJob, BspRunsAreBitwiseReproducible) {
  const std::string flags =
      "--model=widedeep" + A9a() +
      " --train_limit=4000 --test_limit=1000 --steps=40 --batch_size=32 --optimizer=adagrad "
      "--lr=0.03 --hidden=8 --embed_dim=4 --log_every=0 --seed=5";
  JobResult a = RunTrain(flags), b = RunTrain(flags);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_FALSE(Digest(a.summary).empty());
  EXPECT_EQ(Digest(a.summary), Digest(b.summary));
  EXPECT_EQ(Number(a.summary, "test_auc"), Number(b.summary, "test_auc"));
  JobResult c = RunTrain(flags + " --seed=6");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(Digest(a.summary), Digest(c.summary));
}

// --server_threads=2 splits a server's large batches (here ~3600 keys a pull from its one
// server; the split starts at 1024) with a helper thread: the results must not move by one bit,
// the helper must really have run ranges (in one of up to three runs), and a count outside
// 1..2 is a config error.
TEST(SparseJob, ServerHelperThreadChangesNoBit) {
  const std::string flags = "--model=word2vec --data=" + SourceDir() +
                            "/data/text8-head --train_limit=200000 --epochs=1 --steps=150 --batch_size=1024 --embed_dim=16 "
                            "--window=4 --negatives=5 --min_count=5 --optimizer=adam --lr=0.01 "
                            "--heldout_pairs=2000 --log_every=0 --sync=bsp --seed=3";
  JobResult one = RunTrain(flags + " --server_threads=1", 1, 1);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  ASSERT_FALSE(Digest(one.summary).empty()) << one.summary;
  EXPECT_EQ(one.output.find("helper thread (--server_threads=2)"), std::string::npos) << one.output;
  // On a loaded machine the helper may never be scheduled in time: the reactor then takes
  // every range and backs off (split_work.h), so a run can rightly report 0 ranges. Up to
  // three runs, each bitwise the one-thread run, and one of them must have used the helper.
  long ranges = 0;
  for (int attempt = 0; attempt < 3 && ranges == 0; ++attempt) {
    JobResult two = RunTrain(flags + " --server_threads=2", 1, 1);
    ASSERT_EQ(two.exit_code, 0) << two.output;
    EXPECT_EQ(Digest(one.summary), Digest(two.summary));
    EXPECT_EQ(Number(one.summary, "heldout_loss"), Number(two.summary, "heldout_loss"));
    const size_t at = two.output.find("helper thread (--server_threads=2): ");
    ASSERT_NE(at, std::string::npos) << two.output;
    ranges = std::strtol(two.output.c_str() + at + 36, nullptr, 10);
  }
  EXPECT_GT(ranges, 0) << "the helper ran no range in three runs";

  JobResult bad = RunTrain(flags + " --server_threads=3", 1, 1);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--server_threads 3: 1 or 2"), std::string::npos) << bad.output;
}

std::map<std::string, std::vector<double>> ReadVectors(const std::string& path) {
  std::map<std::string, std::vector<double>> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string w;
    ss >> w;
    std::vector<double> v;
    for (double x; ss >> x;) v.push_back(x);
    out[w] = v;
  }
  return out;
}

double Cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

// Held-out loss starts at about (1 + K) log 2 (zero output vectors) and must fall well
// below it; "united" (almost always followed by "states") must end closer to "states"
// than random pairs of frequent words are to each other.
TEST(SparseJob, Word2VecLearnsText8Head) {
  testing::TempDir dir;
  const std::string vectors = dir.path() + "/vectors.txt";
  JobResult r = RunTrain(
      "--model=word2vec --data=" + SourceDir() +
      "/data/text8-head --train_limit=200000 --epochs=2 --batch_size=256 --embed_dim=32 "
      "--window=4 --negatives=5 --min_count=5 --optimizer=adagrad --lr=0.2 --grad_reduce=sum "
      "--heldout_pairs=5000 --log_every=0 --embeddings_out=" +
      vectors);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double initial = Number(r.summary, "initial_eval_loss");
  const double final_loss = Number(r.summary, "heldout_loss");
  EXPECT_GT(initial, 4.0) << r.summary;
  EXPECT_LT(final_loss, 0.8 * initial) << r.summary;
  EXPECT_NE(r.output.find("nearest to 'two':"), std::string::npos) << r.output;

  auto vec = ReadVectors(vectors);
  ASSERT_GT(vec.size(), 1000u);
  ASSERT_TRUE(vec.count("united") && vec.count("states"));
  const double pair = Cosine(vec["united"], vec["states"]);
  // Random pairs among the 300 most frequent words (file order is by frequency).
  std::vector<std::string> frequent;
  {
    std::ifstream in(vectors);
    for (std::string line; std::getline(in, line) && frequent.size() < 300;)
      frequent.push_back(line.substr(0, line.find(' ')));
  }
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < frequent.size(); i += 7) {
    for (size_t j = i + 3; j < frequent.size(); j += 11) {
      sum += Cosine(vec[frequent[i]], vec[frequent[j]]);
      ++n;
    }
  }
  const double random_mean = sum / n;
  std::printf("held-out loss %.4f -> %.4f; cos(united, states) %.3f, random frequent pairs %.3f\n",
              initial, final_loss, pair, random_mean);
  EXPECT_GT(pair, random_mean + 0.2)
      << "cos(united, states) " << pair << ", random pairs " << random_mean;
}

// Only distinct keys travel: with one worker, no shuffle and fixed batches, the keys the
// client put on the wire equal the sum over batches of the batch's distinct hashed keys.
TEST(SparseJob, PushesOneRowPerDistinctKey) {
  const int kBatch = 50, kSteps = 6;
  JobResult r = RunTrain("--model=logreg" + A9a() + " --train_limit=300 --test_limit=100 --steps=" +
                             std::to_string(kSteps) + " --batch_size=" + std::to_string(kBatch) +
                             " --shuffle=false --optimizer=adagrad --lr=0.05 --log_every=0",
                         2, 1);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto data = data::LoadLibsvm(SourceDir() + "/data/a9a/a9a.gz",
                               data::LoadOptions{.rank = 0, .world = 1, .limit = 300});
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  uint64_t distinct = 0, occurrences = 0;
  for (int s = 0; s < kSteps; ++s) {
    std::set<Key> keys;
    for (int64_t e = s * kBatch; e < (s + 1) * kBatch; ++e) {
      const auto f = data->features_of(e);
      keys.insert(worker::sparse::CrossKey({}, 24));
      ++occurrences;
      for (size_t i = 0; i < f.size(); ++i) {
        keys.insert(worker::sparse::CrossKey(f.subspan(i, 1), 24));
        ++occurrences;
        for (size_t j = i + 1; j < f.size(); ++j) {
          const uint32_t p[2] = {f[i], f[j]};
          keys.insert(worker::sparse::CrossKey(p, 24));
          ++occurrences;
        }
      }
    }
    distinct += keys.size();
  }
  EXPECT_EQ(static_cast<uint64_t>(Number(r.summary, "keys_pushed")), distinct) << r.summary;
  EXPECT_LT(distinct, occurrences / 2);
}

TEST(SparseJob, BadDataNamesTheFile) {
  JobResult missing = RunTrain("--model=logreg --data=/nonexistent/a9a-dir --steps=2");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("/nonexistent/a9a-dir"), std::string::npos) << missing.output;

  testing::TempDir dir;
  sparse_testing::WriteGz(dir.path() + "/a9a.gz", "+1 1:1 2:1\n-1 3:1\n+1 4:oops\n");
  sparse_testing::WriteGz(dir.path() + "/a9a.t.gz", "+1 1:1\n");
  JobResult bad = RunTrain("--model=logreg --data=" + dir.path() + " --steps=2", 1, 1);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find(dir.path() + "/a9a.gz:3: bad feature '4:oops'"), std::string::npos)
      << bad.output;
}

// The shipped flag files parse and train (shortened to a few steps here).
TEST(SparseJob, ExampleFlagFilesRun) {
  for (const char* f : {"logreg_a9a.flags", "widedeep_a9a.flags", "word2vec_text8.flags"}) {
    JobResult r =
        RunTrain("--flagfile=" + SourceDir() + "/examples/" + f + " --steps=3 --test_limit=200 " +
                 "--train_limit=20000 --heldout_pairs=500 --data=" + SourceDir() + "/data/" +
                 (std::string(f).find("a9a") != std::string::npos ? "a9a" : "text8-head"));
    ASSERT_EQ(r.exit_code, 0) << f << "\n" << r.output;
    EXPECT_EQ(Number(r.summary, "steps"), 3) << f;
  }
}

}  // namespace
}  // namespace tessera
