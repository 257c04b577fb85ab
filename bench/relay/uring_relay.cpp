// SPDX-License-Identifier: MIT
// bench/relay/uring_relay.cpp — the blind TCP relay of asio_relay.cpp on an io_uring loop of
// its own (issue 12 part 2): what one thread can do when the kernel is entered once per loop
// turn for every connection at once.
//
//   uring_relay --listen PORT --upstream PORT [--no-fixed] [--taskrun defer|coop|signal]
//               [--batch N:USEC]
//
// - One io_uring_submit_and_wait(1) per loop turn: the SQEs queued while handling the last
//   turn's completions (sends, re-armed receives, ...) go in, and the next completions come
//   back, in one io_uring_enter.
// - Multishot accept and multishot receive: one SQE per socket for its whole life. Receives
//   pick their 16 KiB buffer from a provided-buffer ring (1024 buffers), returned to the ring
//   once its bytes are sent on.
// - Registered (fixed) files: clients are accepted straight into the ring's file table, the
//   upstream socket is installed there once connected (--no-fixed: plain descriptors).
// - IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN where the kernel takes them (completion work
//   runs only when this thread waits, never as an interrupting task_work), else COOP_TASKRUN
//   (task_work runs at the thread's next kernel entry, without an IPI), else no flags; the
//   choice is printed. --taskrun coop starts at the second, --taskrun signal takes the third:
//   no flags, as Asio 1.81 sets its ring up (task_work notified with TWA_SIGNAL: the thread is
//   interrupted, by an IPI when it runs on another CPU, and runs it at once).
// - --batch N:USEC: wait for N completions, but no longer than USEC once one has come (the
//   kernel's min_wait, 6.12+): fewer, larger loop turns when the relay is not saturated, at
//   up to USEC of added latency. Off by default (wait for one).
// On SIGTERM or SIGINT it prints loop turns, completions and submissions to stderr and exits.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

constexpr unsigned buf_size = 16 * 1024;  // as trafficcop's reads
constexpr unsigned buf_count = 1024;      // power of two (ring mask)
constexpr unsigned buf_group = 0;
constexpr unsigned file_slots = 16384;
constexpr unsigned ring_entries = 4096;

// user_data: a connection's address (16-byte aligned) | op << 1 | side, or one of these.
constexpr std::uint64_t tag_ignore = 0;
constexpr std::uint64_t tag_accept = 1;
enum op : std::uint64_t { op_recv, op_send, op_connect, op_install, op_shutdown, op_cancel };

struct chunk {
  unsigned bid;  // provided buffer id
  unsigned len;  // bytes received into it
  unsigned off;  // bytes of it already sent
};

/// Bytes received on side `s` and sent to the other side.
struct direction {
  std::deque<chunk> queue;  // received, not yet (wholly) sent; the front one is being sent
  bool sending = false;
  bool recv_armed = false;
  bool starved = false;  // the multishot receive stopped for want of buffers
  bool eof = false;
  bool shut = false;  // the FIN was passed on
};

struct alignas(16) conn {
  int fd[2] = {-1, -1};   // 0: client, 1: upstream (file-table slots with fixed files)
  int install[1] = {-1};  // the upstream descriptor, then its slot (IORING_OP_FILES_UPDATE)
  direction dir[2];
  int inflight = 0;  // SQEs whose last CQE has not come back
  bool closing = false;
};

struct stats {
  unsigned long long turns = 0, cqes = 0, sqes = 0, extra_submits = 0, accepted = 0, starved = 0;
};

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

