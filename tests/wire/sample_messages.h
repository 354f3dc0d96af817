// One valid, distinctive message per Op, and a checker for it: the round-trip tests
// and the fuzz seed corpus share them.
#pragma once

#include <cstdint>
#include <string>

#include "wire/message.h"

namespace tessera::wire::testing {

inline constexpr uint64_t kSampleJobId = 0x5eed;

// A message of `op` with every field of its body set to a recognisable value, and
// payloads where the op has them (push/pushPull/response: f32 values 0.5*i; sparse pull:
// u64 keys). REQUIRES: op is a known Op.
OutMessage SampleMessage(Op op);

// Empty string when `msg` equals SampleMessage(op); otherwise what differs.
std::string DiffFromSample(const InMessage& msg, Op op);

}  // namespace tessera::wire::testing
