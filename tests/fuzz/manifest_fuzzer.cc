// libFuzzer target: the checkpoint MANIFEST reader (checkpoint/manifest.h) on arbitrary
// text, both as given and with a correct checksum line appended (without that, nearly
// every mutation stops at the checksum and the record parser is never reached).
// Properties: no crash/UB; a refusal names where; an accepted manifest serializes and
// parses back to the same text (so nothing accepted is silently misread).
#include "tests/fuzz/manifest_fuzz_run.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tessera::fuzz::RunManifestInput(data, size);
}
