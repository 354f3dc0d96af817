// header_fuzzer_seeds <dir>: writes the seed corpus for header_fuzzer, one valid
// message per op (tests/wire/sample_messages.h) in the fuzz input format.
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/fuzz/fuzz_input.h"
#include "tests/wire/sample_messages.h"

using namespace tessera::wire;

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: header_fuzzer_seeds <corpus dir>\n");
    return 2;
  }
  int written = 0;
  for (uint16_t i = 0; i < kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    OutMessage m = testing::SampleMessage(op);
    std::vector<uint32_t> sizes;
    for (const auto& p : m.payloads()) sizes.push_back(static_cast<uint32_t>(p.bytes.size()));
    const std::vector<std::byte> header = m.EncodeHeader();
    for (uint8_t flags : {uint8_t{0}, fuzz::kExpectJobBit}) {
      const std::vector<uint8_t> input = fuzz::MakeFuzzInput(flags, sizes, header);
      const std::string path = std::string(argv[1]) + "/seed_" + OpName(op) + (flags ? "_job" : "");
      std::ofstream f(path, std::ios::binary);
      f.write(reinterpret_cast<const char*>(input.data()), static_cast<long>(input.size()));
      if (!f) {
        fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
      ++written;
    }
  }
  printf("wrote %d seeds to %s\n", written, argv[1]);
  return 0;
}
