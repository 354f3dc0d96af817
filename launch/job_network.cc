#include "launch/job_network.h"

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
    return plan;
  }
  if (port <= 0) {
    return Status::InvalidArgument("no coordinator port: pass --coordinator_port (the launcher set none)");
  }
  const std::string host = flags.coordinator_host.empty() ? li.coordinator_host : flags.coordinator_host;
  plan.coordinator_port = port;
  plan.coordinator_endpoint = "tcp://" + host + ":" + std::to_string(port);
  plan.coordinator_bind = plan.addresses.bind_host;
  if (plan.spans_hosts && flags.addresses.bind_host.empty()) {
    // Peers find rank 0 by this name: listen on the address it resolves to here, or on
    // every interface when it resolves to none of ours (a name only other hosts know).
    std::string local;
    plan.coordinator_bind = ResolvesToLocal(ifs, host, &local) && !IsLoopbackHost(local) ? local : "0.0.0.0";
  }
  return plan;
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
