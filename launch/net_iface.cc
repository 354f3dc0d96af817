#include "launch/net_iface.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

namespace tessera::launch {

namespace {

int PrefixLen(uint32_t mask_host_order) {
  int n = 0;
  while (mask_host_order & 0x80000000u) {
    ++n;
    mask_host_order <<= 1;
  }
  return n;
}

bool ParseIpv4(const std::string& s, uint32_t* out) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *out = ntohl(a.s_addr);
  return true;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Virtual interfaces that never carry a job's traffic to another host.
bool IsVirtualName(const std::string& name) {
  for (const char* p : {"docker", "virbr", "veth", "br-"}) {
    if (StartsWith(name, p)) return true;
  }
  return false;
}

struct Cidr {
  uint32_t net = 0;
  int len = 0;
};

struct Spec {
  std::vector<std::string> prefixes, exact, excluded;
  std::vector<Cidr> networks;
};

Result<Spec> ParseSpec(const std::string& spec) {
  Spec out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    if (item[0] == '^') {
      if (item.size() == 1) return Status::InvalidArgument("interface spec '" + spec + "': '^' needs a name prefix");
      out.excluded.push_back(item.substr(1));
    } else if (item[0] == '=') {
      if (item.size() == 1) return Status::InvalidArgument("interface spec '" + spec + "': '=' needs a name");
      out.exact.push_back(item.substr(1));
    } else if (item.find('/') != std::string::npos) {
      const auto slash = item.find('/');
      Cidr c;
      char* end = nullptr;
      const std::string len = item.substr(slash + 1);
      const long n = std::strtol(len.c_str(), &end, 10);
      if (!ParseIpv4(item.substr(0, slash), &c.net) || len.empty() || *end != '\0' || n < 0 || n > 32) {
        return Status::InvalidArgument("interface spec '" + spec + "': '" + item + "' is not an IPv4 network (a.b.c.d/len)");
      }
      c.len = static_cast<int>(n);
      out.networks.push_back(c);
    } else {
      out.prefixes.push_back(item);
    }
  }
  return out;
}

bool InNetwork(const std::string& address, const Cidr& c) {
  uint32_t a = 0;
  if (!ParseIpv4(address, &a)) return false;
  const uint32_t mask = c.len == 0 ? 0 : ~uint32_t{0} << (32 - c.len);
  return (a & mask) == (c.net & mask);
}

bool Matches(const NetInterface& i, const Spec& s) {
  for (const auto& p : s.excluded) {
    if (StartsWith(i.name, p)) return false;
  }
  const bool only_exclusions = s.prefixes.empty() && s.exact.empty() && s.networks.empty();
  if (only_exclusions) return !i.loopback && !IsVirtualName(i.name);
  for (const auto& p : s.prefixes) {
    if (StartsWith(i.name, p)) return true;
  }
  for (const auto& e : s.exact) {
    if (i.name == e) return true;
  }
  for (const auto& c : s.networks) {
    if (InNetwork(i.address, c)) return true;
  }
  return false;
}

}  // namespace

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool IsWildcardHost(const std::string& host) { return host.empty() || host == "*" || host == "0.0.0.0"; }

Result<std::vector<NetInterface>> ListInterfaces() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return Status::IOError(std::string("getifaddrs: ") + std::strerror(errno));
  std::vector<NetInterface> out;
  for (ifaddrs* p = list; p != nullptr; p = p->ifa_next) {
    if (p->ifa_addr == nullptr || p->ifa_addr->sa_family != AF_INET) continue;
    NetInterface i;
    i.name = p->ifa_name;
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(p->ifa_addr)->sin_addr, buf, sizeof(buf));
    i.address = buf;
    if (p->ifa_netmask != nullptr) {
      i.prefix_len = PrefixLen(ntohl(reinterpret_cast<sockaddr_in*>(p->ifa_netmask)->sin_addr.s_addr));
    }
    i.up = (p->ifa_flags & IFF_UP) != 0 && (p->ifa_flags & IFF_RUNNING) != 0;
    i.loopback = (p->ifa_flags & IFF_LOOPBACK) != 0;
    out.push_back(std::move(i));
  }
  freeifaddrs(list);
  return out;
}

