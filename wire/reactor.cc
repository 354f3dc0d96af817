#include "wire/reactor.h"

#include <glog/logging.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tessera::wire {

namespace {

// Socket::PollFd speaks zmq_poll's flags (a link fd was once a zmq_pollitem_t); poll's differ.
short ToPollEvents(short zmq_events) {
  return static_cast<short>(((zmq_events & ZMQ_POLLIN) ? POLLIN : 0) | ((zmq_events & ZMQ_POLLOUT) ? POLLOUT : 0));
}
short ToZmqEvents(short revents) {
  return static_cast<short>(((revents & POLLIN) ? ZMQ_POLLIN : 0) | ((revents & POLLOUT) ? ZMQ_POLLOUT : 0) |
                            ((revents & ~(POLLIN | POLLOUT)) ? ZMQ_POLLERR : 0));
}

}  // namespace

Result<std::unique_ptr<Reactor>> Reactor::Create(ReactorOptions options) {
  // An eventfd, not an inproc socket, wakes the loop: writing it is thread-safe, so Post
  // needs no socket shared between threads.
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Status::IOError(std::string("eventfd: ") + strerror(errno));
  return std::unique_ptr<Reactor>(new Reactor(options, fd));
}

Reactor::Reactor(ReactorOptions options, int wake_fd) : options_(options), wake_fd_(wake_fd) {}

Reactor::~Reactor() {
  // A handler cannot destroy the reactor that is running it: the thread cannot join itself.
  CHECK(!InLoopThread()) << "Reactor destroyed from its own loop thread";
  Stop();
  if (thread_.joinable()) thread_.join();  // Stop() was first called from the loop thread
  close(wake_fd_);
}

Socket* Reactor::AddSocket(std::unique_ptr<Socket> socket, Handler handler, ErrorHandler on_error, bool leadable) {
  Socket* raw = socket.get();
  // A polled socket may move its peers to local links (wire/local_link.h): this loop
  // reads them. The socket is not used by any other thread until the loop takes it.
  if (handler) raw->EnableLocalLink();
  // No send on the loop waits (reactor.h, "Sends"); what cannot go waits in the outbox.
  raw->NeverWait();
  {
    MutexLock l(&mu_);
    pending_entries_.push_back(Entry{std::move(socket), std::move(handler), std::move(on_error), leadable});
  }
  Wake();
  return raw;
}

Status Reactor::Start() {
  AcquireLoop();  // the loop lock before mu_ (lock order, reactor.h)
  MutexLock l(&mu_);
  Status st;
  if (started_) {
    st = Status::FailedPrecondition("reactor already started");
  } else if (stopping_) {
    st = Status::FailedPrecondition("reactor was stopped");
  } else {
    started_ = true;
    loop_live_ = true;  // RunInline works from now on, before the loop's first turn
    thread_ = std::thread([this] { Loop(); });
  }
  ReleaseLoop();
  return st;
}

void Reactor::Stop() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
    // Leaders asleep in poll: the sockets they sleep on are about to close.
    const uint64_t one = 1;
    for (const LeaderEntry& leader : leaders_) {
      const int fd = leader.wake_fd;
      ssize_t n = write(fd, &one, sizeof(one));
      (void)n;
    }
  }
  stop_requested_.store(true);
  Wake();
  // A thread holding the loop lock (a handler run by a leader) cannot join the loop,
  // which waits for that lock: the destructor joins.
  if (thread_.joinable() && !InLoopThread() && !HoldsLoop()) thread_.join();
}

bool Reactor::Post(Task task) {
  {
    MutexLock l(&mu_);
    if (stopping_) return false;
    posted_.push_back(std::move(task));
  }
  Wake();
  return true;
}

Reactor::TimerId Reactor::RunAfter(Duration delay, Task fn) {
  return AddTimer(delay, Duration::zero(), std::move(fn));
}

Reactor::TimerId Reactor::RunEvery(Duration interval, Task fn) {
  if (interval <= Duration::zero()) interval = std::chrono::milliseconds(1);
  return AddTimer(interval, interval, std::move(fn));
}

