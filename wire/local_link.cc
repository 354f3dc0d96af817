#include "wire/local_link.h"

#include <gflags/gflags.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/clock.h"
#include "wire/protocol.h"

DEFINE_bool(shm_link, true,
            "Between processes on one host with a shared-memory channel, carry messages over a Unix-domain "
            "socket polled by each side's loop instead of ZeroMQ's I/O threads (fewer thread wake-ups per "
            "message); false keeps every message on ZeroMQ");

namespace tessera::wire {

namespace {

constexpr size_t kCopyBelow = 1024;     // frames below this are copied into the queue
constexpr size_t kStageBytes = 16 << 10;  // read buffer for prefixes and small frames (per link: small)
// Bytes the queue takes beyond the message bound, like the kernel buffers behind a
// ZeroMQ TCP pipe (a Unix socket's own buffer is ~200 KB): without them two loops that
// send to each other in bursts fill each other's small buffers and wait.
constexpr size_t kSlackBytes = 2 << 20;
constexpr uint64_t kMoreBit = 1ULL << 63;
// Frames in one message: the header, up to kMaxPayloadFrames payloads, a shared-memory
// descriptor, the auth=mac trailer.
constexpr size_t kMaxFrames = kMaxPayloadFrames + 3;

Status Errno(const char* what, int err) { return Status::Unavailable(std::string(what) + ": " + strerror(err)); }

}  // namespace

LocalLink::LocalLink(int fd, uint64_t max_frame_bytes, size_t max_queued_messages)
    : fd_(fd), max_frame_bytes_(max_frame_bytes), max_queued_(std::max<size_t>(max_queued_messages, 1)) {
  stage_.resize(kStageBytes);
}

LocalLink::~LocalLink() { close(fd_); }

void LocalLink::DropOutput() {
  out_.clear();
  queued_messages_ = 0;
  queued_bytes_ = 0;
}

Status LocalLink::Fail(Status st) {
  if (broken_.ok()) broken_ = st;
  DropOutput();
  return broken_;
}

Status LocalLink::FailWrite(Status st) {
  if (write_broken_.ok()) write_broken_ = st;
  DropOutput();
  return write_broken_;
}

bool LocalLink::full() const { return queued_messages_ >= max_queued_ && queued_bytes_ >= kSlackBytes; }

Status LocalLink::Send(std::span<const LinkOutFrame> frames, int wait_ms, bool read_while_waiting) {
  if (!broken_.ok()) return broken_;
  if (!write_broken_.ok()) return write_broken_;
  if (frames.empty()) return Status::InvalidArgument("a message of no frames");
  if (full()) {
    TESSERA_RETURN_IF_ERROR(Flush());
    const Deadline deadline = Deadline::FromMillis(std::max(wait_ms, 0));
    while (full() && wait_ms > 0 && !deadline.Expired()) {
      // Reading the peer while we wait keeps two loops that send to each other from
      // waiting on each other: its messages queue up here, in order, for the socket.
      pollfd p{fd_, static_cast<short>(POLLOUT | (read_while_waiting ? POLLIN : 0)), 0};
      const int rc = poll(&p, 1, static_cast<int>(std::max<int64_t>(deadline.RemainingMillis(), 1)));
      if (rc < 0 && errno != EINTR) return Fail(Errno("poll", errno));
      if (read_while_waiting && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) TESSERA_RETURN_IF_ERROR(Read());
      TESSERA_RETURN_IF_ERROR(Flush());
    }
    if (full()) {
      return Status::ResourceExhausted("the local link's send queue is full (" + std::to_string(queued_messages_) +
                                       " messages, " + std::to_string(queued_bytes_) + " bytes)");
    }
  }
  Chunk small;
  auto append = [&](const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    small.copy.insert(small.copy.end(), b, b + n);
  };
  for (size_t i = 0; i < frames.size(); ++i) {
    const LinkOutFrame& f = frames[i];
    const uint64_t prefix = f.bytes.size() | (i + 1 < frames.size() ? kMoreBit : 0);
    append(&prefix, sizeof(prefix));
    if (f.owner == nullptr || f.owner->empty() || f.bytes.size() < kCopyBelow) {
      append(f.bytes.data(), f.bytes.size());
      continue;
    }
    out_.push_back(std::move(small));
    small = Chunk();
    Chunk held;
    held.owner = *f.owner;
    held.bytes = f.bytes;
    out_.push_back(std::move(held));
  }
  if (!small.copy.empty()) out_.push_back(std::move(small));
  // The copies' spans are taken once they no longer move.
  for (Chunk& c : out_) {
    if (c.owner.empty() && c.done == 0) c.bytes = c.copy;
  }
  out_.back().ends_message = true;
  ++queued_messages_;
  for (const LinkOutFrame& f : frames) queued_bytes_ += sizeof(uint64_t) + f.bytes.size();
  ++messages_sent_;
  return Flush();
}

Status LocalLink::Flush() {
  if (!broken_.ok()) return broken_;
  if (!write_broken_.ok()) return write_broken_;
  while (!out_.empty()) {
    std::array<iovec, 32> iov;
    size_t n = 0;
    for (auto it = out_.begin(); it != out_.end() && n < iov.size(); ++it, ++n) {
      iov[n].iov_base = const_cast<std::byte*>(it->bytes.data() + it->done);
      iov[n].iov_len = it->bytes.size() - it->done;
    }
    msghdr mh{};
    mh.msg_iov = iov.data();
    mh.msg_iovlen = n;
    const ssize_t w = sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::OK();
      return FailWrite(Errno("local link write", errno));
    }
    size_t left = static_cast<size_t>(w);
    while (!out_.empty()) {
      Chunk& c = out_.front();
      const size_t take = std::min(left, c.bytes.size() - c.done);
      c.done += take;
      left -= take;
      queued_bytes_ -= std::min(queued_bytes_, take);
      if (c.done < c.bytes.size()) break;
      if (c.ends_message) --queued_messages_;
      out_.pop_front();
    }
  }
  return Status::OK();
}

