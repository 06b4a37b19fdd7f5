#include "io_engine.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

namespace vtgt {

ThreadPool::ThreadPool(uv_loop_t* loop, unsigned threads, IoDeliver deliver) : deliver_(std::move(deliver)) {
  uv_async_init(loop, &async_, &ThreadPool::OnAsync);
  async_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&async_));
  turn_.Init(loop, [](void* owner) { static_cast<ThreadPool*>(owner)->Handoff(); }, this);
  open_handles_ = 2;  // the async handle and the turn batch
  if (const char* d = std::getenv("VTGT_POOL_DEFER_SUBMIT")) defer_ = std::string(d) != "0";
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; i++) workers_.emplace_back([this] { Work(); });
}

ThreadPool::~ThreadPool() = default;

void ThreadPool::Submit(IoRequest* req) {
  // Keep the loop alive while requests are outstanding, like any pending fs call.
  if (inflight_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&async_));
  pending_.push_back(req);
  if (delivering_) return;  // handed over when this batch of completions has been delivered
  if (!defer_ || turn_.Add()) Handoff();
}

void ThreadPool::Handoff() {
  if (pending_.empty()) return;
  size_t n = pending_.size();
  unsigned wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.insert(queue_.end(), pending_.begin(), pending_.end());
    wake = static_cast<unsigned>(std::min<size_t>(n, idle_));
  }
  pending_.clear();
  handoffs_++;
  if (wake >= workers_.size()) {
    cv_.notify_all();
  } else {
    for (unsigned i = 0; i < wake; i++) cv_.notify_one();
  }
}

void ThreadPool::Work() {
  for (;;) {
    IoRequest* req;
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (!stop_ && queue_.empty()) {
        idle_++;
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        idle_--;
      }
      if (stop_) return;
      req = queue_.front();
      queue_.pop_front();
    }
    ExecuteSync(req);
    bool first;
    {
      std::lock_guard<std::mutex> lk(done_mu_);
      first = done_.empty();
      done_.push_back(req);
    }
    // One wake-up of the loop per batch: OnAsync takes everything finished by then.
    if (first) uv_async_send(&async_);
  }
}

void ThreadPool::OnAsync(uv_async_t* h) {
  auto* self = static_cast<ThreadPool*>(h->data);
  std::vector<IoRequest*> batch;
  {
    std::lock_guard<std::mutex> lk(self->done_mu_);
    batch.swap(self->done_);
  }
  if (batch.empty()) return;
  self->inflight_ -= batch.size();
  if (self->inflight_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&self->async_));
  // JS continuations run inside deliver; the requests they make go to the workers together below.
  self->delivering_ = true;
  self->deliver_(batch.data(), batch.size());
  self->delivering_ = false;
  self->Handoff();
}

void ThreadPool::Shutdown(std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  // Requests still queued at teardown are abandoned with their environment.
  closed_ = std::move(done);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), [](uv_handle_t* h) { HandleClosed(static_cast<ThreadPool*>(h->data)); });
  turn_.Close([](void* owner) { HandleClosed(static_cast<ThreadPool*>(owner)); });
}

void ThreadPool::HandleClosed(ThreadPool* self) {
  if (--self->open_handles_ > 0) return;
  std::function<void()> cb = std::move(self->closed_);
  delete self;
  if (cb) cb();
}

IoEngine::IoEngine(uv_loop_t* loop, unsigned threads, bool want_uring, IoDeliver deliver) {
  pool_ = new ThreadPool(loop, threads, deliver);
  if (want_uring) {
    uring_ = CreateUringEngine(loop, deliver, 256, &uring_reason_);
  } else {
    uring_reason_ = "disabled by VTGT_IO_ENGINE=threadpool";
  }
}

void IoEngine::Submit(IoRequest* req, bool prefer_uring) {
  if (prefer_uring && uring_ && UringSubmit(uring_, req)) {
    uring_ops_++;
    return;
  }
  pool_ops_++;
  pool_->Submit(req);
}

void IoEngine::FlushNow() {
  if (uring_) UringFlushNow(uring_);
  pool_->FlushNow();
}

unsigned IoEngine::uring_entries() const { return uring_ ? UringEntries(uring_) : 0; }
double IoEngine::uring_submits() const { return uring_ ? UringSubmits(uring_) : 0; }

void IoEngine::Shutdown(std::function<void()> done) {
  auto remaining = std::make_shared<int>(uring_ ? 2 : 1);
  auto step = [remaining, done]() {
    if (--*remaining == 0 && done) done();
  };
  if (uring_) UringShutdown(uring_, step);
  uring_ = nullptr;
  pool_->Shutdown(step);
  pool_ = nullptr;
}

}  // namespace vtgt
