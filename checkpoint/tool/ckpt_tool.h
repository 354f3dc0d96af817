// `tessera ckpt ls|show|verify`: inspect a checkpoint directory (docs/checkpoints.md).
#pragma once

namespace tessera::checkpoint {

// argv[0] is "tessera ckpt". Exit codes: 0 ok (verify: sound), 1 verify found damage,
// 2 usage or a missing directory/step.
int CkptMain(int argc, char** argv);

}  // namespace tessera::checkpoint
