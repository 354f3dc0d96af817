// Where a job process listens, what it advertises, and how it finds the coordinator:
// the multi-host half of RunJobProcess (docs/operations.md, "Across hosts").
//
//   * Under Open MPI's mpirun, or MPICH's mpiexec (PMI-1, launch/pmi_simple.h), with no
//     explicit coordinator host (--coordinator_host, TESSERA_COORDINATOR_HOST,
//     MASTER_ADDR), rank 0 binds first (any free port unless one is given) and publishes
//     the endpoint it bound to every rank through the launcher (MPI, or PMI's key-value
//     space), in the same exchange that checks that all ranks agree on the job
//     (job_record.h).
//   * Otherwise peers connect to the host and port from the flags or the launcher's
//     environment (launch/env.h); rank 0 listens on the address that host resolves to
//     when it is one of its own, else on every interface.
//
// Threading: call from the main thread.
#pragma once

#include <string>
#include <vector>

#include "collective/mpi_communicator.h"
#include "common/status.h"
#include "launch/env.h"
#include "launch/job_record.h"
#include "launch/net_iface.h"

namespace tessera::launch {

struct NetworkFlags {
  std::string coordinator_host;  // --coordinator_host
  int coordinator_port = 0;      // --coordinator_port
  AddressFlags addresses;        // --bind_host, --interface (else $TESSERA_SOCKET_IFNAME), --advertise_host
};

struct NetworkPlan {
  AddressPlan addresses;             // servers (and rank 0 under the MPI rendezvous)
  bool spans_hosts = false;
  std::string spans_from;
  bool mpi_rendezvous = false;       // rank 0 publishes its endpoint through MPI (Open MPI)
  bool pmi_rendezvous = false;       // ... through PMI-1 (MPICH's mpiexec)
  bool launcher_rendezvous() const { return mpi_rendezvous || pmi_rendezvous; }
  std::string coordinator_endpoint;  // the non-MPI path: where peers connect
  std::string coordinator_bind;      // rank 0: the host its socket binds
  int coordinator_port = 0;          // rank 0: the port it binds (0: any free port)
  // Rank 0 under the launcher's rendezvous with nothing named and several candidate
  // interfaces: it binds every one (coordinator_bind "0.0.0.0") and publishes all of
  // these; each other rank connects to the first it reaches (FirstReachableEndpoint).
  std::vector<std::string> coordinator_candidates;
};

// Pure apart from resolving a host name and the kernel's route to it. Errors name the
// flag or variable to fix.
Result<NetworkPlan> PlanNetwork(const LaunchInfo& li, const NetworkFlags& flags, const std::vector<NetInterface>& ifs);

// A job across hosts whose address was a default choice listens where this host's route
// to the coordinator's `host` leaves (net_iface.h FollowCoordinatorRoute): with the
// launcher's rendezvous, servers call it once rank 0's endpoint is known. Returns
// whether plan->addresses moved.
bool FollowRouteToCoordinator(const std::vector<NetInterface>& ifs, const NetworkFlags& flags, const std::string& host,
                              NetworkPlan* plan);

// Why a process may not have heard from the coordinator at `endpoint`: one TCP
// connection attempt (bounded by `timeout`) tells a refused port, a dropped one (a
// firewall), an address this host has no route to, and a port that answers; the text
// says what to check for each.
std::string DiagnoseCoordinatorReach(const std::string& endpoint, Duration timeout);

// Of rank 0's published endpoints ("tcp://A:P,tcp://B:P"), the first this host opens a
// TCP connection to within `timeout` (each tried in order); the first when none does, so
// the registration's error then says why. `why` tells the log what each try met.
std::string FirstReachableEndpoint(const std::string& published, Duration timeout, std::string* why);

// "tcp://10.1.2.3:5555" -> "10.1.2.3".
std::string EndpointHost(const std::string& endpoint);

// "tcp://0.0.0.0:5555" + "10.1.2.3" -> "tcp://10.1.2.3:5555"; an empty host keeps the bound one.
std::string AdvertisedEndpoint(const std::string& bound, const std::string& host);

// Every rank of the launch contributes `mine` (through MPI when `mpi` is given, else
// through PMI-1 on li.pmi_fd); returns rank 0's coordinator endpoint once every record
// agrees with rank 0's, else an error naming each rank that does not (every rank gets
// the same answer, so they all stop together).
Result<std::string> ExchangeJobRecords(collective::MpiCommunicator* mpi, const LaunchInfo& li, const JobRecord& mine,
                                       Duration timeout);

}  // namespace tessera::launch
