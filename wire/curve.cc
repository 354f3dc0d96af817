#include "wire/curve.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace tessera::wire {

namespace {

constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";
constexpr size_t kZ85KeyLen = 40;

Status Errno(const std::string& what, int err) { return Status::IOError(what + ": " + std::strerror(err)); }

std::string Octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

bool DecodeZ85Key(const std::string& z85, std::string* raw) {
  if (z85.size() != kZ85KeyLen) return false;
  raw->assign(32, '\0');
  return zmq_z85_decode(reinterpret_cast<uint8_t*>(raw->data()), z85.c_str()) != nullptr;
}

// Reads one frame; false when the message ended early.
bool RecvFrame(void* sock, std::string* out, bool* more) {
  zmq_msg_t m;
  zmq_msg_init(&m);
  if (zmq_msg_recv(&m, sock, 0) < 0) {
    zmq_msg_close(&m);
    return false;
  }
  out->assign(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
  *more = zmq_msg_more(&m) != 0;
  zmq_msg_close(&m);
  return true;
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

Result<CurveKeys> GenerateCurveKeys() {
  if (!CurveAvailable()) return Status::FailedPrecondition("this libzmq was built without CURVE support");
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) return Errno("zmq_curve_keypair", zmq_errno());
  return CurveKeys{pub, sec};
}

Status WriteCurveKeyFile(const std::string& path, const CurveKeys& keys) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("creating key file " + tmp, errno);
  const std::string text = "# Tessera job key (ZeroMQ CURVE). Anyone who can read this file can join the job.\n"
                           "public " + keys.public_z85 + "\nsecret " + keys.secret_z85 + "\n";
  Status st;
  // fchmod as well: the umask could only have narrowed 0600, but be explicit.
  if (::fchmod(fd, 0600) != 0) st = Errno("fchmod " + tmp, errno);
  if (st.ok() && ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) st = Errno("writing " + tmp, errno);
  if (st.ok() && ::fsync(fd) != 0) st = Errno("fsync " + tmp, errno);
  if (::close(fd) != 0 && st.ok()) st = Errno("closing " + tmp, errno);
  // link() fails with EEXIST instead of replacing: two ranks racing to create the key
  // cannot end up with different keys.
  if (st.ok() && ::link(tmp.c_str(), path.c_str()) != 0) {
    st = errno == EEXIST ? Status::FailedPrecondition("key file " + path + " already exists")
                         : Errno("creating key file " + path, errno);
  }
  ::unlink(tmp.c_str());
  return st;
}

Result<CurveKeys> ReadCurveKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Errno("opening key file " + path, errno);
  struct stat sb;
  if (::fstat(fd, &sb) != 0) {
    int e = errno;
    ::close(fd);
    return Errno("stat key file " + path, e);
  }
  if (!S_ISREG(sb.st_mode)) {
    ::close(fd);
    return Status::FailedPrecondition("key file " + path + " is not a regular file");
  }
  if ((sb.st_mode & 077) != 0) {
    ::close(fd);
    return Status::FailedPrecondition("key file " + path + " has mode " + Octal(sb.st_mode) +
                                      ": it must be readable by its owner only (chmod 600 " + path + ")");
  }
  std::string text(4096, '\0');
  ssize_t n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n < 0) return Errno("reading key file " + path, errno);
  text.resize(static_cast<size_t>(n));
  CurveKeys keys;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string name, value;
    ls >> name >> value;
    std::string* into = name == "public" ? &keys.public_z85 : name == "secret" ? &keys.secret_z85 : nullptr;
    std::string raw;
    if (into == nullptr || !DecodeZ85Key(value, &raw)) {
      return Status::Corruption("key file " + path + " line " + std::to_string(lineno) +
                                ": expected `public <40 Z85 chars>` or `secret <40 Z85 chars>`");
    }
    *into = value;
  }
  if (keys.public_z85.empty() || keys.secret_z85.empty()) {
    return Status::Corruption("key file " + path + " lacks its " + (keys.public_z85.empty() ? "public" : "secret") + " key");
  }
  char derived[41];
  if (zmq_curve_public(derived, keys.secret_z85.c_str()) != 0) return Errno("zmq_curve_public", zmq_errno());
  if (keys.public_z85 != derived) {
    return Status::Corruption("key file " + path + ": the public key does not belong to the secret key");
  }
  return keys;
}

