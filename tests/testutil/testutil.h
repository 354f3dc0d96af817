// Helpers shared by every test: status assertions, temporary directories, free
// loopback ports, and paths of the binaries under test.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/status.h"

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    const ::tessera::Status _st = (expr);                            \
    ASSERT_TRUE(_st.ok()) << #expr << " -> " << _st.ToString();      \
  } while (0)
#define EXPECT_OK(expr)                                              \
  do {                                                               \
    const ::tessera::Status _st = (expr);                            \
    EXPECT_TRUE(_st.ok()) << #expr << " -> " << _st.ToString();      \
  } while (0)

// A test that cannot run because a tool or privilege is missing: skipped on a developer's
// machine, a failure under CI (CI=true), where a green run must mean the test ran.
// `what` names the tool and the package that provides it.
#define TESSERA_SKIP_OR_FAIL_IN_CI(what)                                                      \
  do {                                                                                       \
    const char* tessera_ci_ = std::getenv("CI");                                             \
    if (tessera_ci_ != nullptr && std::string(tessera_ci_) == "true") {                      \
      FAIL() << "missing under CI (a skip would leave the run silently green): " << (what);  \
    }                                                                                        \
    GTEST_SKIP() << (what);                                                                  \
  } while (0)

namespace tessera::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close).
int FreeTcpPort();

// Directory holding the built `tessera` binary and the test binaries (the build tree).
std::string BinaryDir();
// Path of the project's source tree (for data/ and examples/).
std::string SourceDir();

}  // namespace tessera::testing

namespace tessera::testing {

struct CommandResult {
  int exit_code = -1;   // the command's exit status; 124 when `timeout` killed it
  std::string output;   // stdout and stderr together
};

// Runs `command` with /bin/sh under `timeout timeout_s`, capturing its output.
CommandResult RunCommand(const std::string& command, int timeout_s = 120);

// Path of the built `tessera` binary.
std::string TesseraBinary();

}  // namespace tessera::testing
