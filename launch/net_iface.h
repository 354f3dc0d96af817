// Which address a process listens on and which one it tells its peers, for jobs on one
// host and jobs across hosts.
//
// A job that stays on one host listens on loopback. A job that spans hosts listens on
// the address of one network interface, chosen the way NCCL (NCCL_SOCKET_IFNAME), Gloo
// (GLOO_SOCKET_IFNAME) and ps-lite (DMLC_INTERFACE) let users choose, and advertises
// that address: never 0.0.0.0 or 127.x to a peer on another host.
//
// Interface spec (--interface, else $TESSERA_SOCKET_IFNAME), comma-separated entries:
//   eth        name prefix: eth0, eth1, ...
//   =eth0      exact name
//   ^docker    exclude names with this prefix (only exclusions: everything else)
//   10.1.0.0/16  interfaces with an IPv4 address inside this network
// Default (empty spec): every interface that is up, except loopback and the usual
// virtual ones (docker*, virbr*, veth*, br-*), InfiniBand (ib*) first, then in the
// kernel's order; once the coordinator's address is known, the interface of this host's
// route to it instead (FollowCoordinatorRoute), as NCCL matches its root's subnet.
//
// Threading: pure functions except ListInterfaces (reads the kernel's table) and
// RouteSourceAddress / ProbeTcp (ask the kernel; no thread state).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "common/clock.h"

namespace tessera::launch {

struct NetInterface {
  std::string name;     // "eth0"
  std::string address;  // IPv4 dotted quad
  int prefix_len = 0;   // from the netmask
  bool up = false;
  bool loopback = false;
};

// The machine's IPv4 interface addresses (getifaddrs), in the kernel's order.
Result<std::vector<NetInterface>> ListInterfaces();

// "lo 127.0.0.1/8 up, eth0 10.77.0.1/24 up": for error messages.
std::string DescribeInterfaces(const std::vector<NetInterface>& ifs);

// Picks the interface for `spec` (grammar above; "" for the default). Errors name the
// spec and every interface seen.
Result<NetInterface> ChooseInterface(const std::vector<NetInterface>& ifs, const std::string& spec);

// What the caller asked for; empty strings mean "not given".
struct AddressFlags {
  std::string bind_host;       // --bind_host
  std::string interface_spec;  // --interface, else $TESSERA_SOCKET_IFNAME
  std::string advertise_host;  // --advertise_host
};

struct AddressPlan {
  std::string bind_host;       // what the sockets bind ("127.0.0.1", "10.77.0.2", "0.0.0.0")
  std::string advertise_host;  // what peers are told to connect to
  std::string reason;          // how it was chosen, for the log
};

// Pure: the address plan of a process. `spans_hosts`: the job's processes are not all on
// this host. A wildcard bind (0.0.0.0, *) advertises the chosen interface's address; an
// explicit loopback bind in a job that spans hosts is an error (peers could not reach it).
Result<AddressPlan> PlanAddresses(const std::vector<NetInterface>& ifs, const AddressFlags& flags, bool spans_hosts);

// The address this host sends from to reach `host` (the kernel's route lookup, through a
// connected UDP socket: no packet leaves). Errors when `host` does not resolve or no
// route leads there.
Result<std::string> RouteSourceAddress(const std::string& host);

// Pure: a default-chosen plan (`flags` all empty, a job across hosts) moved to the up,
// non-loopback interface that owns `route_source`, the address this host reaches the
// coordinator `coordinator_host` from: the first interface that is up may be one the
// other hosts cannot reach (a public or management network). Returns false, leaving
// *plan alone, when the plan was not a default choice or `route_source` is no such
// interface's address (or already the plan's).
bool FollowCoordinatorRoute(const std::vector<NetInterface>& ifs, const AddressFlags& flags, const std::string& coordinator_host,
                            const std::string& route_source, AddressPlan* plan);

// What one TCP connection attempt to host:port meets within `timeout` (closed at once;
// for error messages). `detail` names the address tried and the errno text.
struct TcpProbe {
  enum Kind { kAccepted, kRefused, kNoAnswer, kUnreachable, kUnresolved, kError } kind = kError;
  std::string where;  // "tn1:29777 (10.77.0.1)"
  std::string error;  // strerror / resolver text; "" when accepted
};
TcpProbe ProbeTcp(const std::string& host, int port, Duration timeout);

// True when no flag picked the address (--bind_host, --interface or its variable,
// --advertise_host): only then may Tessera move it or offer several.
bool IsDefaultChoice(const AddressFlags& flags);

// Every address a default choice could have taken, `chosen` first, then the kernel's
// order: interfaces that are up, IPv4, not loopback and not virtual. Rank 0 under the
// launcher's rendezvous publishes them all when there are several, since it binds before
// it knows which one the other hosts reach.
std::vector<std::string> DefaultCandidateAddresses(const std::vector<NetInterface>& ifs, const std::string& chosen);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

// True for 0.0.0.0, * and "" (listen on every interface).
bool IsWildcardHost(const std::string& host);

// Whether `host` (a literal address or a name) resolves to an address of one of `ifs`;
// the first such address in *address.
bool ResolvesToLocal(const std::vector<NetInterface>& ifs, const std::string& host, std::string* address);

}  // namespace tessera::launch
