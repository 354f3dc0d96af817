// Client's control-plane calls to the coordinator: the barrier, the rendezvous table,
// step and checkpoint reports and preemption requests (declared in worker/client.h;
// the data plane and the reply handling are in client.cc).
#include <glog/logging.h>

#include <algorithm>
#include <thread>

#include "worker/client.h"
#include "worker/client_metrics.h"

namespace tessera::worker {

using wire::Op;
using wire::OutMessage;

bool Client::CompleteIfStopped(const Handle& h, const std::string& what) {
  std::lock_guard<std::mutex> l(mu_);
  if (health_.ok()) return false;
  h.CompletePart(health_.WithContext(what));
  return true;
}

Status Client::Barrier(Duration timeout, int64_t final_step) {
  OutMessage m(Op::BARRIER);
  uint64_t rid = ++next_request_id_;
  m.SetRequestId(rid);
  // Barrier ids count barriers, not requests, so every worker's n-th barrier has id n.
  auto b = m.header().getBody().initBarrier();
  b.setBarrierId(++barriers_);
  b.setFinalStep(final_step);
  Handle h = Handle::Pending(1);
  auto holder = std::make_shared<OutMessage>(std::move(m));
  reactor_->Post([this, holder, h, rid, timeout] {
    if (CompleteIfStopped(h, "barrier")) return;
    Part p;
    p.handle = h;
    p.deadline = Clock::now() + timeout;
    p.what = "barrier";
    pending_.emplace(rid, std::move(p));
    Status st = control_->Send(std::move(*holder));
    if (!st.ok()) {
      pending_.erase(rid);
      h.CompletePart(st);
    }
  });
  return h.Wait(timeout + std::chrono::seconds(1));
}

Result<Client::RendezvousReply> Client::Rendezvous(const std::string& key, std::string_view value, bool put,
                                                   Duration timeout) {
  OutMessage m(Op::RENDEZVOUS);
  const uint64_t rid = ++next_request_id_;
  m.SetRequestId(rid);
  auto body = m.header().getBody().initRendezvous();
  body.setKey(key);
  body.setPut(put);
  if (put) body.setValue(kj::arrayPtr(reinterpret_cast<const kj::byte*>(value.data()), value.size()));
  auto reply = std::make_shared<RendezvousReply>();
  Handle h = Handle::Pending(1);
  auto holder = std::make_shared<OutMessage>(std::move(m));
  std::string what = std::string("rendezvous ") + (put ? "put" : "get") + " of '" + key + "'";
  reactor_->Post([this, holder, h, rid, timeout, reply, what] {
    if (CompleteIfStopped(h, what)) return;
    Part p;
    p.handle = h;
    p.deadline = Clock::now() + timeout;
    p.what = what;
    p.rendezvous = reply;
    pending_.emplace(rid, std::move(p));
    Status st = control_->Send(std::move(*holder));
    if (!st.ok()) {
      pending_.erase(rid);
      h.CompletePart(st.WithContext(what));
    }
  });
  TESSERA_RETURN_IF_ERROR(h.Wait(timeout + std::chrono::seconds(1)));
  return *reply;
}

Status Client::RendezvousPut(const std::string& key, std::string_view value, Duration timeout) {
  return Rendezvous(key, value, true, timeout).status();
}

Result<std::string> Client::RendezvousGet(const std::string& key, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  // Polling keeps the coordinator free of parked requests; the value is created once, at
  // start-up, so a short fixed interval costs nothing worth a push notification.
  constexpr auto kPoll = std::chrono::milliseconds(20);
  for (;;) {
    const auto left = deadline - Clock::now();
    if (left <= Duration::zero()) break;
    TESSERA_ASSIGN_OR_RETURN(RendezvousReply r, Rendezvous(key, {}, false, std::chrono::duration_cast<Duration>(left)));
    if (r.found) return std::move(r.value);
    std::this_thread::sleep_for(std::min<Duration>(kPoll, std::chrono::duration_cast<Duration>(deadline - Clock::now())));
  }
  return Status::TimedOut("rendezvous key '" + key + "': no worker put a value within " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                          " ms (did worker 0 start?)");
}

void Client::ReportStep(int64_t step, double loss, uint64_t samples) {
  metrics_->steps.Add(1);
  metrics_->samples.Add(samples);
  metrics_->loss.Set(loss);
  reactor_->Post([this, step, loss, samples] {
    last_step_ = step;
    OutMessage m(Op::STEP_DONE);
    auto r = m.header().getBody().initStepDone();
    r.setStep(step);
    r.setLoss(loss);
    r.setSamples(samples);
    control_->Send(std::move(m)).IgnoreError();
  });
}

ResumePoint Client::resume() const {
  std::lock_guard<std::mutex> l(mu_);
  return resume_;
}

std::string Client::pending_checkpoint_dir(int64_t step) const {
  std::lock_guard<std::mutex> l(mu_);
  return prepared_dir_.first == step ? prepared_dir_.second : std::string();
}

void Client::ReportCheckpoint(int64_t step, bool ok, const std::string& message, int64_t next_step, int64_t epoch,
                              int64_t position, WrittenPart part) {
  int64_t expected = step;
  pending_checkpoint_.compare_exchange_strong(expected, -1);
  reactor_->Post([this, step, ok, message, next_step, epoch, position, part] {
    OutMessage m(Op::CKPT_DONE);
    m.SetStep(step);
    auto d = m.header().getBody().initCkptDone();
    d.setStep(step);
    d.setOk(ok);
    d.setMessage(message);
    d.setNextStep(next_step);
    d.setDataEpoch(epoch);
    d.setDataPosition(position);
    d.setDigest(part.digest);
    d.setRecords(part.records);
    control_->Send(std::move(m)).IgnoreError();
  });
}

void Client::RequestPreempt(int signal, bool urgent) {
  reactor_->Post([this, signal, urgent] {
    if (coordinator_stopped_) return;
    OutMessage m(Op::PREEMPT);
    auto p = m.header().getBody().initPreempt();
    p.setSignal(signal);
    p.setUrgent(urgent);
    control_->Send(std::move(m)).IgnoreError();
  });
}

}  // namespace tessera::worker
