// A parsed flag value whose error names the flag, so every flag reports the same way
// ("--optimizer: unknown optimizer 'x' ..."), whichever subcommand parses it:
//   TESSERA_ASSIGN_OR_RETURN(c.kind, FlagValue(ParseOptimizerKind(FLAGS_optimizer), "--optimizer"));
#pragma once

#include <string_view>
#include <utility>

#include "common/status.h"

namespace tessera::launch {

template <typename T>
Result<T> FlagValue(Result<T> parsed, std::string_view flag) {
  if (!parsed.ok()) return parsed.status().WithContext(flag);
  return parsed;
}

}  // namespace tessera::launch
