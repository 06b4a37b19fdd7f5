// Socket descriptors handed between threads: the iSCSI service moves a logged-in connection from
// the thread that ran its login to a connection thread (src/iscsi/connection-threads.ts). Node
// cannot transfer a socket handle to a worker, so the receiving thread opens its own duplicate of
// the descriptor and the sending thread closes the original; the TCP connection lives on in the
// duplicate.
#include <napi.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <string>

#include "addon_data.h"

namespace vtgt {
namespace {

Napi::Value DupSocketFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "dupSocketFd(fd): fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double raw = info[0].As<Napi::Number>().DoubleValue();
  if (!(raw >= 0 && raw <= 0x7fffffff) || std::floor(raw) != raw) {
    Napi::RangeError::New(env, "dupSocketFd(fd): fd must be a non-negative integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int fd = static_cast<int>(raw);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ErrnoError(env, errno, "dupSocketFd: fstat of descriptor " + std::to_string(fd)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Only sockets: a stray number must not duplicate a backstore file into a connection thread.
  if (!S_ISSOCK(st.st_mode)) {
    Napi::Error::New(env, "dupSocketFd: descriptor " + std::to_string(fd) + " is not a socket").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    ErrnoError(env, errno, "dupSocketFd: duplicating descriptor " + std::to_string(fd)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, copy);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("dupSocketFd", Napi::Function::New(env, DupSocketFd, "dupSocketFd"));
}
}  // namespace vtgt
