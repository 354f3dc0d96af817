// Client::CompleteFromReply: a reply (or error) completes its request's part, its values
// copied into the caller's tensor (a same-host streamed reply block by block as the
// server writes it, wire/shm_stream.h).
#include <algorithm>
#include <cstring>

#include "common/exit_codes.h"
#include "common/stream_copy.h"
#include "worker/client.h"
#include "worker/client_metrics.h"

namespace tessera::worker {

using wire::InMessage;
using wire::Op;

void Client::CompleteFromReply(uint64_t rid, InMessage&& msg) {
  auto it = pending_.find(rid);
  if (it == pending_.end()) return;  // expired earlier; its handle already failed
  Part p = TakePending(it);
  if (p.server >= 0 && static_cast<size_t>(p.server) < metrics_->rtt.size()) {
    metrics_->rtt[static_cast<size_t>(p.server)]->Record(std::chrono::duration<double>(Clock::now() - p.sent).count());
  }
  // A server reached over TCP alone never has a channel: its state is not worth a string.
  const size_t server = static_cast<size_t>(p.server);
  if (p.server >= 0 && !server_tcp_only_[server] && (p.zero_copy_push || (p.out != nullptr && p.groups == nullptr))) {
    // Dense requests to this server go whole (streamed) while its channel is on, else cut
    // up for TCP (PipelineOverTcp); the channel turns on (or off) between requests.
    server_on_shm_[static_cast<size_t>(p.server)].store(servers_[static_cast<size_t>(p.server)]->shm_state() == "on",
                                                        std::memory_order_relaxed);
  }
  if (msg.op() == Op::ERROR) return p.handle.CompletePart(wire::StatusFromError(msg).WithContext(p.What()));
  // A same-host reply whose values the server is still writing (wire/shm_stream.h): a
  // dense pull's is copied out as it arrives, below; anything else waits for all of it.
  // Twice the server's own bound: a server waiting on our gradient gives up at one and
  // then says so through the progress word (a server that exits is noticed at once).
  const Duration stream_timeout = 2 * wire::ShmStreamTimeout();
  if (msg.streamed() && (p.out == nullptr || p.groups != nullptr)) {
    Status st = msg.AwaitPayloads(stream_timeout);
    if (!st.ok()) return p.handle.CompletePart(st.WithContext(p.What()));
  }
  if (p.rendezvous != nullptr) {
    auto body = msg.header().getBody();
    if (msg.op() != Op::RENDEZVOUS || !body.isRendezvous()) {
      return p.handle.CompletePart(Status::Corruption(p.What() + ": the coordinator answered with " +
                                                      wire::OpName(msg.op())));
    }
    auto r = body.getRendezvous();
    p.rendezvous->found = r.getFound();
    p.rendezvous->value.assign(reinterpret_cast<const char*>(r.getValue().begin()), r.getValue().size());
    return p.handle.CompletePart(Status::OK());
  }
  if (p.digest_sum != nullptr) {
    auto body = msg.header().getBody();
    if (!body.isResponse()) return p.handle.CompletePart(Status::Corruption(p.What() + ": not a response"));
    *p.digest_sum += body.getResponse().getStoreDigest();
  }
  if (p.out != nullptr) {
    if (msg.num_payloads() != 1 || msg.payload_dtype(0) != DType::kF32 ||
        msg.payload_elements(0) != p.out_elements) {
      return p.handle.CompletePart(Status::Corruption(p.What() + ": reply carries the wrong number of values"));
    }
    auto bytes = msg.payload(0);
    stats_.bytes_pulled += bytes.size();
    if (msg.payload_stream(0) != nullptr && p.groups == nullptr) {
      // The waiting caller copies the values out as the server publishes them.
      auto held = std::make_shared<InMessage>(std::move(msg));
      auto* dst = reinterpret_cast<std::byte*>(p.out);
      p.handle.DeferPart([held, dst, what = p.What(), stream_timeout]() -> Status {
        const wire::ShmStream* stream = held->payload_stream(0);
        const auto src = held->payload(0);
        for (uint64_t b = 0; b < src.size(); b += wire::kShmStreamBlock) {
          const uint64_t len = std::min<uint64_t>(wire::kShmStreamBlock, src.size() - b);
          Status st = stream->WaitFor(b + len, stream_timeout);
          if (!st.ok()) return st.WithContext(what + ": the server's reply");
          PayloadCopy(dst + b, src.data() + b, len, src.size());
        }
        return Status::OK();
      });
      return;
    } else if (p.groups == nullptr) {
      PayloadCopy(p.out, bytes.data(), bytes.size(), bytes.size());
    } else {
      // Straight from the reply frame into the caller's rows.
      ScatterGroups(*p.groups, p.group_of, reinterpret_cast<const float*>(bytes.data()), p.row_width, p.out);
    }
  }
  p.handle.CompletePart(Status::OK());
}

}  // namespace tessera::worker
