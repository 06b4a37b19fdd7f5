// Per-environment state of the addon (each worker thread loading it gets its own).
#pragma once
#include <napi.h>

#include <cstdint>

#include "js_number.h"

namespace vtgt {

struct IoState;  // napi_io.cc

struct AddonData {
  Napi::FunctionReference shm_ctor;
  IoState* io = nullptr;
  void* busy_poll = nullptr;  // BusyPoll (busy_poll.cc), while enabled
  bool busy_poll_hook = false;
  // Commands submitted to the SCSI core (slot 0 of a Float64Array JavaScript increments), kept alive here.
  Napi::Reference<Napi::ArrayBuffer> busy_poll_counter_ref;
  const double* busy_poll_counter = nullptr;
};

AddonData* GetAddonData(Napi::Env env);

// A JS error for an errno: message "<what>: <NAME> (<strerror>)", with .code ("EIO") and .errno set.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what);
// The same error made with N-API's C functions, whose failures are returned rather than fatal (for
// code that may run while the environment is stopping): nullptr when it cannot be made.
napi_value ErrnoErrorValue(napi_env env, int err, const std::string& what);
const char* ErrnoName(int err);

// An offset, length or fd argument: a number that IsJsIndex accepts. false for anything else.
inline bool GetIndex(const Napi::Value& v, uint64_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!IsJsIndex(d)) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

}  // namespace vtgt
