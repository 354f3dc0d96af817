// Status and Result<T>: how every fallible operation in Tessera reports failure.
//
// No exception crosses a module boundary: foreign errors (ZeroMQ, Cap'n Proto,
// RocksDB, MPI, CUDA, NCCL) are translated into a Status at the first line that
// touches them. The code set is small and operational: callers branch on the code,
// people read the message.
//
// Thread safety: Status and Result are values; distinct objects may be used from
// distinct threads without synchronisation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tessera {

// Values are part of the wire format (Error.code): never renumber.
enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,    // caller's input is wrong (bad flag, bad request)
  kNotFound = 2,           // named thing does not exist (file, tensor, key range)
  kCorruption = 3,         // bytes are damaged or malformed (wire, disk)
  kIOError = 4,            // the OS said no (write, fsync, rename)
  kUnavailable = 5,        // a peer is gone or unreachable
  kTimedOut = 6,           // a bounded wait ran out
  kAborted = 7,            // the job or operation was stopped on purpose
  kVersionMismatch = 8,    // protocol, shard-map or format version differs
  kInternal = 9,           // a bug: an invariant of ours broke
  kResourceExhausted = 10, // a limit was hit (message size, in-flight requests)
  kFailedPrecondition = 11 // the system is not in a state that allows this
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status TimedOut(std::string m) { return {StatusCode::kTimedOut, std::move(m)}; }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status VersionMismatch(std::string m) { return {StatusCode::kVersionMismatch, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "TimedOut: waiting for server 1" ; "OK" when ok().
  std::string ToString() const;

  // Returns a copy whose message is "context: message". Keeps the code. OK stays OK.
  Status WithContext(std::string_view context) const;

  // Swallowing an error must be written out, so it can be found by grep.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result constructed from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace tessera

#define TESSERA_STATUS_CONCAT_INNER(a, b) a##b
#define TESSERA_STATUS_CONCAT(a, b) TESSERA_STATUS_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the current function when it is not OK.
#define TESSERA_RETURN_IF_ERROR(expr)                      \
  do {                                                     \
    ::tessera::Status _tessera_st = (expr);                \
    if (!_tessera_st.ok()) return _tessera_st;             \
  } while (0)

// Same, adding "context: " in front of the message.
#define TESSERA_RETURN_IF_ERROR_CTX(expr, context)                       \
  do {                                                                   \
    ::tessera::Status _tessera_st = (expr);                              \
    if (!_tessera_st.ok()) return _tessera_st.WithContext(context);      \
  } while (0)

// `lhs = value of expr`, or returns its Status. lhs may declare: auto x.
#define TESSERA_ASSIGN_OR_RETURN(lhs, expr) \
  TESSERA_ASSIGN_OR_RETURN_IMPL(TESSERA_STATUS_CONCAT(_tessera_res_, __LINE__), lhs, expr)
#define TESSERA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