Reactor::TimerId Reactor::AddTimer(Duration first, Duration interval, Task fn) {
  TimerId id;
  {
    MutexLock l(&mu_);
    id = ++next_timer_id_;
    timers_.emplace(id,
                    Timer{Clock::now() + first, interval, std::make_shared<Task>(std::move(fn))});
  }
  Wake();  // the loop may be sleeping past the new due time
  return id;
}

void Reactor::Cancel(TimerId id) {
  MutexLock l(&mu_);
  timers_.erase(id);
}

bool Reactor::InLoopThread() const { return loop_thread_id_.load() == std::this_thread::get_id(); }

void Reactor::AcquireLoop() {
  loop_mu_.Lock();
  loop_owner_.store(std::this_thread::get_id());
}

void Reactor::ReleaseLoop() {
  loop_owner_.store(std::thread::id());
  loop_mu_.Unlock();
}

Reactor::InlineEntry Reactor::EnterInline(bool wait) {
  if (HoldsLoop()) return InlineEntry::kNested;
  if (wait) {
    AcquireLoop();
  } else if (loop_mu_.TryLock()) {
    loop_owner_.store(std::this_thread::get_id());
  } else {
    return InlineEntry::kRefused;
  }
  if (!loop_live_ || stop_requested_.load()) {
    ReleaseLoop();
    return InlineEntry::kRefused;
  }
  return InlineEntry::kEntered;
}

void Reactor::LeaveInline() {
  bool wake = false;
  Settle({}, &wake);
  ReleaseLoop();
  if (wake) Wake();
}

bool Reactor::Settle(const std::vector<size_t>& fired, bool* wake) {
  bool handled = false;
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (!e.handler || e.zmq_fd < 0) continue;
    const bool fd_fired = std::find(fired.begin(), fired.end(), i) != fired.end();
    // Armed and quiet: nothing queued that its fd would not announce, nor link messages
    // a leader's OnLinkEvents (or a send reading while it waited) took in.
    if (e.socket->zmq_fd_armed() && !fd_fired && !e.socket->link_pending()) continue;
    for (int k = 0; k < options_.max_batch_per_socket && !stop_requested_.load(); ++k) {
      Result<InMessage> r = e.socket->TryRecv();
      if (r.ok()) {
        handled = true;
        e.handler(*e.socket, std::move(r).value());
      } else if (r.status().code() == StatusCode::kTimedOut) {
        break;
      } else if (e.on_error) {
        e.on_error(*e.socket, r.status());
      }
    }
  }
  // A socket left called into (cut off by the batch bound, or a handler sent on it) or
  // holding link messages: the loop, maybe asleep, would not see it. Nor a message an
  // inline sender left in an outbox: the loop flushes outboxes only when it turns, and
  // the ZMQ_FD edge that announces room may be taken here, so it could sleep on.
  for (Entry& e : entries_) {
    if (e.handler && e.zmq_fd >= 0 && (!e.socket->zmq_fd_armed() || e.socket->link_pending())) *wake = true;
    if (e.socket->outbox_size() > 0) *wake = true;
  }
  return handled;
}

bool Reactor::CoveredLocked(uint64_t links) const {
  return std::any_of(leaders_.begin(), leaders_.end(),
                     [this, links](const LeaderEntry& e) { return e.joins == joins_ && e.links == links; });
}

uint64_t Reactor::LeadableLinkPrint() {
  // The links' counters as well as their fds: a link dropped and another made on the
  // same fd number is a different file, which a leader listed before never polls.
  thread_local std::vector<Socket::PollFd> fds;
  uint64_t print = 0;
  for (const Entry& e : entries_) {
    if (!e.handler || !e.leadable) continue;
    fds.clear();
    e.socket->AppendLinkPollFds(&fds);
    const LinkStats& st = e.socket->link_stats();
    print = print * 1000003 + st.links_up * 31 + st.dropped;
    for (const Socket::PollFd& f : fds) {
      if (f.events & ZMQ_POLLIN) print = print * 1000003 + static_cast<uint64_t>(f.fd) + 1;
    }
  }
  return print;
}

void Reactor::SetRepliesAwaited(std::function<bool()> awaited) { replies_awaited_ = std::move(awaited); }

