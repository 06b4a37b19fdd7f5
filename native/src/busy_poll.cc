// Adaptive busy polling of the event loop (the idea of KVM's halt polling, applied to libuv).
//
// At queue depth 1 a target sleeps in epoll_wait between every response and the next request. On a
// virtual machine an idle vCPU halts: the wake-up that follows costs a hypervisor exit and entry,
// and the JavaScript that then runs finds cold caches. Measured here (BENCHMARKS.md, section 7):
// vtgt's 4 KiB QD1 round trip was ~80 µs on an idle 2-core VM and ~30 µs while other processes
// kept the CPUs from halting. So before the loop blocks, this hook polls the loop's epoll
// descriptor for a short, self-tuning window; when the next request arrives within it, the loop
// never sleeps.
//
// The window adapts like halt polling: it grows while waits (poll window + blocking + the callbacks
// they ran) end within `maxNs`, and drops to zero as soon as they do not, so an idle or lightly
// loaded service does not spin. When the loop already has work (timeout 0), nothing is polled.
//
// Polling pays when an initiator waits for each answer before sending the next request (QD1): then
// every wake-up brings one command. When wake-ups bring several (an initiator with many commands
// queued, which is not waiting for this one), the wait is not on its critical path and polling only
// burns CPU: measured with 4 KiB writes at QD32, ~2 commands per wake-up, polling cost ~2.3 us of
// ~12 us CPU per write and bought no IOPS (BENCHMARKS.md, section 14). So when the service shares
// the core's command counters, waits are polled only while wake-ups average at most
// kMaxCommandsPerWake commands, or while commands are in flight: then the loop waits for their
// completions (a disk write finished by an io_uring worker), which polling does catch sooner.
#include <napi.h>
#include <poll.h>
#include <sched.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>

#include "addon_data.h"

namespace vtgt {
namespace {

struct BusyPoll {
  uv_loop_t* loop = nullptr;
  uv_prepare_t prepare;
  uv_check_t check;
  uint64_t max_ns = 0;
  uint64_t window_ns = 0;
  // Set in prepare, consumed in check: when this turn's wait began and whether it was polled.
  uint64_t wait_start = 0;
  bool armed = false;
  int closing = 0;
  // Counters for the metrics endpoint and BENCHMARKS.md.
  double polls = 0;    // waits that were polled
  double hits = 0;     // of those, ended by an event inside the window
  double polled_ns = 0;
  double skipped = 0;  // waits not polled because wake-ups brought several commands
  // Commands per wake-up, from the core's counter (null when the service did not share it).
  const double* commands = nullptr;
  double commands_at_wait = 0;
  double commands_per_wake = 0;  // moving average
};

constexpr uint64_t kMinWindowNs = 2000;
constexpr double kMaxCommandsPerWake = 1.5;

void OnPrepare(uv_prepare_t* h) {
  auto* bp = static_cast<BusyPoll*>(h->data);
  bp->armed = false;
  int timeout_ms = uv_backend_timeout(bp->loop);
  if (timeout_ms == 0) return;  // work is already pending: the loop will not block
  uint64_t t0 = uv_hrtime();
  bp->wait_start = t0;
  bp->armed = true;
  if (bp->commands) bp->commands_at_wait = *bp->commands;
  uint64_t window = bp->window_ns;
  if (window == 0) return;
  if (bp->commands && bp->commands_per_wake > kMaxCommandsPerWake && bp->commands[1] <= 0) {
    bp->skipped++;
    return;
  }
  if (timeout_ms > 0) window = std::min<uint64_t>(window, static_cast<uint64_t>(timeout_ms) * 1000000);
  struct pollfd p;
  p.fd = uv_backend_fd(bp->loop);
  p.events = POLLIN;
  uint64_t now = t0;
  bool hit = false;
  do {
    p.revents = 0;
    if (poll(&p, 1, 0) > 0) {
      hit = true;
      break;
    }
    // Let a runnable peer on this CPU (often the very initiator being waited for) go first.
    sched_yield();
    now = uv_hrtime();
  } while (now - t0 < window);
  bp->polls++;
  if (hit) bp->hits++;
  bp->polled_ns += static_cast<double>(uv_hrtime() - t0);
}

void OnCheck(uv_check_t* h) {
  auto* bp = static_cast<BusyPoll*>(h->data);
  if (!bp->armed) return;
  bp->armed = false;
  // The I/O callbacks of this wake-up have run: what they submitted is what the wait brought.
  if (bp->commands) bp->commands_per_wake += (*bp->commands - bp->commands_at_wait - bp->commands_per_wake) / 8;
  uint64_t waited = uv_hrtime() - bp->wait_start;
  if (waited <= bp->max_ns) {
    bp->window_ns = bp->window_ns == 0 ? std::max(kMinWindowNs, bp->max_ns / 4) : std::min(bp->max_ns, bp->window_ns * 2);
  } else {
    bp->window_ns = 0;
  }
}

void OnClosed(uv_handle_t* h) {
  auto* bp = static_cast<BusyPoll*>(h->data);
  if (--bp->closing == 0) delete bp;
}

// Callers drop their pointer to `bp` at once: it is freed when both handles have closed.
void Stop(BusyPoll* bp) {
  uv_prepare_stop(&bp->prepare);
  uv_check_stop(&bp->check);
  bp->closing = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&bp->prepare), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&bp->check), OnClosed);
}

