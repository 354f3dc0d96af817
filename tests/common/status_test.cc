#include "common/status.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  TESSERA_ASSIGN_OR_RETURN(int h, Half(x));
  TESSERA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status Check(int x) {
  TESSERA_RETURN_IF_ERROR_CTX(Half(x).status(), "checking " + std::to_string(x));
  return Status::OK();
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, ToStringNamesCodeAndMessage) {
  EXPECT_EQ(Status::TimedOut("waiting for server 1").ToString(), "TimedOut: waiting for server 1");
  EXPECT_EQ(Status::VersionMismatch("x").code(), StatusCode::kVersionMismatch);
}

TEST(Status, WithContextKeepsCodeAndPrefixesMessage) {
  Status s = Status::NotFound("file a").WithContext("loading");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "loading: file a");
  EXPECT_TRUE(Status::OK().WithContext("x").ok());
}

TEST(Result, AssignOrReturnPropagatesFirstError) {
  ASSERT_TRUE(Quarter(8).ok());
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd: 3");
}

TEST(Result, ReturnIfErrorAddsContext) {
  EXPECT_TRUE(Check(4).ok());
  EXPECT_EQ(Check(5).message(), "checking 5: odd: 5");
}

TEST(Result, OkStatusIsNotAValue) {
  Result<int> r = Status::OK();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace tessera