bool Reactor::Lead(int wake_fd, Clock::time_point until) {
  if (HoldsLoop()) return false;  // a handler waiting: it would sleep on its own lock
  // Reused: a leader turn per request should allocate nothing (Lead is not reentered:
  // a handler it runs holds the loop lock, above).
  thread_local std::vector<pollfd> items;
  // items[k + 1] is entries_[index[k]]'s ZMQ_FD, or one of its local links' fds (link[k]).
  thread_local std::vector<size_t> index;
  thread_local std::vector<bool> link;
  thread_local std::vector<size_t> fired;
  thread_local std::vector<Socket::PollFd> fds;
  items.clear();
  index.clear();
  link.clear();
  fired.clear();
  uint64_t links = 0;
  bool wake = false;
  {
    AcquireLoop();
    if (!loop_live_ || stop_requested_.load()) {
      ReleaseLoop();
      return false;
    }
    if (Settle({}, &wake)) {  // replies already queued: no sleep
      ReleaseLoop();
      if (wake) Wake();
      return true;
    }
    items.push_back(pollfd{wake_fd, POLLIN, 0});
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (!entries_[i].handler || !entries_[i].leadable || entries_[i].zmq_fd < 0) continue;
      items.push_back(pollfd{entries_[i].zmq_fd, POLLIN, 0});
      index.push_back(i);
      link.push_back(false);
      // A same-host peer's replies come over its local link: the leader reads that too,
      // so the loop may sleep through them. Only for input: a link with queued output
      // is the loop's to flush (it keeps polling POLLOUT while blind).
      fds.clear();
      entries_[i].socket->AppendLinkPollFds(&fds);
      for (const Socket::PollFd& f : fds) {
        if (!(f.events & ZMQ_POLLIN)) continue;
        items.push_back(pollfd{f.fd, POLLIN, 0});
        index.push_back(i);
        link.push_back(true);
      }
    }
    links = LeadableLinkPrint();
    bool stopping;
    {
      MutexLock l(&mu_);
      stopping = stopping_;  // Stop ran before this fd could be listed: it wakes nobody
      if (!stopping) leaders_.push_back(LeaderEntry{wake_fd, joins_, links});
    }
    ReleaseLoop();
    if (stopping) {
      if (wake) Wake();
      return false;
    }
  }
  if (wake) Wake();
  const auto left = until - Clock::now();
  int timeout = 0;
  if (left > Duration::zero()) {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    timeout = static_cast<int>(std::min<int64_t>(ms, 1 << 30));
  }
  const int rc = poll(items.data(), items.size(), timeout);
  if (rc > 0 && (items[0].revents & POLLIN)) {
    uint64_t count;
    ssize_t n = read(wake_fd, &count, sizeof(count));
    (void)n;
  }
  for (size_t k = 1; rc > 0 && k < items.size(); ++k) {
    if (items[k].revents != 0 && !link[k - 1]) fired.push_back(index[k - 1]);
  }
  AcquireLoop();
  const bool live = loop_live_ && !stop_requested_.load();
  wake = false;
  if (live) {
    // The link may have been dropped (its fd closed) since it was listed: OnLinkEvents
    // then finds no link by that fd and does nothing.
    for (size_t k = 1; rc > 0 && k < items.size(); ++k) {
      if (items[k].revents != 0 && link[k - 1]) {
        entries_[index[k - 1]].socket->OnLinkEvents(items[k].fd, ToZmqEvents(items[k].revents));
      }
    }
    Settle(fired, &wake);
  }
  {
    MutexLock l(&mu_);
    leaders_.erase(std::find_if(leaders_.begin(), leaders_.end(),
                                [wake_fd](const LeaderEntry& e) { return e.wake_fd == wake_fd; }));
  }
  // Replies still awaited do not wake a blind loop (contract, "A loop that sleeps while a
  // leader reads"): this caller is most likely back in Lead within microseconds.
  ReleaseLoop();
  if (wake) Wake();
  return live;
}

bool Reactor::FlushOutboxes() {
  bool backed_up = false;
  for (Entry& e : entries_) {
    if (e.socket->outbox_size() == 0) continue;
    e.socket->FlushOutbox();
    backed_up = backed_up || e.socket->outbox_size() > 0;
  }
  return backed_up;
}