void CleanupHook(void* arg) {
  auto* d = static_cast<AddonData*>(arg);
  if (d->busy_poll) Stop(static_cast<BusyPoll*>(d->busy_poll));
  d->busy_poll = nullptr;
}

// setBusyPoll(maxMicros): 0 stops polling; 1..1000 starts it (or changes the limit).
Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t us = 0;
  if (info.Length() < 1 || !GetIndex(info[0], &us) || us > 1000) {
    Napi::TypeError::New(env, "setBusyPoll(maxMicros): maxMicros must be an integer from 0 to 1000").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  AddonData* d = GetAddonData(env);
  auto* bp = static_cast<BusyPoll*>(d->busy_poll);
  if (us == 0) {
    if (bp) Stop(bp);
    d->busy_poll = nullptr;
    return env.Undefined();
  }
  if (!bp) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      Napi::Error::New(env, "setBusyPoll: no libuv event loop for this environment").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    bp = new BusyPoll();
    bp->loop = loop;
    uv_prepare_init(loop, &bp->prepare);
    uv_check_init(loop, &bp->check);
    bp->prepare.data = bp;
    bp->check.data = bp;
    uv_prepare_start(&bp->prepare, OnPrepare);
    uv_check_start(&bp->check, OnCheck);
    // Polling must never keep a process alive that has nothing else to do.
    uv_unref(reinterpret_cast<uv_handle_t*>(&bp->prepare));
    uv_unref(reinterpret_cast<uv_handle_t*>(&bp->check));
    if (!d->busy_poll_hook) {
      napi_add_env_cleanup_hook(env, CleanupHook, d);
      d->busy_poll_hook = true;
    }
    d->busy_poll = bp;
  }
  bp->commands = d->busy_poll_counter;
  bp->max_ns = us * 1000;
  bp->window_ns = std::min(bp->window_ns, bp->max_ns);
  return env.Undefined();
}

// busyPollStats(): { maxMicros, windowMicros, polls, hits, polledSeconds } or null when off.
Napi::Value BusyPollStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* bp = static_cast<BusyPoll*>(GetAddonData(env)->busy_poll);
  if (!bp) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxMicros", Napi::Number::New(env, static_cast<double>(bp->max_ns) / 1000));
  o.Set("windowMicros", Napi::Number::New(env, static_cast<double>(bp->window_ns) / 1000));
  o.Set("polls", Napi::Number::New(env, bp->polls));
  o.Set("hits", Napi::Number::New(env, bp->hits));
  o.Set("polledSeconds", Napi::Number::New(env, bp->polled_ns / 1e9));
  o.Set("skipped", Napi::Number::New(env, bp->skipped));
  o.Set("commandsPerWake", Napi::Number::New(env, bp->commands ? bp->commands_per_wake : 0));
  return o;
}

// setBusyPollCommandCounter(counter: Float64Array): [commands submitted, commands in flight].
Napi::Value SetBusyPollCommandCounter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[0].As<Napi::TypedArray>().ElementLength() < 2) {
    Napi::TypeError::New(env, "setBusyPollCommandCounter(counter): counter must be a Float64Array of two elements (submitted, in flight)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto arr = info[0].As<Napi::Float64Array>();
  AddonData* d = GetAddonData(env);
  d->busy_poll_counter_ref = Napi::Persistent(arr.ArrayBuffer());
  d->busy_poll_counter = arr.Data();
  if (auto* bp = static_cast<BusyPoll*>(d->busy_poll)) {
    bp->commands = d->busy_poll_counter;
    bp->armed = false;  // the wait in progress began without this counter's reading
  }
  return env.Undefined();
}

}  // namespace

void InitBusyPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("setBusyPoll", Napi::Function::New(env, SetBusyPoll, "setBusyPoll"));
  exports.Set("busyPollStats", Napi::Function::New(env, BusyPollStats, "busyPollStats"));
  exports.Set("setBusyPollCommandCounter", Napi::Function::New(env, SetBusyPollCommandCounter, "setBusyPollCommandCounter"));
}

}  // namespace vtgt
