// SPDX-License-Identifier: MIT
// Zero-downtime binary upgrade (SIGUSR2, nginx's convention) and systemd socket activation:
// both hand listening sockets to a new process with systemd's LISTEN_FDS protocol
// (sd_listen_fds(3)). docs/operations.md#binary-upgrade tells the sequence.
//
// The old process forks and execs the binary at the path it was started as, with the same
// arguments, the listening sockets as fds 3.. (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) and the
// write end of a pipe (TRAFFICCOP_UPGRADE_FD). The new one writes "ready" to the pipe once its
// listeners accept; the old one then stops accepting and drains. A pipe rather than a signal:
// its end of file tells the old process at once that the new one died (a bad config, a crash,
// an exec failure), with no signal handler, no SIGCHLD race and no polling.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <sys/types.h>

namespace trafficcop::app {

/// How this process was started, to start its successor the same way.
struct process_origin {
  /// The binary's path as started (argv[0] made absolute, or found in PATH), not
  /// /proc/self/exe: after a package replaced the file, that names the old, deleted inode, and
  /// the point of an upgrade is to run the new one (nginx re-execs argv[0] too).
  std::string exe;
  std::vector<std::string> argv;
};

/// `argv0` as an absolute path: relative to the working directory now, or searched in PATH
/// when it has no '/'; "" if neither finds an executable.
std::string executable_path(const char* argv0);

/// A socket to hand over and its LISTEN_FDNAMES name (informational: the new process matches
/// sockets to listeners by their local address, since names may not hold ':').
struct handed_socket {
  int fd;
  std::string name;
};

/// Starts `origin` with `sockets` and waits up to `timeout` for it to be ready. Returns its
/// pid, or -1 with `why` set (the child is reaped or killed: nothing is left behind).
pid_t start_successor(const process_origin& origin, const std::vector<handed_socket>& sockets,
                      std::chrono::milliseconds timeout, std::string& why);

/// In the new process: the sockets it inherited (LISTEN_FDS for this pid), close-on-exec, the
/// environment variables unset so that no child of ours takes them.
std::vector<int> inherited_sockets();

/// In the new process: true if an old one waits for our readiness (TRAFFICCOP_UPGRADE_FD).
bool started_by_upgrade();
/// Tells the old process that we serve (once listeners accept); a no-op unless upgraded.
void announce_ready();

}  // namespace trafficcop::app
