// io_uring engine: read/write/fsync go straight to the kernel ring; completions are signalled through
// an eventfd that libuv polls, so they are handled on the loop thread without a helper thread.
#include "io_engine.h"
#include "turn_batch.h"

#ifdef VTGT_HAVE_LIBURING
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <deque>
#include <string>

namespace vtgt {

class UringEngine {
 public:
  io_uring ring;
  unsigned entries = 0;
  int efd = -1;
  uv_poll_t poll;
  // Retries a submission the kernel refused (EAGAIN under memory pressure) when no completion is
  // coming that would retry it.
  uv_timer_t retry;
  // Submissions made in one event-loop turn go to the kernel in one io_uring_enter, and io-wq
  // workers find several requests per wake-up.
  TurnBatch turn;
  bool defer_flush = true;
  double submits = 0;  // io_uring_submit calls that handed requests to the kernel
  int open_handles = 0;
  IoDeliver deliver;
  std::deque<IoRequest*> backlog;  // requests waiting for a free submission slot
  std::vector<IoRequest*> batch;
  size_t inflight = 0;  // in the kernel or in backlog
  bool draining = false;
  unsigned unsubmitted = 0;
  // Requests in the kernel are capped at the ring size so completions never overflow the CQ ring
  // (which holds twice as many); the rest wait in `backlog`.
  unsigned in_kernel = 0;
  uint64_t async_bytes = 65536;
  std::function<void()> closed;

  // One SQE moves at most this much; longer transfers continue as short transfers do.
  static constexpr uint64_t kMaxChunk = 1u << 30;

  bool Prep(IoRequest* r) {
    if (in_kernel >= entries) return false;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (!sqe) return false;
    in_kernel++;
    unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(r->len - r->done, kMaxChunk));
    switch (r->op) {
      case IoOp::kRead:
        io_uring_prep_read(sqe, r->fd, r->buf + r->done, chunk, r->offset + r->done);
        break;
      case IoOp::kWrite:
        io_uring_prep_write(sqe, r->fd, r->buf + r->done, chunk, r->offset + r->done);
        break;
      case IoOp::kFdatasync:
        io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
        break;
      default:
        io_uring_prep_fsync(sqe, r->fd, 0);
        break;
    }
    if (r->op == IoOp::kRead || r->op == IoOp::kWrite) {
      sqe->rw_flags = r->mode;
      // Cached (page-cache) transfers complete inline in io_uring_enter, i.e. as a memcpy on the loop
      // thread. Large ones go to io-wq workers instead, so they copy in parallel (bench/IO-ENGINE.md).
      if (chunk >= async_bytes || r->punt) io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
    }
    io_uring_sqe_set_data(sqe, r);
    unsubmitted++;
    return true;
  }

  void Flush() {
    if (unsubmitted == 0) return;
    int n = io_uring_submit(&ring);
    submits++;
    if (n >= 0) {
      unsubmitted -= std::min<unsigned>(unsubmitted, static_cast<unsigned>(n));
      return;
    }
    // On failure (EAGAIN/EBUSY under memory pressure) the SQEs stay queued. A completion would retry,
    // but when the refused SQEs were all there was in flight none will come: retry on a timer too.
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&retry))) uv_timer_start(&retry, &UringEngine::OnRetry, 1, 0);
  }

  static void OnRetry(uv_timer_t* t) {
    auto* e = static_cast<UringEngine*>(t->data);
    if (!e->draining) e->Flush();
  }

  void Enqueue(IoRequest* r) {
    if (!backlog.empty() || !Prep(r)) backlog.push_back(r);
    if (draining) return;
    if (!defer_flush || turn.Add()) Flush();
  }

  static void EndOfTurn(void* owner) {
    auto* e = static_cast<UringEngine*>(owner);
    // A submission the ring had no room for waits in the backlog for a completion to free a slot.
    while (!e->backlog.empty() && e->Prep(e->backlog.front())) e->backlog.pop_front();
    e->Flush();
  }

  static void HandleClosed(UringEngine* eng) {
    if (--eng->open_handles > 0) return;
    // Requests still in the kernel complete into a ring that is going away; their memory is abandoned
    // with the environment rather than freed under the kernel's feet.
    io_uring_queue_exit(&eng->ring);
    close(eng->efd);
    std::function<void()> cb = std::move(eng->closed);
    delete eng;
    if (cb) cb();
  }

  void Complete(IoRequest* r, int res) {
    if (res == -EAGAIN || res == -EINTR) {
      backlog.push_back(r);
      return;
    }
    if (res < 0) {
      r->err = -res;
      r->result = static_cast<int64_t>(r->done);
    } else if (r->op == IoOp::kRead || r->op == IoOp::kWrite) {
      if (res == 0) {
        if (r->op == IoOp::kWrite) r->err = EIO;
        r->result = static_cast<int64_t>(r->done);  // read: end of file
      } else {
        r->done += static_cast<uint64_t>(res);
        if (r->done < r->len) {  // short transfer: continue where it stopped
          backlog.push_back(r);
          return;
        }
        r->result = static_cast<int64_t>(r->done);
      }
    } else {
      r->result = 0;
    }
    batch.push_back(r);
    inflight--;
  }

  static void OnPoll(uv_poll_t* h, int status, int /*events*/) {
    auto* e = static_cast<UringEngine*>(h->data);
    if (status < 0) return;
    uint64_t v;
    while (read(e->efd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    e->Drain();
  }

  void Drain() {
    draining = true;
    for (int round = 0; round < 64; round++) {
      io_uring_cqe* cqes[64];
      unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 64);
      in_kernel -= n;
      for (unsigned i = 0; i < n; i++) Complete(static_cast<IoRequest*>(io_uring_cqe_get_data(cqes[i])), cqes[i]->res);
      io_uring_cq_advance(&ring, n);
      while (!backlog.empty() && Prep(backlog.front())) backlog.pop_front();
      if (!batch.empty()) {
        std::vector<IoRequest*> out;
        out.swap(batch);
        if (inflight == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&poll));
        // JS continuations run inside deliver (microtasks drain when its callback scope closes); the
        // requests they submit are queued and go to the kernel in one io_uring_enter below.
        deliver(out.data(), out.size());
      }
      Flush();
      if (n < 64) break;
    }
    draining = false;
    Flush();
  }
};

