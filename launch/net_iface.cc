#include "launch/net_iface.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>

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
        "; interfaces seen: " + DescribeInterfaces(ifs));
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
