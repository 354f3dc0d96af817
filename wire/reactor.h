// Reactor: one background thread that owns a set of sockets, waits on all of them
// (poll(2) over their ZMQ_FDs), runs each socket's handler for every valid message, runs
// tasks posted by other threads, and runs timers. It is the event loop of the server,
// the coordinator and the worker client.
//
// Threading contract:
//   * Background thread: exactly one ("tessera-reactor", started by Start(), joined by
//     Stop()). It owns every socket added to the reactor: handlers, posted tasks and
//     timer callbacks all run on it, one at a time, and only they may touch those
//     sockets (ZeroMQ sockets are not thread-safe).
//   * Post, RunAfter, RunEvery, Cancel and Stop may be called from any thread.
//     AddSocket may be called from any thread; it takes effect on the loop thread.
//   * A socket's same-host local links (wire/local_link.h) are polled here too, as raw
//     fds next to the ZeroMQ socket (Socket::AppendLinkPollFds), and read, flushed or
//     dropped on this thread (Socket::OnLinkEvents); their messages come out of
//     TryRecv like ZeroMQ ones. A leadable socket's links take input from a leader too
//     (Lead), so a same-host server's replies reach the caller with no loop hand-off. A socket taken with a handler may switch to a link
//     (Socket::EnableLocalLink); one without a handler never does (nobody reads it).
//   * Waiting (the loop thread's rule; issue 17: zmq_poll asked every socket's ZMQ_EVENTS
//     before and after each sleep, two system calls per socket and turn). The loop sleeps
//     in one poll(2) over the wake eventfd, each handler socket's ZMQ_FD (read once, when
//     the socket joins) and the link fds. ZMQ_FD is an edge, not a level: it turns
//     readable when ZeroMQ queues a command for the socket, and any call into the socket
//     (a Send from a handler of any socket, a posted task or a timer; a TryRecv; a link
//     switch's control frame; Connect; a getsockopt) may consume that signal and leave
//     messages queued with the fd quiet. So, before every sleep, each handler socket
//     called into since it was last found empty (Socket::zmq_fd_armed() false) is asked
//     ZMQ_EVENTS; one that shows POLLIN makes the sleep a zero-timeout poll and is read
//     this turn. A socket found empty (ZMQ_EVENTS, or a TryRecv that said TimedOut) is
//     armed: its fd fires on the next arrival. A socket whose fd fired is read until
//     TryRecv says TimedOut or max_batch_per_socket messages; one cut off by the batch
//     bound was called into, so the next turn asks it again. Sockets without a handler
//     are neither polled nor asked. Code that calls ZeroMQ on Socket::raw() directly
//     bypasses this bookkeeping: nothing on the loop thread may.
//   * Handlers must not block for long: they delay every other socket. Blocking work
//     belongs on another thread, which Posts its result back.
//   * The loop lock (issue 17: leader/follower). The loop thread holds it for everything
//     it does except sleeping in poll(2). Another thread that takes it (RunInline, Lead)
//     stands in for the loop thread meanwhile: it may call into the sockets and runs their
//     handlers, so "the loop thread" above means "whoever holds the loop lock". Before it
//     lets go, such a thread reads every handler socket it left called into until
//     TryRecv says TimedOut (running the handlers), so every socket is armed again when
//     the loop sleeps; one cut off by the batch bound, or holding link messages, wakes
//     the loop. A leader (Lead) sleeps in its own poll(2) on the same ZMQ_FDs as the
//     loop, which keeps watching them: whichever wakes first and takes the lock reads the
//     replies, so requests nobody waits on still complete. Lock order: the loop lock,
//     then mu_; handlers run under the loop lock and must not Stop() and join.
//   * A loop that sleeps while a leader reads (issue 17, SetRepliesAwaited). Watching
//     the leader's sockets too, the loop woke beside it on every reply and took the loop
//     lock, which the caller's next send then waited for: a context switch and a loop
//     turn per request on cores the I/O threads need. Once SetRepliesAwaited is given,
//     a loop that goes to sleep while a thread inside Lead polls every leadable socket,
//     or while no reply is awaited, leaves the leadable sockets' ZMQ_FDs out of its poll
//     (it is "blind"). Neither a leader whose leaving uncovers them nor a request sent
//     inline wakes it: a reply nobody leads for (or an unsolicited message, an auth=mac
//     WELCOME) is read by whoever leads next or by the loop, which sleeps blind at most
//     ReactorOptions::blind_sleep_ms, never later. Blind, it leaves those sockets'
//     local links' input to the leader as well, but only while the links are the ones
//     every covering leader listed (LeadableLinkPrint): one made or dropped since is
//     watched by the loop until a leader lists it. A leaving leader once woke it while
//     replies were still awaited: in a training step (a dozen requests in flight, each
//     wait a run of Lead turns) that woke it on most replies, and, awake between two of
//     the caller's turns, it read 20-40 % of the replies beside the leader (lead36,
//     docs/benchmarks-transport-lead.md). Re-arming a timer per send instead cost 6-8 µs
//     a call here (timerfd_settime reprograms this VM's timer).
//   * Sends (issue 17). No send on the loop waits: AddSocket makes every socket
//     NeverWait (wire/socket.h), so a message that cannot go at once (a peer that is
//     slow, unreachable or dead) waits in the socket's bounded outbox, and a send past
//     that bound fails at once. The loop flushes the outboxes at the top of every turn
//     and, while one holds messages, sleeps at most kOutboxRetryMs. A blocking send once
//     stalled the whole loop send_timeout_ms (5 s) per send to a dead coordinator.
//   * Stop() runs the tasks already posted (so a posted final Send still happens),
//     flushes the outboxes for at most the sockets' linger time, then
//     closes the sockets and joins. Stop from the loop thread itself only requests the
//     stop (it cannot join itself); the destructor then joins.
//
// Server loop:
//   auto r = Reactor::Create();  auto s = Socket::Create(ctx, SocketType::kRouter, opts);
//   auto ep = (*s)->Bind("tcp://127.0.0.1:*");
//   (*r)->AddSocket(std::move(*s), [&](Socket& sock, InMessage&& req) {
//     OutMessage rep = MakeReply(req, Op::RESPONSE); ...
//     sock.Send(std::move(rep)).IgnoreError();   // or log; a gone peer is not fatal
//   });
//   (*r)->Start();
// Client: add a DEALER per server with a handler that completes the pending request
// whose requestId matches (a map owned by the loop thread); callers Post() a task that
// assigns an id, records a completion handle and Sends; RunEvery() expires requests
// past their deadline with TimedOut.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "wire/mutex.h"
#include "wire/socket.h"

