// docs/protocol.md and docs/wire_format.md against the schema (wire/tessera.capnp) and
// wire/protocol.h: every Op has a row in both docs' op tables, no row names an op that
// does not exist, and docs/wire_format.md states the current protocol version.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::SourceDir;

std::string ReadFile(const std::string& rel) {
  std::ifstream in(SourceDir() + "/" + rel);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << rel << " is missing or empty";
  return ss.str();
}

// The enumerants of `enum Op { ... }` in the schema, e.g. "register", "pushPull".
std::set<std::string> SchemaOps() {
  const std::string schema = ReadFile("wire/tessera.capnp");
  std::smatch m;
  const bool found = std::regex_search(schema, m, std::regex(R"(enum Op \{([^}]*)\})"));
  EXPECT_TRUE(found) << "wire/tessera.capnp: enum Op not found";
  std::set<std::string> ops;
  if (!found) return ops;
  const std::string body = m[1];
  static const std::regex item(R"((\w+)\s*@\d+\s*;)");
  for (auto it = std::sregex_iterator(body.begin(), body.end(), item); it != std::sregex_iterator(); ++it) {
    ops.insert((*it)[1]);
  }
  return ops;
}

// First cells ("| `name` |") of the rows of the doc's op tables: the tables whose header
// row starts with "| op |".
std::set<std::string> OpRows(const std::string& doc) {
  static const std::regex row(R"(^\| `([A-Za-z]+)` \|)");
  std::set<std::string> out;
  std::istringstream in(doc);
  bool in_op_table = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| op |", 0) == 0) {
      in_op_table = true;
      continue;
    }
    if (line.empty() || line[0] != '|') in_op_table = false;
    std::smatch m;
    if (in_op_table && std::regex_search(line, m, row)) out.insert(m[1]);
  }
  return out;
}

void ExpectOpTableMatchesSchema(const std::string& doc_path) {
  const auto ops = SchemaOps();
  ASSERT_GE(ops.size(), 18u) << "parsed too few ops from wire/tessera.capnp";
  const auto rows = OpRows(ReadFile(doc_path));
  ASSERT_FALSE(rows.empty()) << doc_path << " has no op table (a table whose header row starts with \"| op |\")";
  for (const auto& op : ops) {
    EXPECT_TRUE(rows.count(op)) << doc_path << " does not document op `" << op
                                << "` of wire/tessera.capnp: add a row \"| `" << op << "` | ...\" to its op table";
  }
  for (const auto& r : rows) {
    EXPECT_TRUE(ops.count(r)) << doc_path << " documents op `" << r << "`, which wire/tessera.capnp does not have";
  }
}

TEST(ProtocolDocs, ProtocolMdDocumentsEveryOp) { ExpectOpTableMatchesSchema("docs/protocol.md"); }

TEST(ProtocolDocs, WireFormatMdDocumentsEveryOp) { ExpectOpTableMatchesSchema("docs/wire_format.md"); }

TEST(ProtocolDocs, WireFormatMdStatesTheProtocolVersion) {
  std::smatch m;
  const std::string header = ReadFile("wire/protocol.h");
  ASSERT_TRUE(std::regex_search(header, m, std::regex(R"(kProtocolVersion = (\d+);)")));
  const std::string version = m[1];
  const std::string doc = ReadFile("docs/wire_format.md");
  EXPECT_NE(doc.find("Version " + version + " (`kProtocolVersion`"), std::string::npos)
      << "docs/wire_format.md must say \"Version " << version << " (`kProtocolVersion` ...\" (wire/protocol.h)";
}

}  // namespace
}  // namespace tessera
