// Thin binding over crc32c.cc: (buffer, seed?) -> uint32. Arguments are validated on the JS side too.
#include <napi.h>

#include "crc32c.h"

namespace vtgt {
namespace {

using Crc32cFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

Napi::Value Run(const Napi::CallbackInfo& info, Crc32cFn fn) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(env, "crc32c: expected a Buffer or Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
  uint32_t seed = 0;
  if (info.Length() > 1 && info[1].IsNumber()) seed = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(env, fn(seed, buf.Data(), buf.ByteLength()));
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) { return Run(info, crc32c); }

// The table implementation regardless of the CPU, so tests can compare both paths.
Napi::Value Crc32cSoftware(const Napi::CallbackInfo& info) { return Run(info, crc32c_software); }

Napi::Value Crc32cHardware(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), crc32c_hardware());
}

}  // namespace

void InitCrc32c(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32c", Napi::Function::New(env, Crc32c, "crc32c"));
  exports.Set("crc32cSoftware", Napi::Function::New(env, Crc32cSoftware, "crc32cSoftware"));
  exports.Set("crc32cHardware", Napi::Function::New(env, Crc32cHardware, "crc32cHardware"));
}

}  // namespace vtgt