class relay {
 public:
  relay(unsigned short listen_port, unsigned short upstream_port, bool fixed, int first_flags,
        unsigned batch_n, unsigned batch_usec)
      : fixed_(fixed), batch_n_(batch_n), batch_usec_(batch_usec) {
    setup_ring(first_flags);
    setup_buffers();
    if (fixed_) {
      int r = io_uring_register_files_sparse(&ring_, file_slots);
      if (r < 0) {
        std::fprintf(stderr, "uring_relay: no registered files (%s); plain descriptors\n",
                     std::strerror(-r));
        fixed_ = false;
      }
    }
    upstream_.sin_family = AF_INET;
    upstream_.sin_port = htons(upstream_port);
    upstream_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd_ = make_listener(listen_port);
    arm_accept();
    std::fprintf(stderr, "uring_relay: kernel %s; ring flags %s; features 0x%x; %s; %s\n",
                 kernel().c_str(), flags_name_.c_str(), ring_.features,
                 ring_fd_registered_ ? "ring fd registered" : "ring fd not registered",
                 fixed_ ? "registered files" : "plain descriptors");
    std::fprintf(stderr,
                 "uring_relay: listening on 127.0.0.1:%u, upstream 127.0.0.1:%u; wait for %u "
                 "completion(s)%s\n",
                 listen_port, upstream_port, batch_n_,
                 batch_n_ > 1 ? (", at most " + std::to_string(batch_usec_) +
                                 " us after the first (min_wait)")
                                    .c_str()
                              : "");
  }

