#include "wire/shm_arena.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <thread>
#include <vector>

#include "common/stream_copy.h"
#include "wire/shm_stream.h"

namespace tessera::wire {

namespace {

std::atomic<int64_t> g_mapped_peer_arenas{0};
std::atomic<uint64_t> g_arena_seq{0};

std::string Errno(const std::string& what) { return what + ": " + strerror(errno); }

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Detaches the arenas of exited peers. One thread per process, started with the first
// mapped peer arena; holds only weak references, so it never keeps a mapping alive.
class Reaper {
 public:
  static Reaper& Get() {
    static Reaper r;
    return r;
  }
  void Add(std::weak_ptr<ShmPeerArena> a) {
    std::lock_guard<std::mutex> l(mu_);
    arenas_.push_back(std::move(a));
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  }
  ~Reaper() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    pthread_setname_np(pthread_self(), "tessera-shmreap");
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, std::chrono::milliseconds(100));
      std::vector<std::weak_ptr<ShmPeerArena>> list = arenas_;
      l.unlock();
      std::vector<bool> keep(list.size(), true);
      for (size_t i = 0; i < list.size(); ++i) {
        std::shared_ptr<ShmPeerArena> a = list[i].lock();
        keep[i] = a && !a->DetachIfPeerGone();
      }
      l.lock();
      // Entries added meanwhile sit after the copied prefix; keep them.
      std::vector<std::weak_ptr<ShmPeerArena>> next;
      for (size_t i = 0; i < arenas_.size(); ++i) {
        if (i >= keep.size() || keep[i]) next.push_back(std::move(arenas_[i]));
      }
      arenas_.swap(next);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::weak_ptr<ShmPeerArena>> arenas_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int64_t TEST_MappedPeerArenas() { return g_mapped_peer_arenas.load(); }

// ------------------------------------------------------------------------------ ShmTxArena

Result<std::shared_ptr<ShmTxArena>> ShmTxArena::Create(uint64_t bytes) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  bytes = RoundUp(std::max<uint64_t>(bytes, page), page);
  const std::string name = std::string(kShmMemfdPrefix) + std::to_string(getpid()) + "-" +
                           std::to_string(++g_arena_seq);
  const int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Status::IOError(Errno("memfd_create"));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    Status st = Status::IOError(Errno("ftruncate of the shared-memory arena"));
    close(fd);
    return st;
  }
  // A peer maps the whole size: a later shrink would make its reads fault (SIGBUS).
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    Status st = Status::IOError(Errno("sealing the shared-memory arena"));
    close(fd);
    return st;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Status st = Status::IOError(Errno("mmap of the shared-memory arena"));
    close(fd);
    return st;
  }
  return std::shared_ptr<ShmTxArena>(new ShmTxArena(fd, static_cast<std::byte*>(p), bytes));
}

ShmTxArena::~ShmTxArena() {
  munmap(base_, size_);
  close(fd_);
}

uint64_t* ShmTxArena::State(uint64_t slot_start) const {
  return reinterpret_cast<uint64_t*>(base_ + slot_start);
}

void ShmTxArena::Reclaim() {
  while (!slots_.empty() &&
         std::atomic_ref<uint64_t>(*State(slots_.front().start)).load(std::memory_order_acquire) == 0) {
    slots_.pop_front();
  }
  if (slots_.empty()) head_ = 0;  // reuse the low, already faulted-in pages
}

std::optional<ShmSlotRef> ShmTxArena::Put(std::span<const std::byte> bytes) {
  std::optional<ShmSlotRef> ref = Reserve(bytes.size());
  // The receiver learns of the slot only from the descriptor, which crosses the socket
  // after this copy (the socket's send and receive order the two).
  if (ref) PayloadCopy(base_ + ref->offset, bytes.data(), bytes.size(), bytes.size());
  return ref;
}

std::optional<ShmSlotRef> ShmTxArena::Reserve(uint64_t length) {
  const uint64_t need = kShmSlotAlign + RoundUp(length, kShmSlotAlign);
  if (length == 0 || need > size_) return std::nullopt;
  Reclaim();
  uint64_t start;
  if (slots_.empty()) {
    start = 0;
  } else {
    const uint64_t tail = slots_.front().start;
    if (head_ > tail) {  // in use: [tail, head_)
      if (size_ - head_ >= need) {
        start = head_;
      } else if (need <= tail) {  // wrap (afterwards head_ == tail reads as full, below)
        start = 0;
      } else {
        return std::nullopt;
      }
    } else {  // wrapped, in use: [tail, end) and [0, head_)
      if (tail - head_ >= need) {
        start = head_;
      } else {
        return std::nullopt;
      }
    }
  }
  uint64_t token = ++next_token_ & ~kShmClaimed;
  if (token == 0) token = ++next_token_ & ~kShmClaimed;
  // Progress first: a stale count from the slot's last use must never be read as this
  // payload's (the descriptor sent after this orders both for the receiver).
  std::atomic_ref<uint64_t>(*State(start + kShmProgressOffset)).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(*State(start)).store(token, std::memory_order_release);
  head_ = start + need;
  slots_.push_back(Slot{start, start + need});
  return ShmSlotRef{start + kShmSlotAlign, length, token};
}

uint64_t* ShmTxArena::progress(const ShmSlotRef& ref) const {
  return State(ref.offset - kShmSlotAlign + kShmProgressOffset);
}

void ShmTxArena::Abandon(const ShmSlotRef& ref) {
  std::atomic_ref<uint64_t>(*State(ref.offset - kShmSlotAlign)).store(0, std::memory_order_release);
}

