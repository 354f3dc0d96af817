#include "coordinator/membership.h"

namespace tessera {

Membership::Membership(int num_servers, int num_workers)
    : num_servers_(num_servers), num_workers_(num_workers) {
  members_.resize(static_cast<size_t>(num_servers + num_workers));
  for (int r = 1; r <= num_servers + num_workers; ++r) {
    Member& m = members_[static_cast<size_t>(r - 1)];
    m.rank = r;
    m.role = r <= num_servers ? MemberRole::kServer : MemberRole::kWorker;
  }
}

std::string Membership::Describe(int rank) const {
  if (rank == 0) return "coordinator (rank 0)";
  if (rank >= 1 && rank <= num_servers_) {
    return "server " + std::to_string(rank - 1) + " (rank " + std::to_string(rank) + ")";
  }
  return "worker " + std::to_string(rank - 1 - num_servers_) + " (rank " + std::to_string(rank) + ")";
}

Status Membership::Register(MemberRole role, int rank, int claimed_servers, int claimed_workers,
                            const std::string& routing_id, const std::string& host,
                            const std::string& data_endpoint, uint32_t pid, Clock::time_point now) {
  if (claimed_servers != num_servers_ || claimed_workers != num_workers_) {
    return Status::InvalidArgument("rank " + std::to_string(rank) + " was started for a job of " +
                                   std::to_string(claimed_servers) + " servers and " +
                                   std::to_string(claimed_workers) + " workers, but this job has " +
                                   std::to_string(num_servers_) + " servers and " +
                                   std::to_string(num_workers_) + " workers");
  }
  if (rank < 1 || rank > num_servers_ + num_workers_) {
    return Status::InvalidArgument("rank " + std::to_string(rank) + " is outside 1.." +
                                   std::to_string(num_servers_ + num_workers_));
  }
  Member& m = members_[static_cast<size_t>(rank - 1)];
  if (m.role != role) {
    return Status::InvalidArgument("rank " + std::to_string(rank) + " registered as " +
                                   (role == MemberRole::kServer ? "a server" : "a worker") +
                                   " but is " + Describe(rank));
  }
  if (m.registered) {
    return Status::FailedPrecondition("duplicate registration: " + Describe(rank) +
                                      " is already registered from host " + m.host + " (pid " +
                                      std::to_string(m.pid) + ")");
  }
  if (role == MemberRole::kServer && data_endpoint.empty()) {
    return Status::InvalidArgument(Describe(rank) + " registered without a data endpoint");
  }
  m.registered = true;
  m.routing_id = routing_id;
  m.host = host;
  m.data_endpoint = data_endpoint;
  m.pid = pid;
  m.last_seen = now;
  return Status::OK();
}

bool Membership::AllRegistered() const {
  for (const Member& m : members_) {
    if (!m.registered) return false;
  }
  return true;
}

std::string Membership::DescribeMissing() const {
  std::string s;
  for (const Member& m : members_) {
    if (m.registered) continue;
    if (!s.empty()) s += ", ";
    s += Describe(m.rank);
  }
  return s;
}

Member* Membership::FindByRoutingId(const std::string& routing_id) {
  for (Member& m : members_) {
    if (m.registered && m.routing_id == routing_id) return &m;
  }
  return nullptr;
}

Member* Membership::FindByRank(int rank) {
  if (rank < 1 || rank > static_cast<int>(members_.size())) return nullptr;
  return &members_[static_cast<size_t>(rank - 1)];
}

Member* Membership::Touch(const std::string& routing_id, Clock::time_point now) {
  Member* m = FindByRoutingId(routing_id);
  if (m) m->last_seen = now;
  return m;
}

std::optional<int> Membership::FindSilent(Clock::time_point now, Duration timeout) const {
  for (const Member& m : members_) {
    if (m.registered && !m.finished && now - m.last_seen > timeout) return m.rank;
  }
  return std::nullopt;
}

std::string Membership::DescribeSilent(int rank, Clock::time_point now, Duration timeout,
                                       const std::string& own_host) const {
  const Member& silent = members_[static_cast<size_t>(rank - 1)];
  const double s = std::chrono::duration<double>(timeout).count();
  std::string secs = std::to_string(s);
  secs = secs.substr(0, secs.find('.') + 2);
  std::string ranks;
  int on_host = 0;
  bool whole_node = !silent.host.empty() && silent.host != own_host;
  for (const Member& m : members_) {
    if (!m.registered || m.finished || m.host != silent.host) continue;
    ++on_host;
    if (now - m.last_seen <= timeout / 2) whole_node = false;
    ranks += std::string(ranks.empty() ? "" : ", ") + Describe(m.rank);
  }
  if (whole_node && on_host > 1) {
    return "node " + silent.host + " is down or unreachable: none of its " + std::to_string(on_host) + " processes (" +
           ranks + ") sent a heartbeat for " + secs + " s";
  }
  const bool name_host = !silent.host.empty() && silent.host != own_host;
  return Describe(rank) + (name_host ? " on " + silent.host : "") + " sent no heartbeat for " + secs +
         " s" + (whole_node ? " (its node's only process: the node may be down or unreachable)" : "");
}

bool Membership::AllWorkersFinished() const {
  for (const Member& m : members_) {
    if (m.role == MemberRole::kWorker && !m.finished) return false;
  }
  return true;
}

}  // namespace tessera
