// Membership: who is in the job, and who has gone silent. Pure bookkeeping (no
// sockets), so registration rules and failure detection are testable on their own.
//
// Ranks follow the launch convention: 0 is the coordinator, 1..S the servers, S+1..S+W
// the workers. Server index = rank - 1; worker index = rank - 1 - S.
//
// Thread safety: not synchronised; the coordinator's reactor thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace tessera {

enum class MemberRole : uint8_t { kServer = 1, kWorker = 2 };

struct Member {
  MemberRole role = MemberRole::kWorker;
  int rank = -1;
  bool registered = false;
  bool finished = false;        // sent its final shutdown (workers) or was released (servers)
  std::string routing_id;       // where replies go (ROUTER)
  std::string host;
  std::string data_endpoint;    // servers only
  uint32_t pid = 0;
  Clock::time_point last_seen{};
  int64_t step = -1;            // newest step reported
  double loss = 0;
};

class Membership {
 public:
  Membership(int num_servers, int num_workers);

  int num_servers() const { return num_servers_; }
  int num_workers() const { return num_workers_; }

  // "server 1 (rank 2)", "worker 0 (rank 3)".
  std::string Describe(int rank) const;

  // Validates and records a registration. Errors (InvalidArgument / FailedPrecondition):
  // role does not match the rank's role, rank out of range, job size different from ours
  // (names both), rank already registered (names the host it registered from).
  Status Register(MemberRole role, int rank, int claimed_servers, int claimed_workers,
                  const std::string& routing_id, const std::string& host,
                  const std::string& data_endpoint, uint32_t pid, Clock::time_point now);

  bool AllRegistered() const;
  // Ranks not registered yet, described ("server 1 (rank 2), worker 0 (rank 3)").
  std::string DescribeMissing() const;

  // Records a sign of life. Returns nullptr for an unknown routing id.
  Member* Touch(const std::string& routing_id, Clock::time_point now);
  Member* FindByRoutingId(const std::string& routing_id);
  Member* FindByRank(int rank);

  // First registered, unfinished member silent for longer than `timeout`, if any.
  std::optional<int> FindSilent(Clock::time_point now, Duration timeout) const;

  // What went silent, for the job's failure message. When every unfinished process on
  // the silent member's host has been silent for over half of `timeout` and that host is
  // not `own_host` (the coordinator's), the whole node is named with its ranks ("node tn3
  // is down or unreachable: ..."); otherwise the member and its host.
  std::string DescribeSilent(int rank, Clock::time_point now, Duration timeout, const std::string& own_host) const;

  const std::vector<Member>& members() const { return members_; }  // index = rank - 1
  std::vector<Member>& mutable_members() { return members_; }

  bool AllWorkersFinished() const;

 private:
  const int num_servers_;
  const int num_workers_;
  std::vector<Member> members_;
};

}  // namespace tessera
