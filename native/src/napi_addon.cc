// Module registration: each napi_*.cc file contributes its exports through an Init function.
#include <napi.h>

#include <cerrno>
#include <cstring>

#include "addon_data.h"

namespace vtgt {
void InitCrc32c(Napi::Env env, Napi::Object exports);
void InitShm(Napi::Env env, Napi::Object exports);
void InitIo(Napi::Env env, Napi::Object exports);
void InitBusyPoll(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
// Optional parts owned by other areas (napi_xen*.cc): weak, so the addon links with or without them.
__attribute__((weak)) void InitXen(Napi::Env env, Napi::Object exports);

AddonData* GetAddonData(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData(d);  // deleted by node-addon-api when the environment is torn down
  }
  return d;
}

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(EIO) E(ENXIO) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST)
    E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(EMFILE) E(ENOTTY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS)
    E(EOPNOTSUPP) E(EDQUOT) E(ENOSYS) E(ECANCELED) E(EINTR) E(ENAMETOOLONG) E(ETXTBSY) E(EOVERFLOW)
    E(ENOMEDIUM)
#undef E
    default:
      return "EUNKNOWN";
  }
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + ErrnoName(err) + " (" + std::strerror(err) + ")");
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}
}  // namespace vtgt

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vtgt::InitCrc32c(env, exports);
  vtgt::InitShm(env, exports);
  vtgt::InitIo(env, exports);
  vtgt::InitBusyPoll(env, exports);
  vtgt::InitFd(env, exports);
  if (vtgt::InitXen) vtgt::InitXen(env, exports);
  return exports;
}

NODE_API_MODULE(vtgt_native, Init)
