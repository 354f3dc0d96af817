// CRC-32C (Castagnoli), the per-value checksum of checkpoint records. Uses the SSE4.2
// instruction when the CPU has it (checked once at run time), a table otherwise; both
// give the same values (RFC 3720 test vectors in tests/checkpoint).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tessera::checkpoint {

// Extends `crc` (0 to start) over n bytes.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace tessera::checkpoint
