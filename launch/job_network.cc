#include "launch/job_network.h"

#include <algorithm>
#include <cstdlib>

#include "launch/pmi_simple.h"

namespace tessera::launch {

std::string AdvertisedEndpoint(const std::string& bound, const std::string& host) {
  if (host.empty()) return bound;
  const auto colon = bound.rfind(':');
  return "tcp://" + host + bound.substr(colon);
}

Result<NetworkPlan> PlanNetwork(const LaunchInfo& li, const NetworkFlags& flags, const std::vector<NetInterface>& ifs) {
  NetworkPlan plan;
  plan.spans_hosts = li.spans_hosts;
  plan.spans_from = li.spans_from;
  if (!flags.coordinator_host.empty() && !IsLoopbackHost(flags.coordinator_host) && !plan.spans_hosts) {
    plan.spans_hosts = true;
    plan.spans_from = "--coordinator_host is not loopback";
  }
  auto addresses = PlanAddresses(ifs, flags.addresses, plan.spans_hosts);
  if (!addresses.ok()) return addresses.status().WithContext("choosing the address to listen on");
  plan.addresses = *addresses;

  const bool explicit_host = !flags.coordinator_host.empty() || li.coordinator_host_explicit;
  plan.mpi_rendezvous = li.mpi_world_size > 0 && li.source == "openmpi" && !explicit_host;
  plan.pmi_rendezvous = li.source == "mpich" && li.pmi_fd >= 0 && !explicit_host;
  const int port = flags.coordinator_port > 0 ? flags.coordinator_port : li.coordinator_port;
  if (plan.launcher_rendezvous()) {
    // The port from the environment (derived from the job id) may be taken; rank 0 binds
    // any free one and publishes it, unless the user named one.
    plan.coordinator_port = flags.coordinator_port > 0 ? flags.coordinator_port : 0;
    plan.coordinator_bind = plan.addresses.bind_host;
    if (plan.spans_hosts && IsDefaultChoice(flags.addresses)) {
      // The first interface up may be one the other hosts cannot reach, and rank 0 binds
      // before it hears from any of them: offer every candidate, as Horovod's driver does.
      auto candidates = DefaultCandidateAddresses(ifs, plan.addresses.bind_host);
      if (candidates.size() > 1) {
        plan.coordinator_bind = "0.0.0.0";
        plan.coordinator_candidates = std::move(candidates);
      }
    }
    return plan;
  }
  if (port <= 0) {
    return Status::InvalidArgument("no coordinator port: pass --coordinator_port (the launcher set none)");
  }
  const std::string host = flags.coordinator_host.empty() ? li.coordinator_host : flags.coordinator_host;
  if (plan.spans_hosts && IsLoopbackHost(host)) {
    // Every rank would look for rank 0 on its own host: fail now, not after the
    // registration timeout.
    return Status::InvalidArgument(
        "this job spans hosts (" + plan.spans_from + "), but the coordinator host is " + host + " (" +
        (!flags.coordinator_host.empty() ? std::string("--coordinator_host")
         : li.coordinator_host_explicit ? "from " + li.coordinator_host_from
                                        : std::string("the default: no --coordinator_host, MASTER_ADDR or TESSERA_COORDINATOR_HOST")) +
        "): ranks on other hosts would look for rank 0 on their own host. Name rank 0's host on every rank: "
        "--coordinator_host=HOST, or MASTER_ADDR / TESSERA_COORDINATOR_HOST (under Open MPI's mpirun or "
        "MPICH's mpiexec leave all three out: rank 0 publishes its address through the launcher)");
  }
  plan.coordinator_port = port;
  plan.coordinator_endpoint = "tcp://" + host + ":" + std::to_string(port);
  plan.coordinator_bind = plan.addresses.bind_host;
  if (plan.spans_hosts) FollowRouteToCoordinator(ifs, flags, host, &plan);
  if (plan.spans_hosts && flags.addresses.bind_host.empty()) {
    // Peers find rank 0 by this name: listen on the address it resolves to here, or on
    // every interface when it resolves to none of ours (a name only other hosts know).
    std::string local;
    plan.coordinator_bind = ResolvesToLocal(ifs, host, &local) && !IsLoopbackHost(local) ? local : "0.0.0.0";
  }
  return plan;
}

std::string EndpointHost(const std::string& endpoint) {
  std::string h = endpoint.rfind("tcp://", 0) == 0 ? endpoint.substr(6) : endpoint;
  return h.substr(0, h.rfind(':'));
}

namespace {

TcpProbe ProbeEndpoint(const std::string& endpoint, Duration timeout) {
  return ProbeTcp(EndpointHost(endpoint), std::atoi(endpoint.substr(endpoint.rfind(':') + 1).c_str()), timeout);
}

}  // namespace

std::string DiagnoseCoordinatorReach(const std::string& endpoint, Duration timeout) {
  const TcpProbe p = ProbeEndpoint(endpoint, timeout);
  const std::string secs = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
  switch (p.kind) {
    case TcpProbe::kAccepted:
      return p.where + " accepts TCP connections, so the address and port are right: the coordinator's log says which "
             "processes it waited for; if it names this one, this host's job key differs from rank 0's (--auth_key_file "
             "must be the same file on every host)";
    case TcpProbe::kRefused:
      return "nothing listens on " + p.where + " (" + p.error + "): rank 0 is not (or no longer: see its log) running "
             "there, or this is not its port (--coordinator_port, MASTER_PORT or TESSERA_COORDINATOR_PORT must be the "
             "same on every rank)";
    case TcpProbe::kNoAnswer:
      return p.where + " did not answer a TCP connection within " + secs + " s: a firewall drops the traffic, or the "
             "host is down; open the job's ports between the hosts (--coordinator_port and --data_port fix them)";
    case TcpProbe::kUnreachable:
      return "this host has no route to " + p.where + " (" + p.error + "): rank 0 listens on a network this host is "
             "not on; if its host has several interfaces, name the one every host reaches, on every rank: "
             "--interface=NETWORK/LEN (e.g. --interface=10.1.0.0/16) or TESSERA_SOCKET_IFNAME";
    case TcpProbe::kUnresolved:
      return p.where + ": " + p.error + " (on this host: use an address, or a name every host resolves)";
    case TcpProbe::kError:
      break;
  }
  return "a TCP connection to " + p.where + ": " + p.error;
}

std::string FirstReachableEndpoint(const std::string& published, Duration timeout, std::string* why) {
  std::vector<std::string> endpoints;
  for (size_t start = 0; start <= published.size();) {
    const size_t comma = std::min(published.find(',', start), published.size());
    if (comma > start) endpoints.push_back(published.substr(start, comma - start));
    start = comma + 1;
  }
  if (endpoints.size() <= 1) return published;
  why->clear();
  for (const auto& e : endpoints) {
    const TcpProbe p = ProbeEndpoint(e, timeout);
    if (p.kind == TcpProbe::kAccepted) {
      *why += (why->empty() ? "" : "; ") + p.where + " reached";
      return e;
    }
    *why += (why->empty() ? "" : "; ") + p.where + ": " + p.error;
  }
  *why += "; none reached: trying the first";
  return endpoints.front();
}

bool FollowRouteToCoordinator(const std::vector<NetInterface>& ifs, const NetworkFlags& flags, const std::string& host,
                              NetworkPlan* plan) {
  auto source = RouteSourceAddress(host);
  return source.ok() && FollowCoordinatorRoute(ifs, flags.addresses, host, *source, &plan->addresses);
}

Result<std::string> ExchangeJobRecords(collective::MpiCommunicator* mpi, const LaunchInfo& li, const JobRecord& mine,
                                       Duration timeout) {
  Result<std::vector<std::string>> all = Status::Internal("no exchange");
  if (mpi != nullptr) {
    all = mpi->AllGatherWorldStrings(EncodeJobRecord(mine));
  } else {
    auto pmi = PmiSimple::Connect(li.pmi_fd, timeout);
    if (!pmi.ok()) return pmi.status().WithContext("joining the launcher's PMI (PMI_FD=" + std::to_string(li.pmi_fd) + ")");
    all = (*pmi)->AllGather(li.rank, li.world_size, EncodeJobRecord(mine));
  }
  if (!all.ok()) return all.status().WithContext(std::string("exchanging job records through ") + (mpi ? "MPI" : "PMI"));
  std::vector<JobRecord> records;
  for (size_t i = 0; i < all->size(); ++i) {
    auto r = DecodeJobRecord((*all)[i]);
    if (!r.ok()) return r.status().WithContext("the record of MPI rank " + std::to_string(i));
    records.push_back(std::move(r).value());
  }
  TESSERA_RETURN_IF_ERROR(CheckJobAgreement(records));
  return records[0].coordinator;
}

}  // namespace tessera::launch
