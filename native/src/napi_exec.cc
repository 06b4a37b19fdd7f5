// Replacing the running program: `vtgt serve` starts Node again with V8 heap flags that only take
// effect at start-up (src/service/young-generation.ts). Node 20 has no process.execve, and a child
// process would put a second PID between the service and whatever supervises it (systemd, tests,
// the benchmark), so the service re-executes itself in place: same PID, same descriptors 0-2 and
// environment; everything else Node opens is close-on-exec.
#include <napi.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon_data.h"

extern char** environ;

namespace vtgt {
namespace {

// Node marks its standard descriptors close-on-exec and non-blocking. The new program must get them as
// a freshly started one would (open, blocking); if execve fails they go back to how Node had them.
class StdioForExec {
 public:
  StdioForExec() {
    for (int fd = 0; fd < 3; fd++) {
      saved_[fd].fd_flags = fcntl(fd, F_GETFD);
      saved_[fd].status_flags = fcntl(fd, F_GETFL);
      if (saved_[fd].fd_flags >= 0) fcntl(fd, F_SETFD, saved_[fd].fd_flags & ~FD_CLOEXEC);
      if (saved_[fd].status_flags >= 0) fcntl(fd, F_SETFL, saved_[fd].status_flags & ~O_NONBLOCK);
    }
  }
  ~StdioForExec() {
    for (int fd = 0; fd < 3; fd++) {
      if (saved_[fd].fd_flags >= 0) fcntl(fd, F_SETFD, saved_[fd].fd_flags);
      if (saved_[fd].status_flags >= 0) fcntl(fd, F_SETFL, saved_[fd].status_flags);
    }
  }
  StdioForExec(const StdioForExec&) = delete;
  StdioForExec& operator=(const StdioForExec&) = delete;

 private:
  struct Flags {
    int fd_flags;
    int status_flags;
  } saved_[3];
};

// Returns only when execve fails (then it throws the errno as an Error).
Napi::Value ExecReplace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
    Napi::TypeError::New(env, "execReplace(path, argv): path must be a string and argv an array of strings")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Array list = info[1].As<Napi::Array>();
  if (path.empty() || path.find('\0') != std::string::npos || list.Length() == 0) {
    Napi::TypeError::New(env, "execReplace(path, argv): path must be non-empty and argv must name the program")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::string> args;
  args.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsString()) {
      Napi::TypeError::New(env, "execReplace(path, argv): argv[" + std::to_string(i) + "] is not a string")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    args.push_back(v.As<Napi::String>().Utf8Value());
    if (args.back().find('\0') != std::string::npos) {
      Napi::TypeError::New(env, "execReplace(path, argv): argv[" + std::to_string(i) + "] contains a NUL byte")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int err;
  {
    StdioForExec stdio;
    execve(path.c_str(), argv.data(), environ);
    err = errno;
  }
  ErrnoError(env, err, "execve " + path).ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

void InitExec(Napi::Env env, Napi::Object exports) {
  exports.Set("execReplace", Napi::Function::New(env, ExecReplace, "execReplace"));
}
}  // namespace vtgt
