// libFuzzer target: the parameter server's data path on arbitrary bytes
// (tests/fuzz/payload_fuzz_run.h lists what it checks).
#include "tests/fuzz/payload_fuzz_run.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tessera::fuzz::RunPayloadInput(data, size);
}