bool LocalLink::ParseStaged(Status* error) {
  // Parses whole prefixes and small frames out of the stage; true when a body must be
  // read directly (in_body_) or more bytes are needed.
  for (;;) {
    if (in_body_) {
      const size_t take = std::min(stage_end_ - stage_begin_, body_.size() - body_done_);
      if (take > 0) std::memcpy(static_cast<std::byte*>(body_.data()) + body_done_, &stage_[stage_begin_], take);
      body_done_ += take;
      stage_begin_ += take;
      if (body_done_ < body_.size()) return true;
      in_body_ = false;
      partial_.push_back(std::move(body_));
      body_ = Buffer();
      if (!body_more_) {
        ready_.push_back(std::move(partial_));
        partial_.clear();
        ++messages_received_;
      }
      continue;
    }
    if (stage_end_ - stage_begin_ < sizeof(uint64_t)) return true;
    uint64_t prefix;
    std::memcpy(&prefix, &stage_[stage_begin_], sizeof(prefix));
    const uint64_t len = prefix & ~kMoreBit;
    if (len > max_frame_bytes_) {
      *error = Status::Corruption("a local-link frame of " + std::to_string(len) + " bytes (the limit is " +
                                  std::to_string(max_frame_bytes_) + ")");
      return false;
    }
    if (partial_.size() + 1 > kMaxFrames) {
      *error = Status::Corruption("a local-link message of more than " + std::to_string(kMaxFrames) + " frames");
      return false;
    }
    stage_begin_ += sizeof(prefix);
    body_ = len > 0 ? Buffer::Allocate(len) : Buffer();
    body_done_ = 0;
    body_more_ = (prefix & kMoreBit) != 0;
    in_body_ = true;
  }
}

Status LocalLink::Read(size_t budget) {
  if (!broken_.ok()) return broken_;
  size_t got = 0;
  while (got < budget) {
    Status error;
    if (!ParseStaged(&error)) return Fail(error);
    ssize_t r;
    if (in_body_ && body_.size() - body_done_ >= kStageBytes / 2) {
      // A big frame: read straight into it.
      r = recv(fd_, static_cast<std::byte*>(body_.data()) + body_done_, body_.size() - body_done_, MSG_DONTWAIT);
      if (r > 0) body_done_ += static_cast<size_t>(r);
    } else {
      if (stage_begin_ == stage_end_) stage_begin_ = stage_end_ = 0;
      if (stage_end_ == stage_.size()) {  // compact: a partial prefix is at most 8 bytes
        std::memmove(stage_.data(), &stage_[stage_begin_], stage_end_ - stage_begin_);
        stage_end_ -= stage_begin_;
        stage_begin_ = 0;
      }
      r = recv(fd_, &stage_[stage_end_], stage_.size() - stage_end_, MSG_DONTWAIT);
      if (r > 0) stage_end_ += static_cast<size_t>(r);
    }
    if (r == 0) return Fail(Status::Unavailable("the peer closed the local link"));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return Fail(Errno("local link read", errno));
    }
    got += static_cast<size_t>(r);
  }
  Status error;
  if (!ParseStaged(&error)) return Fail(error);
  return Status::OK();
}

std::vector<Buffer> LocalLink::PopMessage() {
  std::vector<Buffer> m = std::move(ready_.front());
  ready_.pop_front();
  return m;
}

// ----------------------------------------------------------------------- set-up helpers

namespace link {

namespace {
socklen_t AbstractAddress(const std::string& name, sockaddr_un* a) {
  std::memset(a, 0, sizeof(*a));
  a->sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(a->sun_path) - 1);
  std::memcpy(a->sun_path + 1, name.data(), n);  // sun_path[0] == 0: the abstract namespace
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}
}  // namespace

LinkNonce RandomNonce() {
  LinkNonce n{};
  size_t got = 0;
  while (got < n.size()) {
    const ssize_t r = getrandom(n.data() + got, n.size() - got, 0);
    if (r > 0) got += static_cast<size_t>(r);
  }
  return n;
}

Result<int> Listen(std::string* name) {
  const LinkNonce tag = RandomNonce();
  std::string n = "tessera-link/" + std::to_string(getpid()) + "/";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    n += kHex[static_cast<unsigned>(tag[i]) >> 4];
    n += kHex[static_cast<unsigned>(tag[i]) & 15];
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("local link socket", errno);
  sockaddr_un a;
  const socklen_t len = AbstractAddress(n, &a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 128) != 0) {
    const int err = errno;
    close(fd);
    return Errno("local link bind/listen", err);
  }
  *name = n;
  return fd;
}

Result<int> ConnectAndSendNonce(const std::string& name, const LinkNonce& nonce) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("local link socket", errno);
  sockaddr_un a;
  const socklen_t len = AbstractAddress(name, &a);
  // A Unix stream connect completes at once or fails (EAGAIN: the backlog is full).
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    const int err = errno;
    close(fd);
    return Errno(("connecting to the local link @" + name).c_str(), err);
  }
  // A fresh socket's buffer takes 16 bytes whole.
  if (send(fd, nonce.data(), nonce.size(), MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(nonce.size())) {
    const int err = errno;
    close(fd);
    return Errno("writing the local link nonce", err);
  }
  return fd;
}

Result<uint32_t> PeerUid(int fd) {
  ucred c{};
  socklen_t len = sizeof(c);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return Errno("SO_PEERCRED", errno);
  return static_cast<uint32_t>(c.uid);
}

}  // namespace link
}  // namespace tessera::wire