UringEngine* CreateUringEngine(uv_loop_t* loop, IoDeliver deliver, unsigned entries, const char** reason) {
  auto* e = new UringEngine();
  int rc = io_uring_queue_init(entries, &e->ring, 0);
  if (rc < 0) {
    *reason = "io_uring_setup failed (kernel too old, or io_uring disabled by sysctl/seccomp)";
    delete e;
    return nullptr;
  }
  e->entries = entries;
  if (const char* a = std::getenv("VTGT_URING_ASYNC_BYTES")) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(a, &end, 10);
    if (end && *end == '\0') e->async_bytes = v;
  }
  e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->efd < 0 || io_uring_register_eventfd(&e->ring, e->efd) < 0) {
    *reason = "io_uring eventfd registration failed";
    if (e->efd >= 0) close(e->efd);
    io_uring_queue_exit(&e->ring);
    delete e;
    return nullptr;
  }
  e->deliver = std::move(deliver);
  uv_poll_init(loop, &e->poll, e->efd);
  e->poll.data = e;
  uv_poll_start(&e->poll, UV_READABLE, &UringEngine::OnPoll);
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->poll));
  // The poll handle keeps the loop alive while requests are in flight; the timer need not.
  uv_timer_init(loop, &e->retry);
  e->retry.data = e;
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->retry));
  e->turn.Init(loop, &UringEngine::EndOfTurn, e);
  if (const char* d = std::getenv("VTGT_URING_DEFER_SUBMIT")) e->defer_flush = std::string(d) != "0";
  e->open_handles = 3;  // poll, retry, and the turn batch's two handles counted as one
  return e;
}

bool UringSubmit(UringEngine* e, IoRequest* r) {
  switch (r->op) {
    case IoOp::kRead:
    case IoOp::kWrite:
    case IoOp::kFdatasync:
    case IoOp::kFsync:
      break;
    default:
      return false;
  }
  if (e->inflight++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&e->poll));
  e->Enqueue(r);
  return true;
}

void UringFlushNow(UringEngine* e) { UringEngine::EndOfTurn(e); }

unsigned UringEntries(const UringEngine* e) { return e->entries; }
double UringSubmits(const UringEngine* e) { return e->submits; }

void UringShutdown(UringEngine* e, std::function<void()> done) {
  uv_poll_stop(&e->poll);
  uv_timer_stop(&e->retry);
  e->closed = std::move(done);
  auto on_closed = [](uv_handle_t* h) { UringEngine::HandleClosed(static_cast<UringEngine*>(h->data)); };
  uv_close(reinterpret_cast<uv_handle_t*>(&e->poll), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&e->retry), on_closed);
  e->turn.Close([](void* owner) { UringEngine::HandleClosed(static_cast<UringEngine*>(owner)); });
}

}  // namespace vtgt

#else  // !VTGT_HAVE_LIBURING

namespace vtgt {
class UringEngine {};
UringEngine* CreateUringEngine(uv_loop_t*, IoDeliver, unsigned, const char** reason) {
  *reason = "built without liburing (install liburing-dev and rebuild)";
  return nullptr;
}
bool UringSubmit(UringEngine*, IoRequest*) { return false; }
void UringFlushNow(UringEngine*) {}
void UringShutdown(UringEngine*, std::function<void()> done) {
  if (done) done();
}
unsigned UringEntries(const UringEngine*) { return 0; }
double UringSubmits(const UringEngine*) { return 0; }
}  // namespace vtgt

#endif