Result<std::unique_ptr<ZapHandler>> ZapHandler::Start(void* zmq_ctx, const std::string& allowed_public_z85) {
  std::string raw;
  if (!DecodeZ85Key(allowed_public_z85, &raw)) return Status::InvalidArgument("malformed CURVE public key");
  void* sock = zmq_socket(zmq_ctx, ZMQ_REP);
  if (sock == nullptr) return Errno("zmq_socket(ZAP)", zmq_errno());
  int linger = 0;
  zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
  if (zmq_bind(sock, kZapEndpoint) != 0) {
    Status st = Errno(std::string("bind ") + kZapEndpoint, zmq_errno());
    zmq_close(sock);
    return st;
  }
  std::unique_ptr<ZapHandler> h(new ZapHandler(sock, std::move(raw)));
  h->thread_ = std::thread([p = h.get()] { p->Loop(); });
  return h;
}

ZapHandler::ZapHandler(void* sock, std::string allowed_key) : sock_(sock), allowed_key_(std::move(allowed_key)) {}

ZapHandler::~ZapHandler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  zmq_close(sock_);
}

void ZapHandler::Loop() {
  while (!stop_.load()) {
    zmq_pollitem_t item{sock_, 0, ZMQ_POLLIN, 0};
    // Polled with a short timeout so the destructor's stop_ is seen promptly.
    int rc = zmq_poll(&item, 1, 100);
    if (rc < 0) {
      if (zmq_errno() == ETERM) return;
      continue;
    }
    if (rc > 0) HandleOne();
  }
}

void ZapHandler::HandleOne() {
  // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
  std::vector<std::string> f;
  bool more = true;
  while (more) {
    std::string frame;
    if (!RecvFrame(sock_, &frame, &more)) return;
    f.push_back(std::move(frame));
  }
  // A REP socket must answer before it can receive again, so a short request (which
  // libzmq never sends) is padded and refused rather than dropped.
  if (f.size() < 6) f.resize(6);
  const std::string& request_id = f[1];
  const std::string& address = f[3];
  const std::string& mechanism = f[5];
  const bool ok = f[0] == "1.0" && mechanism == "CURVE" && f.size() >= 7 && f[6] == allowed_key_;
  std::string why;
  if (!ok) {
    if (mechanism != "CURVE") why = "mechanism " + mechanism + " (this job requires CURVE)";
    else if (f.size() < 7 || f[6].size() != 32) why = "no client key";
    else {
      char z85[41];
      zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(f[6].data()), 32);
      why = std::string("client key ") + z85 + " is not this job's key";
    }
    const uint64_t n = ++refusals_;
    // Rate-limited: a scanner must not flood the log.
    if (n <= 10 || n % 1000 == 0) {
      LOG(WARNING) << "refused a connection from " << (address.empty() ? "?" : address) << ": " << why
                   << " (refusal " << n << ")";
    }
  } else {
    ++acceptances_;
  }
  const std::string code = ok ? "200" : "400";
  const std::string text = ok ? "OK" : "not a member of this job";
  const std::string* reply[] = {&f[0], &request_id, &code, &text};
  for (const std::string* s : reply) zmq_send(sock_, s->data(), s->size(), ZMQ_SNDMORE);
  zmq_send(sock_, "", 0, ZMQ_SNDMORE);  // user id
  zmq_send(sock_, "", 0, 0);            // metadata
}

}  // namespace tessera::wire
