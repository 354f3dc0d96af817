// A client of the PMI-1 "simple" wire protocol that MPICH's Hydra (mpiexec) and other
// PMI-1 launchers serve on the file descriptor named by PMI_FD. Tessera links Open MPI,
// not MPICH, so under `mpiexec` from MPICH it cannot call MPI; this is how rank 0 still
// publishes its endpoint "through the launcher itself" there (launch/job_network.h).
//
// Only what the rendezvous needs: init, put, barrier, get, finalize. Values travel
// hex-encoded (the protocol splits on spaces and '='). Every call is bounded by the
// timeout given to Connect.
//
// Threading: one thread at a time (the main thread, at start-up).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace tessera::launch {

class PmiSimple {
 public:
  // Says hello on `fd` (PMI_FD) and learns the key-value space's name and limits.
  static Result<std::unique_ptr<PmiSimple>> Connect(int fd, Duration timeout);
  // Sends finalize (best effort); the descriptor stays open (the launcher owns it).
  ~PmiSimple();

  Status Put(const std::string& key, const std::string& value);
  Status Barrier();
  Result<std::string> Get(const std::string& key);

  // Every rank puts `mine`, waits at the barrier, and reads everyone's (index = rank).
  Result<std::vector<std::string>> AllGather(int rank, int size, const std::string& mine);

 private:
  PmiSimple(int fd, Duration timeout) : fd_(fd), timeout_(timeout) {}
  // Sends one command line and reads the reply line whose cmd= is `expect`; the reply's
  // fields, with rc checked.
  Result<std::map<std::string, std::string>> Call(const std::string& line, const std::string& expect);

  int fd_;
  Duration timeout_;
  std::string kvsname_;
  size_t value_max_ = 1024;
  std::string pending_;  // bytes read past the last reply line
};

// The fields of one PMI-1 reply line ("cmd=get_result rc=0 value=ab12"); pure, for tests.
std::map<std::string, std::string> ParsePmiLine(const std::string& line);

}  // namespace tessera::launch
