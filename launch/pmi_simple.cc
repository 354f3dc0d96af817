#include "launch/pmi_simple.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace tessera::launch {

namespace {

std::string Hex(const std::string& s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

Result<std::string> Unhex(const std::string& s) {
  if (s.size() % 2 != 0) return Status::InvalidArgument("PMI value of odd length");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out(s.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("PMI value is not hex");
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

}  // namespace

std::map<std::string, std::string> ParsePmiLine(const std::string& line) {
  std::map<std::string, std::string> out;
  std::stringstream ss(line);
  std::string tok;
  while (ss >> tok) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos) continue;
    out[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return out;
}

Result<std::unique_ptr<PmiSimple>> PmiSimple::Connect(int fd, Duration timeout) {
  if (fd < 0) return Status::InvalidArgument("PMI_FD is not a file descriptor");
  std::unique_ptr<PmiSimple> p(new PmiSimple(fd, timeout));
  TESSERA_RETURN_IF_ERROR(p->Call("cmd=init pmi_version=1 pmi_subversion=1", "response_to_init").status());
  TESSERA_ASSIGN_OR_RETURN(auto maxes, p->Call("cmd=get_maxes", "maxes"));
  if (auto it = maxes.find("vallen_max"); it != maxes.end()) p->value_max_ = std::strtoul(it->second.c_str(), nullptr, 10);
  TESSERA_ASSIGN_OR_RETURN(auto kvs, p->Call("cmd=get_my_kvsname", "my_kvsname"));
  p->kvsname_ = kvs["kvsname"];
  if (p->kvsname_.empty()) return Status::Internal("PMI: the launcher gave no key-value space name");
  return p;
}

PmiSimple::~PmiSimple() {
  if (!kvsname_.empty()) (void)Call("cmd=finalize", "finalize_ack");
}

Result<std::map<std::string, std::string>> PmiSimple::Call(const std::string& line, const std::string& expect) {
  const std::string out = line + "\n";
  for (size_t off = 0; off < out.size();) {
    const ssize_t n = ::write(fd_, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError("PMI: writing to PMI_FD: " + std::string(std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
  const Deadline deadline(timeout_);
  for (;;) {
    const auto nl = pending_.find('\n');
    if (nl != std::string::npos) {
      const std::string reply = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      auto fields = ParsePmiLine(reply);
      if (fields["cmd"] != expect) {
        return Status::Internal("PMI: sent '" + line + "', expected cmd=" + expect + ", got '" + reply + "'");
      }
      if (auto rc = fields.find("rc"); rc != fields.end() && rc->second != "0") {
        return Status::Internal("PMI: '" + line + "' failed: " + reply);
      }
      return fields;
    }
    if (deadline.Expired()) return Status::TimedOut("PMI: no reply to '" + line + "' from the launcher");
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, 100);
    if (r < 0 && errno != EINTR) return Status::IOError("PMI: poll: " + std::string(std::strerror(errno)));
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n == 0) return Status::IOError("PMI: the launcher closed PMI_FD");
    if (n < 0 && errno != EINTR && errno != EAGAIN) return Status::IOError("PMI: reading PMI_FD: " + std::string(std::strerror(errno)));
    if (n > 0) pending_.append(buf, static_cast<size_t>(n));
  }
}

Status PmiSimple::Put(const std::string& key, const std::string& value) {
  const std::string hex = Hex(value);
  if (hex.size() >= value_max_) {
    return Status::InvalidArgument("PMI: value of '" + key + "' (" + std::to_string(hex.size()) +
                                   " bytes hex-encoded) exceeds the launcher's limit of " + std::to_string(value_max_));
  }
  return Call("cmd=put kvsname=" + kvsname_ + " key=" + key + " value=" + hex, "put_result").status();
}

Status PmiSimple::Barrier() { return Call("cmd=barrier_in", "barrier_out").status(); }

Result<std::string> PmiSimple::Get(const std::string& key) {
  TESSERA_ASSIGN_OR_RETURN(auto r, Call("cmd=get kvsname=" + kvsname_ + " key=" + key, "get_result"));
  return Unhex(r["value"]);
}

Result<std::vector<std::string>> PmiSimple::AllGather(int rank, int size, const std::string& mine) {
  TESSERA_RETURN_IF_ERROR(Put("tessera-rec-" + std::to_string(rank), mine));
  TESSERA_RETURN_IF_ERROR(Barrier());
  std::vector<std::string> all;
  for (int r = 0; r < size; ++r) {
    TESSERA_ASSIGN_OR_RETURN(std::string v, Get("tessera-rec-" + std::to_string(r)));
    all.push_back(std::move(v));
  }
  return all;
}

}  // namespace tessera::launch