// ---------------------------------------------------------------------------- ShmPeerArena

Result<std::shared_ptr<ShmPeerArena>> ShmPeerArena::Open(pid_t pid, int fd, uint64_t bytes) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  // The pidfd is taken first: it refers to this process even if the pid is reused later.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  auto fail = [&](Status st) {
    if (pidfd >= 0) close(pidfd);
    return st;
  };
  // The kernel allows opening another process's fd through /proc only to a caller that
  // may ptrace-read it: the same uid (and not a setuid process). Another user gets EACCES.
  const int f = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (f < 0) return fail(Status::Unavailable(Errno("cannot open the peer's arena " + path)));
  auto fail_fd = [&](Status st) {
    close(f);
    return fail(std::move(st));
  };
  struct stat s {};
  if (fstat(f, &s) != 0) return fail_fd(Status::IOError(Errno("fstat " + path)));
  if (!S_ISREG(s.st_mode) || s.st_uid != geteuid()) {
    return fail_fd(Status::Unavailable(path + " is not a regular file of uid " + std::to_string(geteuid())));
  }
  char link[256] = {0};
  const ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
  const std::string want = std::string("/memfd:") + kShmMemfdPrefix;
  if (n <= 0 || std::string(link, static_cast<size_t>(n)).rfind(want, 0) != 0) {
    return fail_fd(Status::Unavailable(path + " is not a Tessera arena (" + std::string(link) + ")"));
  }
  const int seals = fcntl(f, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
    return fail_fd(Status::Unavailable(path + " is not sealed against shrinking"));
  }
  if (static_cast<uint64_t>(s.st_size) != bytes || bytes == 0) {
    return fail_fd(Status::Unavailable(path + " has " + std::to_string(s.st_size) + " bytes, the peer said " +
                                       std::to_string(bytes)));
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  if (p == MAP_FAILED) return fail_fd(Status::IOError(Errno("mmap " + path)));
  close(f);  // the mapping keeps the memfd alive
  std::shared_ptr<ShmPeerArena> a(new ShmPeerArena(pid, pidfd, static_cast<std::byte*>(p), bytes));
  g_mapped_peer_arenas.fetch_add(1);
  Reaper::Get().Add(a);
  return a;
}

ShmPeerArena::~ShmPeerArena() {
  if (!detached_) g_mapped_peer_arenas.fetch_sub(1);
  munmap(base_, size_);
  if (pidfd_ >= 0) close(pidfd_);
}

bool ShmPeerArena::detached() const {
  std::lock_guard<std::mutex> l(mu_);
  return detached_;
}

Result<Buffer> ShmPeerArena::Claim(const ShmSlotRef& ref, const uint64_t** progress) {
  if (ref.length == 0 || ref.offset < kShmSlotAlign || ref.offset % kShmSlotAlign != 0 || ref.offset > size_ ||
      ref.length > size_ - ref.offset) {
    return Status::Corruption("shared-memory descriptor out of range: offset " + std::to_string(ref.offset) +
                              ", length " + std::to_string(ref.length) + " in an arena of " +
                              std::to_string(size_) + " bytes");
  }
  if (ref.token == 0 || (ref.token & kShmClaimed) != 0) {
    return Status::Corruption("shared-memory descriptor with an invalid token " + std::to_string(ref.token));
  }
  std::lock_guard<std::mutex> l(mu_);
  if (detached_) return Status::Unavailable("the peer's shared-memory arena is gone (process exited)");
  auto* state = reinterpret_cast<uint64_t*>(base_ + ref.offset - kShmSlotAlign);
  uint64_t expected = ref.token;
  if (!std::atomic_ref<uint64_t>(*state).compare_exchange_strong(expected, ref.token | kShmClaimed,
                                                                  std::memory_order_acq_rel)) {
    return Status::Corruption("shared-memory slot at offset " + std::to_string(ref.offset) +
                              " is not in flight with token " + std::to_string(ref.token) + " (state " +
                              std::to_string(expected) + "): a replayed or forged descriptor");
  }
  ++live_;
  if (progress != nullptr) {
    *progress = reinterpret_cast<const uint64_t*>(base_ + ref.offset - kShmSlotAlign + kShmProgressOffset);
  }
  std::shared_ptr<ShmPeerArena> self = shared_from_this();
  return Buffer::Wrap(base_ + ref.offset, ref.length, Device::kCPU, [self, state] { self->Release(state); });
}

void ShmPeerArena::Release(uint64_t* state) {
  std::lock_guard<std::mutex> l(mu_);
  if (!detached_) std::atomic_ref<uint64_t>(*state).store(0, std::memory_order_release);
  --live_;
}

bool ShmPeerArena::PeerExited() const {
  if (pidfd_ >= 0) {
    pollfd p{pidfd_, POLLIN, 0};
    return poll(&p, 1, 0) > 0;  // a pidfd turns readable when the process exits
  }
  return kill(pid_, 0) != 0 && errno == ESRCH;
}

bool ShmPeerArena::DetachIfPeerGone() {
  if (!PeerExited()) return false;
  std::lock_guard<std::mutex> l(mu_);
  if (detached_) return true;
  if (live_ > 0) return false;  // the application still reads payloads of it: later
  // Same address range, no longer backed by the peer's memfd: the memory is freed once
  // every other mapping goes, and a stray access faults instead of reading stale bytes.
  if (mmap(base_, size_, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
    return false;
  }
  detached_ = true;
  g_mapped_peer_arenas.fetch_sub(1);
  return true;
}

}  // namespace tessera::wire