  void run() {
    while (!stop_requested) {
      int r = enter();
      ++st_.turns;
      if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME)
        die("io_uring_enter", -r);
      unsigned head, n = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        handle(cqe->user_data, cqe->res, cqe->flags);
        ++n;
      }
      io_uring_cq_advance(&ring_, n);
      st_.cqes += n;
      give_back_buffers();
    }
    std::fprintf(stderr,
                 "uring_relay: %llu loop turns (io_uring_enter), %llu extra submits, %llu SQEs, "
                 "%llu CQEs, %llu connections, %llu receives stopped for want of buffers\n",
                 st_.turns, st_.extra_submits, st_.sqes, st_.cqes, st_.accepted, st_.starved);
  }

 private:
  [[noreturn]] static void die(const char* what, int err) {
    std::fprintf(stderr, "uring_relay: %s: %s\n", what, std::strerror(err));
    std::exit(1);
  }

  static std::string kernel() {
    utsname u{};
    uname(&u);
    return u.release;
  }

  /// Submits what is queued and waits for a completion (--batch: for N, or USEC after one).
  int enter() {
    if (batch_n_ <= 1) return io_uring_submit_and_wait(&ring_, 1);
    // liburing 2.3 cannot pass min_wait_usec (it was padding before 6.12): publish the SQ tail
    // as io_uring_submit does, then io_uring_enter(2) with the extended argument.
    io_uring_sq& sq = ring_.sq;
    unsigned tail = sq.sqe_tail;
    if (sq.sqe_head != tail) {
      sq.sqe_head = tail;
      io_uring_smp_store_release(sq.ktail, tail);
    }
    unsigned to_submit = tail - io_uring_smp_load_acquire(sq.khead);
    io_uring_getevents_arg arg{};
    arg.pad = batch_usec_;  // min_wait_usec
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    int fd = ring_.ring_fd;
    if (ring_fd_registered_) {
      flags |= IORING_ENTER_REGISTERED_RING;
      fd = ring_.enter_ring_fd;
    }
    long r = syscall(__NR_io_uring_enter, fd, to_submit, batch_n_, flags, &arg, sizeof arg);
    return r < 0 ? -errno : static_cast<int>(r);
  }

  void setup_ring(int first) {
    struct attempt {
      unsigned flags;
      const char* name;
    };
    const attempt attempts[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
         "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL"},
        {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "COOP_TASKRUN|SUBMIT_ALL"},
        {0, "none (as Asio 1.81)"},
    };
    int r = -EINVAL;
    for (int i = first; i < 3; ++i) {
      const attempt& a = attempts[i];
      io_uring_params p{};
      p.flags = a.flags | IORING_SETUP_CQSIZE;
      p.cq_entries = 4 * ring_entries;
      r = io_uring_queue_init_params(ring_entries, &ring_, &p);
      if (r == 0) {
        flags_name_ = a.name;
        break;
      }
      std::fprintf(stderr, "uring_relay: ring flags %s refused (%s)\n", a.name, std::strerror(-r));
    }
    if (r < 0) die("io_uring_queue_init_params", -r);
    ring_fd_registered_ = io_uring_register_ring_fd(&ring_) == 1;
  }

  void setup_buffers() {
    std::size_t ring_bytes = buf_count * sizeof(io_uring_buf);
    void* mem =
        mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) die("mmap", errno);
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = buf_count;
    reg.bgid = buf_group;
    int r = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (r < 0) die("io_uring_register_buf_ring", -r);
    bufs_.resize(std::size_t{buf_count} * buf_size);
    for (unsigned i = 0; i < buf_count; ++i) give_back(i);
    give_back_buffers();
  }

  int make_listener(unsigned short port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket", errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Accepted sockets inherit TCP_NODELAY from the listener (they are clones of it), which
    // matters with registered files: a client accepted into the file table has no descriptor
    // to call setsockopt(2) on.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) die("bind", errno);
    if (listen(fd, 4096) < 0) die("listen", errno);
    return fd;
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (!s) {  // the SQ is full: submit what is queued (rare: 4096 entries)
      io_uring_submit(&ring_);
      ++st_.extra_submits;
      s = io_uring_get_sqe(&ring_);
      if (!s) die("io_uring_get_sqe", EBUSY);
    }
    ++st_.sqes;
    return s;
  }

  static std::uint64_t tag(conn* c, op o, int side) {
    return reinterpret_cast<std::uint64_t>(c) | (o << 1) | static_cast<std::uint64_t>(side);
  }

  /// An SQE on connection c's socket `side`, counted in flight.
  io_uring_sqe* conn_sqe(conn* c, op o, int side) {
    io_uring_sqe* s = sqe();
    io_uring_sqe_set_data64(s, tag(c, o, side));
    ++c->inflight;
    return s;
  }
  void on_fd(io_uring_sqe* s) const {
    if (fixed_) s->flags |= IOSQE_FIXED_FILE;
  }

  void arm_accept() {
    io_uring_sqe* s = sqe();
    if (fixed_) {
      io_uring_prep_multishot_accept_direct(s, listen_fd_, nullptr, nullptr, 0);
    } else {
      io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(s, tag_accept);
  }

  void arm_recv(conn* c, int side) {
    io_uring_sqe* s = conn_sqe(c, op_recv, side);
    io_uring_prep_recv_multishot(s, c->fd[side], nullptr, 0, 0);
    on_fd(s);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = buf_group;
    c->dir[side].recv_armed = true;
    c->dir[side].starved = false;
  }

  void send_front(conn* c, int side) {
    direction& d = c->dir[side];
    const chunk& k = d.queue.front();
    io_uring_sqe* s = conn_sqe(c, op_send, side);
    io_uring_prep_send(s, c->fd[1 - side], buf(k.bid) + k.off, k.len - k.off, MSG_NOSIGNAL);
    on_fd(s);
    d.sending = true;
  }

  void pass_fin(conn* c, int side) {
    io_uring_sqe* s = conn_sqe(c, op_shutdown, side);
    io_uring_prep_shutdown(s, c->fd[1 - side], SHUT_WR);
    on_fd(s);
  }

  char* buf(unsigned bid) { return bufs_.data() + std::size_t{bid} * buf_size; }

  void give_back(unsigned bid) {
    io_uring_buf_ring_add(br_, buf(bid), buf_size, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(buf_count), static_cast<int>(to_give_++));
  }

  /// Publishes the buffers returned this turn, then re-arms receives that ran out of them.
  void give_back_buffers() {
    if (to_give_ == 0) return;
    io_uring_buf_ring_advance(br_, static_cast<int>(to_give_));
    to_give_ = 0;
    std::vector<conn*> starved;
    starved.swap(starved_);
    for (conn* c : starved) {
      for (int side = 0; side < 2; ++side) {
        if (!c->closing && c->dir[side].starved && !c->dir[side].recv_armed) arm_recv(c, side);
      }
      --c->inflight;  // the reference the starved_ list held
      release(c);
    }
  }

  void handle(std::uint64_t data, int res, unsigned flags) {
    if (data == tag_ignore) return;
    if (data == tag_accept) return on_accept(res, flags);
    conn* c = reinterpret_cast<conn*>(data & ~std::uint64_t{15});
    int side = static_cast<int>(data & 1);
    auto o = static_cast<op>((data >> 1) & 7);
    switch (o) {
      case op_recv:
        on_recv(c, side, res, flags);
        break;
      case op_send:
        on_send(c, side, res);
        break;
      case op_connect:
        on_connect(c, res);
        break;
      case op_install:
        on_install(c, res);
        break;
      case op_shutdown:
        c->dir[side].shut = true;
        if (res < 0 || (c->dir[0].shut && c->dir[1].shut)) teardown(c);
        break;
      case op_cancel:
        break;
    }
    if (!(o == op_recv && (flags & IORING_CQE_F_MORE))) {
      --c->inflight;
      release(c);
    }
  }

  void on_accept(int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) arm_accept();  // the multishot accept stopped: restart it
    if (res < 0) return;                             // e.g. ENFILE: the next one may work
    ++st_.accepted;
    auto* c = new conn;
    c->fd[0] = res;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      teardown(c);
      release(c);
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->install[0] = fd;
    io_uring_sqe* s = conn_sqe(c, op_connect, 1);
    io_uring_prep_connect(s, fd, reinterpret_cast<const sockaddr*>(&upstream_), sizeof upstream_);
  }

  void on_connect(conn* c, int res) {
    if (res < 0) return teardown(c);
    if (!fixed_) {
      c->fd[1] = c->install[0];
      c->install[0] = -1;
      return start(c);
    }
    // Into the file table at a slot the kernel picks; it writes the slot over install[0].
    c->fd[1] = c->install[0];  // closed in on_install
    io_uring_sqe* s = conn_sqe(c, op_install, 1);
    io_uring_prep_files_update(s, c->install, 1, IORING_FILE_INDEX_ALLOC);
  }

  void on_install(conn* c, int res) {
    int fd = c->fd[1];
    if (res == 1) {
      c->fd[1] = c->install[0];
      c->install[0] = -1;
    } else {
      c->fd[1] = -1;
    }
    close(fd);  // the file table holds its own reference
    if (res != 1) return teardown(c);
    start(c);
  }

  void start(conn* c) {
    if (c->closing) return;
    arm_recv(c, 0);
    arm_recv(c, 1);
  }

  void on_recv(conn* c, int side, int res, unsigned flags) {
    direction& d = c->dir[side];
    if (!(flags & IORING_CQE_F_MORE)) d.recv_armed = false;
    if (res > 0) {
      unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
      if (c->closing) return give_back(bid);
      d.queue.push_back({bid, static_cast<unsigned>(res), 0});
      if (!d.sending) send_front(c, side);
      if (!d.recv_armed) arm_recv(c, side);  // stopped with data (e.g. the CQ overflowed)
      return;
    }
    if (c->closing) return;
    if (res == 0) {  // EOF: pass the FIN on once everything before it is sent
      d.eof = true;
      if (d.queue.empty()) pass_fin(c, side);
      return;
    }
    if (res == -ENOBUFS) {  // every buffer is waiting to be sent: re-arm when one comes back
      ++st_.starved;
      if (!d.starved) {
        d.starved = true;
        ++c->inflight;  // the starved_ list holds a reference
        starved_.push_back(c);
      }
      return;
    }
    teardown(c);  // a reset, or the like
  }

  void on_send(conn* c, int side, int res) {
    direction& d = c->dir[side];
    d.sending = false;
    if (res < 0 || c->closing) {
      teardown(c);
      return;
    }
    chunk& k = d.queue.front();
    k.off += static_cast<unsigned>(res);
    if (k.off == k.len) {
      give_back(k.bid);
      d.queue.pop_front();
    }
    if (!d.queue.empty()) {
      send_front(c, side);
    } else if (d.eof) {
      pass_fin(c, side);
    }
  }

  /// Stops every operation on c; the sockets close and c is freed when the last CQE is back.
  void teardown(conn* c) {
    if (c->closing) return;
    c->closing = true;
    for (int side = 0; side < 2; ++side) {
      direction& d = c->dir[side];
      if (d.recv_armed) {
        io_uring_sqe* s = sqe();
        io_uring_prep_cancel64(s, tag(c, op_recv, side), 0);
        io_uring_sqe_set_data64(s, tag_ignore);
      }
      // Buffers queued but not being sent go back now; the one being sent on its CQE.
      for (std::size_t i = d.sending ? 1 : 0; i < d.queue.size(); ++i) give_back(d.queue[i].bid);
      if (d.sending) {
        d.queue.erase(d.queue.begin() + 1, d.queue.end());
      } else {
        d.queue.clear();
      }
    }
  }

  /// Frees c once it is being torn down and nothing is in flight.
  void release(conn* c) {
    if (!c->closing || c->inflight > 0) return;
    for (int side = 0; side < 2; ++side) {
      // A send whose CQE came after teardown left its buffer at the front.
      for (const chunk& k : c->dir[side].queue) give_back(k.bid);
    }
    for (int fd : c->fd) {
      if (fd < 0) continue;
      if (fixed_) {
        io_uring_sqe* s = sqe();
        io_uring_prep_close_direct(s, static_cast<unsigned>(fd));
        io_uring_sqe_set_data64(s, tag_ignore);
      } else {
        close(fd);
      }
    }
    if (c->install[0] >= 0) close(c->install[0]);  // connect failed before the install
    delete c;
  }

  io_uring ring_{};
  io_uring_buf_ring* br_ = nullptr;
  std::vector<char> bufs_;
  unsigned to_give_ = 0;
  std::vector<conn*> starved_;
  sockaddr_in upstream_{};
  int listen_fd_ = -1;
  bool fixed_;
  bool ring_fd_registered_ = false;
  unsigned batch_n_ = 1;
  unsigned batch_usec_ = 0;
  std::string flags_name_;
  stats st_;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: uring_relay --listen PORT --upstream PORT [--no-fixed] "
               "[--taskrun defer|coop|signal] [--batch N:USEC]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short listen_port = 0, upstream_port = 0;
  bool fixed = true;
  int first_flags = 0;
  unsigned batch_n = 1, batch_usec = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) {
      listen_port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (a == "--upstream" && i + 1 < argc) {
      upstream_port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (a == "--no-fixed") {
      fixed = false;
    } else if (a == "--batch" && i + 1 < argc) {
      if (std::sscanf(argv[++i], "%u:%u", &batch_n, &batch_usec) != 2 || batch_n == 0) usage();
    } else if (a == "--taskrun" && i + 1 < argc) {
      std::string t = argv[++i];
      if (t == "defer") {
        first_flags = 0;
      } else if (t == "coop") {
        first_flags = 1;
      } else if (t == "signal") {
        first_flags = 2;
      } else {
        usage();
      }
    } else {
      usage();
    }
  }
  if (listen_port == 0 || upstream_port == 0) usage();
  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: io_uring_enter returns -EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  relay r(listen_port, upstream_port, fixed, first_flags, batch_n, batch_usec);
  r.run();
  return 0;
}
