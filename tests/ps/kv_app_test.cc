// The example program from the docs, run the way the docs say.
#include <gtest/gtest.h>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

TEST(KvApp, RunsAsDocumentedAndChecksItsValues) {
  auto r = testing::RunCommand(testing::TesseraBinary() + " launch --servers 2 --workers 3 --program " +
                                   testing::BinaryDir() + "/examples/kv_app -- --rounds 4 --size 300000",
                               120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int w = 0; w < 3; ++w) {
    EXPECT_NE(r.output.find("worker " + std::to_string(w) + ": barrier passed; 4 rounds of 300000-element push+pull and sparse "
                            "push+pull: values correct (-12)"),
              std::string::npos)
        << r.output;
  }
}

}  // namespace
}  // namespace tessera
