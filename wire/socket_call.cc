// Call: the blocking request/reply helper of wire/socket.h, for tools and tests.
#include "wire/socket.h"

namespace tessera::wire {

Result<InMessage> Call(Socket& socket, OutMessage&& request, Deadline deadline) {
  if (request.request_id() == 0) request.SetRequestId(socket.NextRequestId());
  const uint64_t id = request.request_id();
  const Op op = request.op();
  TESSERA_RETURN_IF_ERROR(socket.Send(std::move(request)));
  for (;;) {
    Result<InMessage> r = socket.Recv(deadline);
    if (!r.ok()) return r.status().WithContext("waiting for the reply to " + OpName(op));
    if (r->request_id() != id) continue;  // a late reply to an abandoned request
    Status st = StatusFromError(*r);
    if (!st.ok()) return st;
    return r;
  }
}

}  // namespace tessera::wire
