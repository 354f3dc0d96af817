// Which --sync modes the sparse models accept (worker/sparse/sparse_trainer.h,
// CheckSparseSync): allreduce is refused naming every table of the model; the table list
// is the one the workloads declare (SparseTableSpecs, no data loaded).
#include <gtest/gtest.h>

#include <string>

#include "worker/sparse/sparse_trainer.h"

namespace tessera::worker::sparse {
namespace {

TrainConfig Config(const std::string& model) {
  TrainConfig c;
  c.model = model;
  return c;
}

TEST(SparseSync, TablesAreKnownWithoutData) {
  const auto wd = SparseTableSpecs(Config("widedeep"));
  ASSERT_EQ(wd.size(), 2u);
  EXPECT_EQ(wd[0].name, "wide.weight");
  EXPECT_EQ(wd[1].name, "deep.embedding");
  for (const auto& p : wd) EXPECT_EQ(p.kind, ParamKind::kSparse) << p.name;
  EXPECT_EQ(SparseTableSpecs(Config("logreg"))[0].name, "logreg.weight");
  const auto w2v = SparseTableSpecs(Config("word2vec"));
  ASSERT_EQ(w2v.size(), 2u);
  EXPECT_EQ(w2v[0].name, "w2v.input");
  EXPECT_EQ(w2v[1].name, "w2v.output");
}

TEST(SparseSync, AllReduceIsRefusedNamingTheTablesOthersAreAccepted) {
  for (const char* model : {"logreg", "widedeep", "word2vec", "dlrm"}) {
    for (const char* sync : {"bsp", "ssp:2", "asp", "hybrid"}) {
      EXPECT_TRUE(CheckSparseSync(Config(model), sync).ok()) << model << " " << sync;
    }
  }
  Status st = CheckSparseSync(Config("widedeep"), "allreduce");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("(wide.weight, deep.embedding)"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("use --sync=hybrid"), std::string::npos) << st.ToString();
  st = CheckSparseSync(Config("word2vec"), "allreduce");
  EXPECT_NE(st.message().find("(w2v.input, w2v.output)"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace tessera::worker::sparse
