#include "turn_batch.h"

namespace vtgt {

namespace {
constexpr double kAtOnceBelow = 1.5;  // requests per turn: queue depth 1
}

void TurnBatch::Init(uv_loop_t* loop, Callback flush, void* owner) {
  flush_ = flush;
  owner_ = owner;
  uv_check_init(loop, &check_);
  check_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  uv_prepare_init(loop, &prepare_);
  prepare_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  open_ = 2;
}

bool TurnBatch::Add() {
  requests_++;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&check_))) return false;
  // Started anew for each turn, so that libuv (which runs the most recently started prepare handle
  // first) runs this one before the event-loop busy poller's: the poller never spins with requests
  // not handed over.
  uv_check_start(&check_, &TurnBatch::OnCheck);
  uv_prepare_start(&prepare_, &TurnBatch::OnPrepare);
  return per_turn_ < kAtOnceBelow;
}

void TurnBatch::End() {
  per_turn_ += (requests_ - per_turn_) / 8;
  requests_ = 0;
  uv_check_stop(&check_);
  uv_prepare_stop(&prepare_);
  flush_(owner_);
}

void TurnBatch::OnCheck(uv_check_t* h) { static_cast<TurnBatch*>(h->data)->End(); }
void TurnBatch::OnPrepare(uv_prepare_t* h) { static_cast<TurnBatch*>(h->data)->End(); }

void TurnBatch::Close(Callback closed) {
  closed_ = closed;
  uv_check_stop(&check_);
  uv_prepare_stop(&prepare_);
  auto on_closed = [](uv_handle_t* h) {
    auto* self = static_cast<TurnBatch*>(h->data);
    if (--self->open_ == 0 && self->closed_) self->closed_(self->owner_);
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), on_closed);
}

}  // namespace vtgt
