// Requests an I/O engine receives while the event loop runs callbacks are handed over together:
// after the poll phase (a check handle) or, for those made in timers and immediates, before the loop
// next waits (a prepare handle). A burst of commands read from many sockets in one turn then costs
// one io_uring_enter, or one wake-up of the thread pool, instead of one per request (BENCHMARKS.md
// section 17). While turns make one request each (queue depth 1) the request goes at once: it would
// wait for nothing but the rest of its turn.
#pragma once
#include <uv.h>

namespace vtgt {

class TurnBatch {
 public:
  using Callback = void (*)(void* owner);

  void Init(uv_loop_t* loop, Callback flush, void* owner);
  // A request arrived outside completion delivery. True: hand it over now. Either way the turn's
  // later requests wait for the end of the turn, when `flush` runs.
  bool Add();
  // Stops and closes both handles; `closed(owner)` runs once they are closed.
  void Close(Callback closed);

 private:
  static void OnCheck(uv_check_t* h);
  static void OnPrepare(uv_prepare_t* h);
  void End();

  uv_check_t check_;
  uv_prepare_t prepare_;
  Callback flush_ = nullptr;
  Callback closed_ = nullptr;
  void* owner_ = nullptr;
  int open_ = 0;
  unsigned requests_ = 0;      // in this turn
  double per_turn_ = 0;        // moving average over turns that made requests
};

}  // namespace vtgt