std::string DescribeInterfaces(const std::vector<NetInterface>& ifs) {
  if (ifs.empty()) return "no IPv4 interfaces";
  std::string s;
  for (const auto& i : ifs) {
    if (!s.empty()) s += ", ";
    s += i.name + " " + i.address + "/" + std::to_string(i.prefix_len) + (i.up ? " up" : " down");
  }
  return s;
}

namespace {

// Up, IPv4, not loopback and not virtual: what a default choice may take.
bool UsableByDefault(const NetInterface& i) {
  uint32_t a = 0;
  return i.up && !i.loopback && !IsVirtualName(i.name) && ParseIpv4(i.address, &a);
}

// Interface names often differ between hosts (eth1 here, ens2f0 there); the network they
// share does not. Suggests it, from this host's first usable interface.
std::string NetworkHint(const std::vector<NetInterface>& ifs, const std::string& spec) {
  if (spec.empty()) return "";
  for (const auto& i : ifs) {
    uint32_t a = 0;
    if (!UsableByDefault(i) || !ParseIpv4(i.address, &a)) continue;
    const uint32_t mask = i.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - i.prefix_len);
    in_addr net{htonl(a & mask)};
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &net, buf, sizeof(buf));
    return " (where interface names differ between hosts, name the network they share instead, e.g. --interface=" +
           std::string(buf) + "/" + std::to_string(i.prefix_len) + " for " + i.name + "'s)";
  }
  return "";
}

}  // namespace

Result<NetInterface> ChooseInterface(const std::vector<NetInterface>& ifs, const std::string& spec) {
  TESSERA_ASSIGN_OR_RETURN(Spec s, ParseSpec(spec));
  const NetInterface* best = nullptr;
  for (const auto& i : ifs) {
    if (!i.up || !Matches(i, s)) continue;
    // A user's explicit choice may be loopback (a one-host test); the default never is.
    if (spec.empty() && i.loopback) continue;
    const bool ib = StartsWith(i.name, "ib");
    if (best == nullptr || (spec.empty() && ib && !StartsWith(best->name, "ib"))) best = &i;
  }
  if (best == nullptr) {
    return Status::NotFound(
        (spec.empty() ? std::string("no usable network interface (up, not loopback, not docker/virbr/veth)")
                      : "no interface that is up matches --interface/TESSERA_SOCKET_IFNAME='" + spec + "'") +
        "; interfaces seen: " + DescribeInterfaces(ifs) + NetworkHint(ifs, spec));
  }
  return *best;
}

bool ResolvesToLocal(const std::vector<NetInterface>& ifs, const std::string& host, std::string* address) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return false;
  bool found = false;
  for (addrinfo* p = res; p != nullptr && !found; p = p->ai_next) {
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr, buf, sizeof(buf));
    for (const auto& i : ifs) {
      if (i.address == buf) {
        *address = buf;
        found = true;
        break;
      }
    }
  }
  freeaddrinfo(res);
  return found;
}

namespace {

// The first IPv4 address of `host`, or an error naming it.
Result<sockaddr_in> ResolveIpv4(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) return Status::NotFound("'" + host + "' does not resolve: " + gai_strerror(rc));
  sockaddr_in a = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

std::string AddressText(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return buf;
}

}  // namespace

Result<std::string> RouteSourceAddress(const std::string& host) {
  TESSERA_ASSIGN_OR_RETURN(sockaddr_in to, ResolveIpv4(host, 9));
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in from{};
  socklen_t len = sizeof(from);
  Status st;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    st = Status::Unavailable("no route to " + host + " (" + AddressText(to) + "): " + std::strerror(errno));
  } else if (::getsockname(fd, reinterpret_cast<sockaddr*>(&from), &len) != 0) {
    st = Status::IOError(std::string("getsockname: ") + std::strerror(errno));
  }
  ::close(fd);
  if (!st.ok()) return st;
  return AddressText(from);
}

std::vector<std::string> DefaultCandidateAddresses(const std::vector<NetInterface>& ifs, const std::string& chosen) {
  std::vector<std::string> out;
  uint32_t a = 0;
  if (ParseIpv4(chosen, &a)) out.push_back(chosen);
  for (const auto& i : ifs) {
    if (!UsableByDefault(i)) continue;
    if (std::find(out.begin(), out.end(), i.address) == out.end()) out.push_back(i.address);
  }
  return out;
}

bool IsDefaultChoice(const AddressFlags& flags) {
  return flags.bind_host.empty() && flags.interface_spec.empty() && flags.advertise_host.empty();
}