namespace tessera::wire {

// Per-reactor options.
struct ReactorOptions {
  // Messages received from one socket per loop turn before the others get a turn
  // (fairness between peers). Default: 64.
  int max_batch_per_socket = 64;
  // The longest sleep of a loop that leaves the leadable sockets to a leader (threading
  // contract, SetRepliesAwaited): how late a reply nobody leads for may be read. An idle
  // leading client's loop wakes this often. Default: 5.
  int blind_sleep_ms = 5;
};

class Reactor {
 public:
  // Runs on the loop thread for each valid message received on `socket`.
  using Handler = std::function<void(Socket& socket, InMessage&& msg)>;
  // Runs on the loop thread when a received message failed validation (the socket has
  // already logged it and, for ROUTER, replied). Optional.
  using ErrorHandler = std::function<void(Socket& socket, const Status& status)>;
  using Task = std::function<void()>;
  using TimerId = uint64_t;

  static Result<std::unique_ptr<Reactor>> Create(ReactorOptions options = {});
  ~Reactor();  // Stop()
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Takes ownership of `socket`; the reactor polls it and runs `handler` for each
  // message (a null handler: owned but not polled, e.g. send-only). Returns the socket
  // pointer, valid until Stop() returns, usable only on the loop thread (handlers,
  // posted tasks, timers) or before Start().
  // `leadable`: a leader (Lead) sleeps on this socket too (the sockets its callers'
  // replies arrive on; the others are read by the loop alone), and after
  // SetRepliesAwaited the loop may leave it to the leader.
  Socket* AddSocket(std::unique_ptr<Socket> socket, Handler handler,
                    ErrorHandler on_error = nullptr, bool leadable = false);

  // Starts the loop thread. Returns FailedPrecondition when already started.
  Status Start();
  // Idempotent. See the threading contract above.
  void Stop();

  // Runs `task` on the loop thread, in posting order. Returns false (and drops the
  // task) once Stop() has been called.
  bool Post(Task task);

  // Runs `fn` once after `delay` / every `interval` (first run after one interval), on
  // the loop thread. A periodic timer that falls behind skips missed runs. Returns an
  // id for Cancel. Timers pending at Stop() do not run.
  TimerId RunAfter(Duration delay, Task fn);
  TimerId RunEvery(Duration interval, Task fn);
  // The timer will not run again. Cancelling an unknown or finished id is a no-op.
  void Cancel(TimerId id);

  // True when called on the loop thread.
  bool InLoopThread() const;

  // Runs `fn` on the calling thread holding the loop lock, as a posted task would run
  // (it may call into the sockets), then restores the ZMQ_FD rule (contract above). On a
  // thread that already holds the loop lock (the loop, a handler run by Lead) runs `fn`
  // directly. Returns false, without running `fn`, while the loop is not running (not
  // started, stopping or stopped): post instead, or fail.
  template <typename Fn>
  bool RunInline(Fn&& fn) {
    const InlineEntry how = EnterInline(/*wait=*/true);
    if (how == InlineEntry::kRefused) return false;
    fn();
    if (how == InlineEntry::kEntered) LeaveInline();
    return true;
  }
  // RunInline only if the loop lock is free at once: false, without running `fn`, while
  // another thread holds it (the loop in its turn: posting costs that awake loop no
  // wake-up, where waiting for its lock cost the caller a sleep) or the loop is not running.
  template <typename Fn>
  bool TryRunInline(Fn&& fn) {
    const InlineEntry how = EnterInline(/*wait=*/false);
    if (how == InlineEntry::kRefused) return false;
    fn();
    if (how == InlineEntry::kEntered) LeaveInline();
    return true;
  }

