// Asynchronous block-I/O engine for one Node environment: io_uring for read/write/sync when the addon
// was built with liburing and the kernel allows it, a thread pool for everything else (and for all
// ops when io_uring is unavailable). Completions are delivered on the loop thread in batches.
#pragma once
#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "io_request.h"
#include "turn_batch.h"

namespace vtgt {

// Called on the loop thread with a batch of finished requests. The callee owns them afterwards.
using IoDeliver = std::function<void(IoRequest** reqs, size_t count)>;

class ThreadPool {
 public:
  ThreadPool(uv_loop_t* loop, unsigned threads, IoDeliver deliver);
  ~ThreadPool();
  void Submit(IoRequest* req);
  // Hands requests waiting for the end of the turn (or of a completion batch) to the workers now.
  void FlushNow() { Handoff(); }
  // Joins workers and closes the uv handles; once they are closed the object deletes itself, then calls done.
  void Shutdown(std::function<void()> done);
  unsigned threads() const { return static_cast<unsigned>(workers_.size()); }
  // Hand-overs of queued requests to the workers (one lock and wake-up each): fewer than requests
  // when they are batched per event-loop turn.
  double handoffs() const { return handoffs_; }

 private:
  void Work();
  void Handoff();
  static void OnAsync(uv_async_t* h);
  static void HandleClosed(ThreadPool* self);

  uv_async_t async_;
  // Requests made in one event-loop turn are handed to the workers together (one lock, one round of
  // wake-ups), as the io_uring engine submits them.
  TurnBatch turn_;
  int open_handles_ = 0;
  bool defer_ = true;
  bool delivering_ = false;
  std::vector<IoRequest*> pending_;  // loop thread only
  double handoffs_ = 0;
  IoDeliver deliver_;
  std::mutex mu_;  // queue_, idle_, stop_
  std::condition_variable cv_;
  std::deque<IoRequest*> queue_;
  unsigned idle_ = 0;
  std::mutex done_mu_;  // done_: finished requests, kept apart so workers finishing do not contend with submission
  std::vector<IoRequest*> done_;
  std::vector<std::thread> workers_;
  size_t inflight_ = 0;  // loop thread only
  bool stop_ = false;
  std::function<void()> closed_;
};

class UringEngine;  // io_uring.cc; opaque so this header does not need liburing

class IoEngine {
 public:
  // `threads`: pool size; `want_uring`: try io_uring (VTGT_IO_ENGINE=threadpool turns it off).
  IoEngine(uv_loop_t* loop, unsigned threads, bool want_uring, IoDeliver deliver);
  // Routes to io_uring when `prefer_uring` and the op is one io_uring does; else to the pool.
  void Submit(IoRequest* req, bool prefer_uring);
  // Requests made so far in this turn go to the kernel and the workers now, not at its end: for a
  // caller that wants a device busy again before it does slower work in the same turn.
  void FlushNow();
  // Stops the pool and the ring; `done` runs on the loop thread once every uv handle is closed (the
  // addon must stay loaded until then: napi_io.cc holds an async cleanup hook open for it).
  void Shutdown(std::function<void()> done);
  bool uring_active() const { return uring_ != nullptr; }
  unsigned uring_entries() const;
  unsigned pool_threads() const { return pool_->threads(); }
  // Why io_uring is off ("" when on): not built in, or the kernel refused io_uring_setup.
  const char* uring_unavailable_reason() const { return uring_reason_; }
  // Requests handed to each path since start (loop thread only): observability and tests.
  double uring_ops() const { return uring_ops_; }
  double pool_ops() const { return pool_ops_; }
  // io_uring_enter calls that submitted requests: fewer than uring_ops when submissions are batched.
  double uring_submits() const;
  double pool_handoffs() const { return pool_->handoffs(); }

 private:
  double uring_ops_ = 0;
  double pool_ops_ = 0;
  ThreadPool* pool_;
  UringEngine* uring_ = nullptr;
  const char* uring_reason_ = "";
};

// io_uring.cc
UringEngine* CreateUringEngine(uv_loop_t* loop, IoDeliver deliver, unsigned entries, const char** reason);
bool UringSubmit(UringEngine* e, IoRequest* req);  // false: op not handled by io_uring
void UringShutdown(UringEngine* e, std::function<void()> done);
void UringFlushNow(UringEngine* e);
unsigned UringEntries(const UringEngine* e);
double UringSubmits(const UringEngine* e);

}  // namespace vtgt