bool FollowCoordinatorRoute(const std::vector<NetInterface>& ifs, const AddressFlags& flags, const std::string& coordinator_host,
                            const std::string& route_source, AddressPlan* plan) {
  if (!IsDefaultChoice(flags)) return false;
  if (route_source == plan->bind_host) return false;
  std::string first = plan->bind_host;
  for (const auto& i : ifs) {
    if (i.address == plan->bind_host) first = i.name + " " + i.address;
  }
  for (const auto& i : ifs) {
    if (i.address != route_source || !i.up || i.loopback) continue;
    plan->reason = "interface " + i.name + " (default choice: this host's route to the coordinator " + coordinator_host +
                   ", not the first interface up, " + first + ")";
    plan->bind_host = i.address;
    plan->advertise_host = i.address;
    return true;
  }
  return false;
}

TcpProbe ProbeTcp(const std::string& host, int port, Duration timeout) {
  TcpProbe p;
  p.where = host + ":" + std::to_string(port);
  auto to = ResolveIpv4(host, port);
  if (!to.ok()) {
    p.kind = TcpProbe::kUnresolved;
    p.error = to.status().message();
    return p;
  }
  if (AddressText(*to) != host) p.where += " (" + AddressText(*to) + ")";
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    p.error = std::string("socket: ") + std::strerror(errno);
    return p;
  }
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&*to), sizeof(*to)) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
      const int n = ::poll(&pfd, 1, ms);
      socklen_t len = sizeof(err);
      if (n == 0) err = ETIMEDOUT;
      else if (n < 0) err = errno;
      else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  ::close(fd);
  if (err != 0) p.error = std::strerror(err);
  switch (err) {
    case 0: p.kind = TcpProbe::kAccepted; break;
    case ECONNREFUSED: p.kind = TcpProbe::kRefused; break;
    case ETIMEDOUT: p.kind = TcpProbe::kNoAnswer; break;
    case ENETUNREACH: case EHOSTUNREACH: p.kind = TcpProbe::kUnreachable; break;
    default: p.kind = TcpProbe::kError;
  }
  return p;
}

Result<AddressPlan> PlanAddresses(const std::vector<NetInterface>& ifs, const AddressFlags& flags, bool spans_hosts) {
  AddressPlan plan;
  const bool bind_given = !flags.bind_host.empty();
  if (bind_given && !IsWildcardHost(flags.bind_host)) {
    if (spans_hosts && IsLoopbackHost(flags.bind_host) && flags.advertise_host.empty()) {
      return Status::InvalidArgument("--bind_host=" + flags.bind_host +
                                     " is loopback, but this job spans hosts: peers on other hosts could not reach "
                                     "it (leave --bind_host out, or pick the interface with --interface)");
    }
    plan.bind_host = flags.bind_host;
    plan.advertise_host = flags.advertise_host.empty() ? flags.bind_host : flags.advertise_host;
    plan.reason = "--bind_host";
    return plan;
  }
  if (!bind_given && !spans_hosts && flags.interface_spec.empty()) {
    plan.bind_host = "127.0.0.1";
    plan.advertise_host = flags.advertise_host.empty() ? plan.bind_host : flags.advertise_host;
    plan.reason = "loopback (every process of the job is on this host)";
    return plan;
  }
  if (!flags.advertise_host.empty() && flags.interface_spec.empty()) {
    // The user named the address peers use; listen everywhere so it reaches us.
    plan.bind_host = bind_given ? "0.0.0.0" : flags.advertise_host;
    plan.advertise_host = flags.advertise_host;
    plan.reason = "--advertise_host";
    if (!bind_given) {
      std::string local;
      if (!ResolvesToLocal(ifs, flags.advertise_host, &local)) plan.bind_host = "0.0.0.0";
      else plan.bind_host = local;
    }
    return plan;
  }
  auto chosen = ChooseInterface(ifs, flags.interface_spec);
  if (!chosen.ok()) return chosen.status();
  plan.bind_host = bind_given ? "0.0.0.0" : chosen->address;
  plan.advertise_host = flags.advertise_host.empty() ? chosen->address : flags.advertise_host;
  plan.reason = "interface " + chosen->name + " (" +
                (flags.interface_spec.empty() ? std::string("default choice") : "--interface/TESSERA_SOCKET_IFNAME=" + flags.interface_spec) +
                ")";
  return plan;
}

}  // namespace tessera::launch
