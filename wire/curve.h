// CURVE authentication and encryption for every ZeroMQ socket of a job.
//
// One keypair per job. Every process of the job reads it from the job's key file
// (mode 0600); ROUTER sockets act as CURVE servers with the job's secret key, DEALER
// sockets as CURVE clients presenting the job's own keypair and expecting the job's
// public key from the server. A ZAP handler (inproc://zeromq.zap.01, one per Context)
// accepts a client only when the public key it proved possession of is the job's: a
// peer without the key file can neither connect nor read the traffic. Refusals are
// logged (rate-limited) and counted.
//
// Key file format (text):
//   # comment lines
//   public <40 Z85 characters>
//   secret <40 Z85 characters>
//
// Threading: ZapHandler runs its own thread, started by Start and joined by the
// destructor; refusals() may be read from any thread. The key functions are
// thread-compatible.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace tessera::wire {

struct CurveKeys {
  std::string public_z85;  // 40 characters
  std::string secret_z85;  // 40 characters
};

// Whether this libzmq was built with CURVE (zmq_has("curve")).
bool CurveAvailable();

// A fresh random keypair (zmq_curve_keypair). FailedPrecondition when libzmq lacks CURVE.
Result<CurveKeys> GenerateCurveKeys();

// Creates `path` with mode 0600 (O_EXCL: an existing file is FailedPrecondition, never
// overwritten) and writes `keys`, fsynced, so a reader on a shared file system sees
// the whole file once it exists under its final name (written to a temporary name in
// the same directory, then linked to `path`).
Status WriteCurveKeyFile(const std::string& path, const CurveKeys& keys);

// Reads and checks a key file: a regular file, not readable or writable by group or
// others (FailedPrecondition naming the mode), both keys present and well-formed, and the
// public key the one derived from the secret key (Corruption otherwise).
Result<CurveKeys> ReadCurveKeyFile(const std::string& path);

// Answers ZAP requests for one Context: 200 for CURVE clients whose key is
// `allowed_public_z85`, 400 for everything else (logged).
class ZapHandler {
 public:
  // Binds inproc://zeromq.zap.01 in `zmq_ctx` (a raw context: the handler must not keep
  // its Context alive) and starts the thread. Only one handler per context.
  static Result<std::unique_ptr<ZapHandler>> Start(void* zmq_ctx, const std::string& allowed_public_z85);
  ~ZapHandler();  // stops the thread and closes its socket
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  uint64_t refusals() const { return refusals_.load(); }
  uint64_t acceptances() const { return acceptances_.load(); }

 private:
  ZapHandler(void* sock, std::string allowed_key);
  void Loop();
  void HandleOne();

  void* const sock_;  // REP; owned by the thread once started
  const std::string allowed_key_;  // 32 raw bytes
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refusals_{0};
  std::atomic<uint64_t> acceptances_{0};
  std::thread thread_;
};

}  // namespace tessera::wire
