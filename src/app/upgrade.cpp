// SPDX-License-Identifier: MIT
// The binary upgrade's two sides and socket activation (upgrade.hpp).
#include "app/upgrade.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

extern char** environ;

namespace trafficcop::app {
namespace {

constexpr const char* ready_env = "TRAFFICCOP_UPGRADE_FD";
constexpr std::string_view ready_word = "ready\n";

/// The variables this protocol sets: an old value in our environment is not passed on.
bool is_protocol_variable(std::string_view e) {
  for (std::string_view v :
       {"LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "TRAFFICCOP_UPGRADE_FD="})
    if (e.starts_with(v)) return true;
  return false;
}

/// Writes `v` in decimal at `p` and a NUL after it; async-signal-safe (for the forked child).
void put_decimal(char* p, long v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) *p++ = digits[--n];
  *p = '\0';
}

/// Between fork and exec in a threaded process only async-signal-safe calls are allowed:
/// everything was allocated before the fork. Puts `sources[i]` at fd 3 + i (clearing their
/// close-on-exec flag), closes every other descriptor above 2, and execs.
[[noreturn]] void exec_child(const char* exe, char* const* argv, char* const* envp, char* pid_slot,
                             const std::vector<int>& sources, int* moved) {
  put_decimal(pid_slot, static_cast<long>(::getpid()));
  const int n = static_cast<int>(sources.size());
  // First out of the way of the target range (a source may sit at 3..3+n), then into it.
  for (int i = 0; i < n; ++i) moved[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, 3 + n);
  for (int i = 0; i < n; ++i)
    if (moved[i] < 0 || ::dup2(moved[i], 3 + i) < 0) ::_exit(126);
  ::close_range(static_cast<unsigned>(3 + n), UINT_MAX, 0);
  // The signals the old process takes with sigwait stay blocked across exec: until the new
  // one waits for them, a SIGHUP/SIGUSR1/SIGUSR2 stays pending instead of killing it.
  ::execve(exe, argv, envp);
  // The old process reads "E<errno>" from the readiness pipe (the last fd passed).
  char msg[32] = "E";
  put_decimal(msg + 1, errno);
  [[maybe_unused]] auto w = ::write(3 + n - 1, msg, std::strlen(msg));
  ::_exit(127);
}

/// Why the child that closed its pipe without "ready" ended (it has exited or is about to).
std::string reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status))
    return "it exited with status " + std::to_string(WEXITSTATUS(status)) +
           " before it was ready (its log says why)";
  if (WIFSIGNALED(status))
    return "it was killed by signal " + std::to_string(WTERMSIG(status)) + " before it was ready";
  return "it ended before it was ready";
}

/// Reads the child's word from `fd` for up to `timeout`: "ready", "E<errno>", or "" (closed).
/// Returns false on timeout.
bool read_word(int fd, std::chrono::milliseconds timeout, std::string& word) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;  // timeout or a poll error: the caller kills the child
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;  // as a timeout: the child is killed, never waited on alive
    if (n == 0) return true;  // closed: what was read is the word
    word.append(buf, static_cast<std::size_t>(n));
    if (word.find('\n') != std::string::npos) return true;
  }
}

int upgrade_fd = -1;  // the new process's end of the readiness pipe, once taken

}  // namespace

std::string executable_path(const char* argv0) {
  std::string a = argv0 ? argv0 : "";
  if (a.find('/') != std::string::npos) {
    if (a.front() == '/') return a;
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd)) return std::string(cwd) + "/" + a;
  } else if (const char* path = std::getenv("PATH"); path && !a.empty()) {
    std::string_view rest = path;
    while (!rest.empty()) {
      auto colon = rest.find(':');
      std::string dir(rest.substr(0, colon));
      rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
      std::string candidate = (dir.empty() ? "." : dir) + "/" + a;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

pid_t start_successor(const process_origin& origin, const std::vector<handed_socket>& sockets,
                      std::chrono::milliseconds timeout, std::string& why) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    why = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  std::vector<int> sources;
  std::string names;
  for (const auto& s : sockets) {
    sources.push_back(s.fd);
    names += (names.empty() ? "" : ":") + s.name;
  }
  sources.push_back(pipe_fds[1]);  // the readiness pipe, after the sockets
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (!is_protocol_variable(*e)) env.emplace_back(*e);
  env.push_back("LISTEN_FDS=" + std::to_string(sockets.size()));
  env.push_back("LISTEN_FDNAMES=" + names);
  env.push_back(std::string(ready_env) + "=" + std::to_string(3 + sockets.size()));
  env.push_back("LISTEN_PID=" + std::string(24, ' '));  // the child writes its pid here
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = origin.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* pid_slot = env.back().data() + std::strlen("LISTEN_PID=");
  std::vector<int> moved(sources.size());

  pid_t pid = ::fork();
  if (pid == 0)
    exec_child(origin.exe.c_str(), argv.data(), envp.data(), pid_slot, sources, moved.data());
  ::close(pipe_fds[1]);
  if (pid < 0) {
    why = std::string("fork: ") + std::strerror(errno);
    ::close(pipe_fds[0]);
    return -1;
  }
  std::string word;
  bool answered = read_word(pipe_fds[0], timeout, word);
  ::close(pipe_fds[0]);
  if (!answered) {
    ::kill(pid, SIGKILL);
    reap(pid);
    why = "pid " + std::to_string(pid) + " was not ready within " +
          std::to_string(timeout.count() / 1000) + " s: killed";
    return -1;
  }
  if (word == ready_word) return pid;
  if (word.starts_with("E")) {
    reap(pid);
    why = "cannot run " + origin.exe + ": " + std::strerror(std::atoi(word.c_str() + 1));
    return -1;
  }
  why = "pid " + std::to_string(pid) + ": " + reap(pid);
  return -1;
}

std::vector<int> inherited_sockets() {
  // Checks LISTEN_PID against ours, sets FD_CLOEXEC, unsets the variables (sd_listen_fds(3)).
  int n = sd_listen_fds(1);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) fds.push_back(SD_LISTEN_FDS_START + i);
  return fds;
}

bool started_by_upgrade() {
  if (upgrade_fd >= 0) return true;
  const char* v = std::getenv(ready_env);
  if (!v) return false;
  int fd = std::atoi(v);
  ::unsetenv(ready_env);
  struct stat st {};
  if (fd < 3 || ::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return false;
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  upgrade_fd = fd;
  return true;
}

void announce_ready() {
  if (upgrade_fd < 0) return;
  [[maybe_unused]] auto w = ::write(upgrade_fd, ready_word.data(), ready_word.size());
  ::close(upgrade_fd);
  upgrade_fd = -1;
}

}  // namespace trafficcop::app