  // One turn of a leader, on a thread that waits for replies: reads what the sockets
  // hold; if nothing, sleeps in poll(2) on the ZMQ_FD and the local links (input only)
  // of every leadable socket (AddSocket) and on `wake_fd` (the caller's eventfd: whoever completes what the caller
  // waits for writes it; Stop() does too) until one fires or `until`, then reads the
  // sockets whose fd fired, running their handlers on this thread. Returns false when
  // the loop is not running (the caller waits some other way).
  bool Lead(int wake_fd, Clock::time_point until);

  // Lets the loop sleep without the leadable sockets while a thread leads (threading
  // contract). `awaited` runs on the loop thread, holding the loop lock, before it
  // sleeps: true while replies are expected on the leadable sockets (the client:
  // requests pending); a loop that no thread covers then watches them.
  // Call before Start. Without it the loop watches them always.
  void SetRepliesAwaited(std::function<bool()> awaited);

 private:
  struct Entry {
    std::unique_ptr<Socket> socket;
    Handler handler;
    ErrorHandler on_error;
    bool leadable = false;
    int zmq_fd = -1;        // the socket's ZMQ_FD, fetched on the loop thread
    bool readable = false;  // this turn: ZMQ_EVENTS said a message is queued
  };
  struct Timer {
    Clock::time_point due;
    Duration interval;         // zero: one-shot
    std::shared_ptr<Task> fn;  // shared so a periodic timer runs without holding mu_
  };

  enum class InlineEntry { kRefused, kNested, kEntered };
  InlineEntry EnterInline(bool wait);
  void LeaveInline();
  void AcquireLoop();
  void ReleaseLoop();
  bool HoldsLoop() const { return loop_owner_.load() == std::this_thread::get_id(); }
  // Holding the loop lock, not the loop thread: reads each joined handler socket that was
  // called into (or whose fd fired: `fired`, by index into entries_) until it is empty.
  // Returns true when a message was handled; *wake: the loop must look again.
  bool Settle(const std::vector<size_t>& fired, bool* wake);

  Reactor(ReactorOptions options, int wake_fd);
  void Loop();
  // Loop lock: flushes every socket's outbox; true when one still holds messages.
  bool FlushOutboxes();
  // The stopping loop: flushes until the outboxes are empty or the sockets' linger passed.
  void DrainOutboxes();
  // How long a loop whose outboxes hold messages sleeps at most before it retries them.
  static constexpr int kOutboxRetryMs = 5;
  void Wake();
  void RunPosted() EXCLUDES(mu_);
  void RunDueTimers() EXCLUDES(mu_);
  int PollTimeoutMillis() EXCLUDES(mu_);
  TimerId AddTimer(Duration first, Duration interval, Task fn) EXCLUDES(mu_);

  // Constant after construction.
  const ReactorOptions options_;
  const int wake_fd_;  // eventfd: Post/Stop write it, the loop polls it

  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> stop_requested_{false};

  // The loop lock (contract above) and who holds it. Not annotated: the loop holds it
  // across a whole turn but for the poll, which the analysis cannot follow.
  Mutex loop_mu_;
  std::atomic<std::thread::id> loop_owner_{};

  // Constant after Start.
  std::function<bool()> replies_awaited_;

  // Loop lock (or before Start / after join).
  bool loop_live_ = false;  // the loop runs: entries_ are joined and polled
  std::vector<Entry> entries_;
  // The posted tasks being run, swapped with posted_: the two deques trade storage, so a
  // loop turn allocates none (a fresh std::deque allocates its map and a block).
  std::deque<Task> running_;

  // State below is protected by mu_.
  Mutex mu_;
  bool started_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::deque<Task> posted_ GUARDED_BY(mu_);
  std::vector<Entry> pending_entries_ GUARDED_BY(mu_);
  std::map<TimerId, Timer> timers_ GUARDED_BY(mu_);
  // Threads inside Lead: their wake fds, and joins_ when they listed the sockets to poll.
  struct LeaderEntry {
    int wake_fd;
    uint64_t joins;
    uint64_t links;  // LeadableLinkPrint() when it listed them
  };
  std::vector<LeaderEntry> leaders_ GUARDED_BY(mu_);
  // How often the loop took in AddSocket's sockets: a leader that listed its sockets
  // before the last time polls none of those, so the loop may not leave them to it.
  uint64_t joins_ GUARDED_BY(mu_) = 0;
  // mu_ held: a thread inside Lead polls every leadable socket and the local links they
  // have now (`links`: LeadableLinkPrint(), taken under the loop lock), so the loop may
  // go blind.
  bool CoveredLocked(uint64_t links) const REQUIRES(mu_);
  // Loop lock: a fingerprint of the leadable sockets' local links that take input. A link
  // made or dropped after a leader listed its fds changes it: the loop then watches them.
  uint64_t LeadableLinkPrint();
  TimerId next_timer_id_ GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::wire
