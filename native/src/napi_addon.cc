// Module registration: each napi_*.cc file contributes its exports through an Init function.
#include <napi.h>

namespace vtgt {
void InitCrc32c(Napi::Env env, Napi::Object exports);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vtgt::InitCrc32c(env, exports);
  return exports;
}

NODE_API_MODULE(vtgt_native, Init)
