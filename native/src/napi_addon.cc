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
void InitExec(Napi::Env env, Napi::Object exports);
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

napi_value ErrnoErrorValue(napi_env env, int err, const std::string& what) {
  std::string message = what + ": " + ErrnoName(err) + " (" + std::strerror(err) + ")";
  napi_value msg, code, number, error;
  if (napi_create_string_utf8(env, message.c_str(), message.size(), &msg) != napi_ok ||
      napi_create_string_utf8(env, ErrnoName(err), NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_double(env, -err, &number) != napi_ok || napi_create_error(env, nullptr, msg, &error) != napi_ok ||
      napi_set_named_property(env, error, "code", code) != napi_ok || napi_set_named_property(env, error, "errno", number) != napi_ok) {
    return nullptr;
  }
  return error;
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  napi_value error = ErrnoErrorValue(env, err, what);
  // Only where JavaScript is running (a call from it), so the value can always be made.
  return error ? Napi::Error(env, error) : Napi::Error::New(env, what);
}
}  // namespace vtgt

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vtgt::InitCrc32c(env, exports);
  vtgt::InitShm(env, exports);
  vtgt::InitIo(env, exports);
  vtgt::InitBusyPoll(env, exports);
  vtgt::InitFd(env, exports);
  vtgt::InitExec(env, exports);
  if (vtgt::InitXen) vtgt::InitXen(env, exports);
  return exports;
}

NODE_API_MODULE(vtgt_native, Init)
