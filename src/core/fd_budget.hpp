// SPDX-License-Identifier: MIT
// The descriptor budget (issue 14.5): how many client connections and splice pipes a worker
// may hold so that the process never runs out of descriptors while requests are in flight.
//
// How it works. At start the server raises RLIMIT_NOFILE's soft limit to the hard one (Go's
// runtime does the same), keeps a fixed and a proportional reserve for what is not per
// connection (listeners, event loops, logs, DNS, health checks), and splits the rest between
// the workers. In a worker's share each client connection counts for two descriptors (its
// own and the upstream connection a request on it may open) and each splice pipe for two.
// A worker at its budget sheds new connections at once (a 503 on plain listeners, a close on
// TLS ones) instead of accepting them into a process that would then fail requests in flight
// with EMFILE. Should the process run out anyway (an HTTP/2 client whose streams each hold an
// upstream connection, descriptors of the embedding program), a spare descriptor per worker
// lets the accept loop take the connection off the backlog and shed it cleanly, and the
// condition is logged once a second, not once per accept.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace trafficcop::detail {

/// RLIMIT_NOFILE's soft limit before and after raise_nofile_limit().
struct nofile_limit {
  std::uint64_t before = 0;
  std::uint64_t now = 0;
};

/// Raises the soft RLIMIT_NOFILE to the hard one (capped at what the kernel allows a
/// process, /proc/sys/fs/nr_open). Never fails: on error the limit stays as it was.
nofile_limit raise_nofile_limit() noexcept;

/// A worker's share of the descriptors.
struct fd_plan {
  std::size_t connections = 0;   // client connections; then new ones are shed
  std::size_t splice_pipes = 0;  // pipe pairs in use at once; then bodies are copied
};

/// Splits `nofile` descriptors between `workers` workers with `listeners` listeners each.
fd_plan plan_descriptors(std::uint64_t nofile, unsigned workers, std::size_t listeners) noexcept;

/// Counts the calls and logs one warning a second at most, naming what ran out and how many
/// times it happened since the last line (issue 14.5: a flood must not become a log flood).
/// Thread-safe. Returns true when it logged.
bool note_out_of_descriptors(const char* where) noexcept;

/// Same, for connections shed at a worker's budget.
bool note_shed(std::size_t limit) noexcept;

/// Answers a connection that will not be served and closes it: drains what the client
/// already sent (so that the close does not become a reset that destroys the answer), sends
/// a 503 with Retry-After on a plain listener (`plaintext`), then closes. Never blocks.
void shed_connection(int fd, bool plaintext) noexcept;

/// One descriptor held in reserve (/dev/null) per worker: on EMFILE, released to accept the
/// connection that is waiting, shed it, and taken again.
class spare_descriptor {
 public:
  spare_descriptor() noexcept { take(); }
  ~spare_descriptor() { release(); }
  spare_descriptor(const spare_descriptor&) = delete;
  spare_descriptor& operator=(const spare_descriptor&) = delete;
  /// Accepts one connection from listening socket `listener` using the spare descriptor and
  /// sheds it. False if the reserve was not held or nothing could be accepted.
  bool shed_one(int listener, bool plaintext) noexcept;

 private:
  void take() noexcept;
  void release() noexcept;
  int fd_ = -1;
};

}  // namespace trafficcop::detail