void Reactor::DrainOutboxes() {
  // Nothing else runs on this loop any more, so waiting here delays only the exit, and
  // no longer than the sockets' linger: a dead peer cannot hold it up more than its
  // ZeroMQ queue already could.
  int linger_ms = 0;
  for (const Entry& e : entries_) {
    if (e.socket->outbox_size() > 0) linger_ms = std::max(linger_ms, e.socket->options().linger_ms);
  }
  const Deadline deadline = Deadline::FromMillis(linger_ms);
  while (FlushOutboxes() && !deadline.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kOutboxRetryMs));
  }
  size_t dropped = 0;
  for (const Entry& e : entries_) dropped += e.socket->outbox_size();
  if (dropped > 0) LOG(WARNING) << "reactor stopping: " << dropped << " queued sends dropped (their peers took no more)";
}

void Reactor::Wake() {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: the loop is certainly going to wake.
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;
}

void Reactor::RunPosted() {
  {
    MutexLock l(&mu_);
    running_.swap(posted_);
  }
  for (Task& t : running_) t();
  running_.clear();
}

void Reactor::RunDueTimers() {
  const Clock::time_point now = Clock::now();
  std::vector<TimerId> due;
  {
    MutexLock l(&mu_);
    for (const auto& [id, t] : timers_) {
      if (t.due <= now) due.push_back(id);
    }
  }
  for (TimerId id : due) {
    std::shared_ptr<Task> fn;
    {
      // Re-checked per timer: an earlier callback in this batch may have cancelled it.
      MutexLock l(&mu_);
      auto it = timers_.find(id);
      if (it == timers_.end()) continue;
      fn = it->second.fn;
      if (it->second.interval == Duration::zero()) {
        timers_.erase(it);
      } else {
        Timer& t = it->second;
        t.due += t.interval;
        if (t.due <= now) t.due = now + t.interval;  // fell behind: skip missed runs
      }
    }
    (*fn)();
  }
}

