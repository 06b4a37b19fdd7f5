// Per-environment state of the addon (each worker thread loading it gets its own).
#pragma once
#include <napi.h>

namespace vtgt {

struct IoState;  // napi_io.cc

struct AddonData {
  Napi::FunctionReference shm_ctor;
  IoState* io = nullptr;
};

AddonData* GetAddonData(Napi::Env env);

// Throws a JS error for an errno: message "<what>: <strerror>", with .code ("EIO") and .errno set.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what);
const char* ErrnoName(int err);

}  // namespace vtgt
