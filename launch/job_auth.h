// Which security a job's sockets use (--auth, --auth_key_file) and where its key comes
// from (docs/security.md).
//
//   --auth=mac    every message is authenticated (wire/session.h: a handshake per
//                 connection, then a tag on every message under a per-connection key
//                 derived from the job key), not encrypted. The key comes from the key
//                 file (--auth_key_file, else $TESSERA_AUTH_KEY_FILE, which `tessera
//                 launch` sets to the file it created). A named file that does not exist
//                 yet is created by rank 0 (mode 0600) and awaited by the other ranks,
//                 which is how mpirun/srun jobs share it over a shared file system.
//   --auth=curve  CURVE with the job's keypair from the same key file: authenticated
//                 and encrypted, ~5x slower for large messages.
//   --auth=none   plain TCP: anyone who can reach the ports can join. Silent on a job
//                 that stays on loopback; a loud warning on every process of a job that
//                 spans hosts.
//   --auth=auto   (default) mac when a key file is known; otherwise none with a
//                 warning when every endpoint is loopback (a job started by hand on one
//                 machine), and an error for a job that spans hosts.
//
// Threading: pure functions apart from the file system; call from the main thread.
#pragma once

#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "launch/env.h"
#include "launch/net_iface.h"
#include "wire/curve.h"

namespace tessera::launch {

inline constexpr char kAuthKeyFileEnv[] = "TESSERA_AUTH_KEY_FILE";

enum class AuthMode { kNone, kMac, kCurve };
// "none", "mac", "curve".
const char* AuthModeName(AuthMode m);

struct JobAuth {
  AuthMode mode = AuthMode::kNone;
  wire::CurveKeys keys;    // unless kNone
  std::string key_file;    // unless kNone
  bool keyed() const { return mode != AuthMode::kNone; }
};

// Resolves the flags for the process of rank `rank`. `spans_hosts`: the coordinator or
// the bind address is not loopback. Ranks other than 0 wait up to `wait` for a key file
// rank 0 is creating. Errors name the flag, file and what to do.
Result<JobAuth> ResolveJobAuth(const std::string& mode, const std::string& key_file_flag, const EnvMap& env,
                               int rank, bool spans_hosts, Duration wait);

// `tessera launch`: makes a private job directory (mode 0700, under $TMPDIR or /tmp)
// holding a fresh key file job.key (mode 0600). Returns the key file's path.
Result<std::string> CreateLaunchKeyFile();
// Removes what CreateLaunchKeyFile made (best effort).
void RemoveLaunchKeyFile(const std::string& key_file);

}  // namespace tessera::launch
