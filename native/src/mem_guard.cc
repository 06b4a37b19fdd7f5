#include "mem_guard.h"

#include <setjmp.h>
#include <signal.h>

#include <cstring>
#include <mutex>

namespace vtgt {
namespace {

thread_local sigjmp_buf* t_jump = nullptr;
struct sigaction g_previous;
std::once_flag g_install;

void OnSigbus(int sig, siginfo_t* info, void* uctx) {
  if (sigjmp_buf* j = t_jump) siglongjmp(*j, 1);
  // Not one of our guarded accesses: behave exactly as before we were installed.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) {
      g_previous.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (g_previous.sa_handler == SIG_IGN) {
    return;
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void Install() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSigbus;
  // SA_NODEFER: leaving the handler by siglongjmp must not leave SIGBUS blocked (we do not save and
  // restore the signal mask per access: that would cost a system call per copy).
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

bool GuardedAccess(void (*fn)(void*), void* ctx) {
  std::call_once(g_install, Install);
  sigjmp_buf jump;
  if (sigsetjmp(jump, 0) != 0) {
    t_jump = nullptr;
    return false;
  }
  t_jump = &jump;
  fn(ctx);
  t_jump = nullptr;
  return true;
}

}  // namespace vtgt
