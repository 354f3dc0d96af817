#include "common/byte_size.h"

#include <cctype>

namespace tessera {

Result<uint64_t> ParseByteSize(std::string_view text, const std::string& flag) {
  const auto bad = [&] {
    return Status::InvalidArgument(flag + "=" + std::string(text) +
                                   ": expected a byte count such as 4096, 512K, 512M or 2G");
  };
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (v > (UINT64_MAX - 9) / 10) return bad();
    v = v * 10 + static_cast<uint64_t>(text[i++] - '0');
  }
  if (i == 0) return bad();
  std::string suffix;
  for (; i < text.size(); ++i) suffix.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(text[i]))));
  int shift = 0;
  if (!suffix.empty() && suffix != "B") {
    const std::string units = "KMGT";
    const size_t u = units.find(suffix[0]);
    const std::string rest = suffix.substr(1);
    if (u == std::string::npos || !(rest.empty() || rest == "B" || rest == "IB")) return bad();
    shift = 10 * static_cast<int>(u + 1);
  }
  if (v > (uint64_t{1} << 63) >> shift) return bad();
  return v << shift;
}

Result<std::map<std::string, uint64_t>> ParseNamedByteSizes(std::string_view text, const std::string& flag) {
  std::map<std::string, uint64_t> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t colon = item.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Status::InvalidArgument(flag + ": '" + std::string(item) + "' is not name:bytes (dlrm.emb.C1:64M)");
    }
    TESSERA_ASSIGN_OR_RETURN(uint64_t bytes, ParseByteSize(item.substr(colon + 1), flag));
    if (!out.emplace(std::string(item.substr(0, colon)), bytes).second) {
      return Status::InvalidArgument(flag + " names '" + std::string(item.substr(0, colon)) + "' twice");
    }
  }
  return out;
}

}  // namespace tessera