int Reactor::PollTimeoutMillis() {
  MutexLock l(&mu_);
  if (!posted_.empty() || !pending_entries_.empty()) return 0;
  if (timers_.empty()) return -1;
  Clock::time_point next = Clock::time_point::max();
  for (const auto& [id, t] : timers_) next = std::min(next, t.due);
  const auto left = next - Clock::now();
  if (left <= Duration::zero()) return 0;
  // Round up: waking a little late is fine, waking early just spins once more.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

void Reactor::Loop() {
  loop_thread_id_.store(std::this_thread::get_id());
  pthread_setname_np(pthread_self(), "tessera-reactor");
  std::vector<pollfd> items;  // [0]: the wake eventfd; then each polled socket's ZMQ_FD and link fds
  std::vector<Entry*> polled;
  std::vector<size_t> first_item;  // polled[i]'s items: [first_item[i], first_item[i + 1])
  std::vector<Socket::PollFd> fds;
  bool more_ready = false;  // a socket still holds link messages read earlier
  AcquireLoop();
  while (!stop_requested_.load()) {
    {
      MutexLock l(&mu_);
      if (!pending_entries_.empty()) ++joins_;
      for (Entry& e : pending_entries_) entries_.push_back(std::move(e));
      pending_entries_.clear();
    }
    const bool backed_up = FlushOutboxes();
    bool ready = more_ready;
    items.assign(1, pollfd{wake_fd_, POLLIN, 0});
    polled.clear();
    first_item.clear();
    for (Entry& e : entries_) {
      if (!e.handler) continue;
      if (e.zmq_fd < 0) {
        Result<int> fd = e.socket->ZmqFd();
        if (!fd.ok()) {
          LOG(ERROR) << "reactor: " << fd.status().ToString();
          stop_requested_.store(true);
          break;
        }
        e.zmq_fd = *fd;
      }
      // ZMQ_FD is an edge (see the threading contract): a socket called into since it was
      // last found empty may hold messages its fd will never announce, so ask it first.
      e.readable = false;
      if (!e.socket->zmq_fd_armed()) {
        Result<bool> r = e.socket->ZmqReadable();
        // An error: let TryRecv meet it and report it (on_error) rather than sleep on it.
        e.readable = !r.ok() || *r;
      }
      ready = ready || e.readable;
      first_item.push_back(items.size());
      items.push_back(pollfd{e.zmq_fd, POLLIN, 0});
      // The socket's local links (wire/local_link.h), polled directly: no I/O thread.
      fds.clear();
      e.socket->AppendLinkPollFds(&fds);
      for (const Socket::PollFd& f : fds) items.push_back(pollfd{f.fd, ToPollEvents(f.events), 0});
      polled.push_back(&e);
    }
    if (stop_requested_.load()) break;
    first_item.push_back(items.size());
    int timeout = ready ? 0 : PollTimeoutMillis();
    // ZeroMQ announces room on ZMQ_FD too, but a socket without a handler is not polled:
    // a bounded sleep keeps every outbox moving.
    if (backed_up && (timeout < 0 || timeout > kOutboxRetryMs)) timeout = kOutboxRetryMs;
    bool blind = false;
    if (replies_awaited_ && timeout != 0) {
      const uint64_t links = LeadableLinkPrint();
      bool covered;
      {
        MutexLock l(&mu_);
        covered = CoveredLocked(links);
      }
      blind = covered || !replies_awaited_();
    }
    if (blind) {
      // poll(2) skips a negative fd: the leader alone wakes on these sockets' replies,
      // from ZeroMQ and from their local links; a link's queued output stays the loop's.
      for (size_t i = 0; i < polled.size(); ++i) {
        if (!polled[i]->leadable) continue;
        items[first_item[i]].fd = -1;
        for (size_t k = first_item[i] + 1; k < first_item[i + 1]; ++k) {
          items[k].events = static_cast<short>(items[k].events & ~POLLIN);
          if (items[k].events == 0) items[k].fd = -1;
        }
      }
      if (timeout < 0 || timeout > options_.blind_sleep_ms) timeout = options_.blind_sleep_ms;
    }
    ReleaseLoop();  // leaders and inline senders may stand in meanwhile (contract)
    const int rc = poll(items.data(), items.size(), timeout);
    AcquireLoop();
    if (rc < 0 && errno != EINTR) {
      LOG(ERROR) << "reactor: poll failed: " << strerror(errno);
      break;
    }
    if (rc > 0 && (items[0].revents & POLLIN)) {
      uint64_t count;
      ssize_t n = read(wake_fd_, &count, sizeof(count));  // reset the eventfd counter
      (void)n;
    }
    more_ready = false;
    for (size_t i = 0; i < polled.size(); ++i) {
      Entry& e = *polled[i];
      for (size_t k = first_item[i] + 1; rc > 0 && k < first_item[i + 1]; ++k) {
        if (items[k].revents != 0) e.socket->OnLinkEvents(items[k].fd, ToZmqEvents(items[k].revents));
      }
      // A fired ZMQ_FD must be followed by a receive even when it announced something
      // else: only a call into the socket resets it, and poll would return at once.
      const bool fired = rc > 0 && items[first_item[i]].revents != 0;
      if (!fired && !e.readable && !e.socket->link_pending()) continue;
      for (int k = 0; k < options_.max_batch_per_socket && !stop_requested_.load(); ++k) {
        Result<InMessage> r = e.socket->TryRecv();
        if (r.ok()) {
          e.handler(*e.socket, std::move(r).value());
        } else if (r.status().code() == StatusCode::kTimedOut) {
          break;  // drained: the socket's fd is armed again
        } else if (e.on_error) {
          e.on_error(*e.socket, r.status());
        }
      }
      more_ready = more_ready || e.socket->link_pending();
    }
    RunPosted();
    RunDueTimers();
    // A task or timer that sent on a link may have read the peer's messages meanwhile
    // (a send that waits for room, or one that found the peer gone): no fd will say so.
    for (Entry* e : polled) more_ready = more_ready || e->socket->link_pending();
  }
  // Stopping: tasks posted before Stop() still run (a final Send goes out), then the
  // sockets close here, on the thread that used them.
  RunPosted();
  DrainOutboxes();
  loop_live_ = false;
  entries_.clear();
  ReleaseLoop();
  MutexLock l(&mu_);
  pending_entries_.clear();
  timers_.clear();
}

}  // namespace tessera::wire
