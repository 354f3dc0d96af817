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
// kernel's order.
//
// Threading: pure functions except ListInterfaces (reads the kernel's table).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

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

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

// True for 0.0.0.0, * and "" (listen on every interface).
bool IsWildcardHost(const std::string& host);

// Whether `host` (a literal address or a name) resolves to an address of one of `ifs`;
// the first such address in *address.
bool ResolvesToLocal(const std::vector<NetInterface>& ifs, const std::string& host, std::string* address);

}  // namespace tessera::launch
