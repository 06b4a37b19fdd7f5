// Accesses to a MAP_SHARED file mapping fault with SIGBUS when another process shrinks the file.
// A hostile peer must not be able to kill the target that way: guarded accesses turn that SIGBUS into
// a failed operation. Loop thread and workers may both use it (the jump target is thread-local).
#pragma once

#include <type_traits>

namespace vtgt {

// Runs fn(ctx); returns false (having abandoned fn) if it hit SIGBUS. fn must not own resources that
// need unwinding: it is left by siglongjmp.
bool GuardedAccess(void (*fn)(void*), void* ctx);

template <typename F>
bool Guarded(F&& f) {
  using Fn = std::remove_reference_t<F>;
  return GuardedAccess([](void* c) { (*static_cast<Fn*>(c))(); }, static_cast<void*>(&f));
}

}  // namespace vtgt
