// Binding for the real Xen hypervisor interface (xen_dom0.h). Exports `xenUnavailableReason()` always
// and, when built with the Xen libraries, `XenDom0` (xenstore, grant map/copy, event channels, with
// watch and event-channel fds polled on the Node loop) and the mapped ring page wrapper.
#include <napi.h>
#include <uv.h>

#include <cstring>

#include "addon_data.h"
#include "xen_dom0.h"

namespace vtgt {

#ifdef VTGT_HAVE_LIBXEN
static constexpr uint32_t kPage = 4096;
// Constructor of XenPage objects. The real Xen backend runs on the main thread only; the reference
// lives for the process (AddonData belongs to the native area and has no slot for it).
static Napi::FunctionReference* g_page_ctor = nullptr;

class XenPage : public Napi::ObjectWrap<XenPage> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "XenPage",
                       {InstanceMethod("read", &XenPage::Read), InstanceMethod("write", &XenPage::Write),
                        InstanceMethod("load32", &XenPage::Load32), InstanceMethod("store32", &XenPage::Store32),
                        InstanceMethod("fence", &XenPage::Fence), InstanceMethod("unmap", &XenPage::Unmap)});
  }
  explicit XenPage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XenPage>(info) {}
  // Keeps the owning XenDom0 object alive while the page is mapped (its gntdev handle unmaps it).
  void Attach(XenDom0* owner, void* addr, Napi::Object owner_obj) {
    owner_ = owner;
    addr_ = static_cast<uint8_t*>(addr);
    owner_ref_ = Napi::Persistent(owner_obj);
  }

 private:
  bool Live(const Napi::Env& env) {
    if (!addr_) Napi::Error::New(env, "XenPage: the page is no longer mapped").ThrowAsJavaScriptException();
    return addr_ != nullptr;
  }
  bool Span(const Napi::Env& env, int64_t off, int64_t len) {
    if (off < 0 || len < 0 || off > kPage || len > static_cast<int64_t>(kPage) - off) {
      Napi::RangeError::New(env, "XenPage: range outside the 4096-byte page").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }
  // read(offset, dst, dstOffset, length)
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    int64_t off = info[0].As<Napi::Number>().Int64Value();
    auto dst = info[1].As<Napi::Uint8Array>();
    int64_t doff = info[2].As<Napi::Number>().Int64Value();
    int64_t len = info[3].As<Napi::Number>().Int64Value();
    if (!Span(env, off, len)) return env.Undefined();
    if (doff < 0 || len > static_cast<int64_t>(dst.ByteLength()) - doff) {
      Napi::RangeError::New(env, "XenPage.read: destination too small").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // Volatile-style single copy: the caller uses only this copy (XSA-155).
    std::memcpy(dst.Data() + doff, addr_ + off, static_cast<size_t>(len));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return env.Undefined();
  }
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    int64_t off = info[0].As<Napi::Number>().Int64Value();
    auto src = info[1].As<Napi::Uint8Array>();
    if (!Span(env, off, static_cast<int64_t>(src.ByteLength()))) return env.Undefined();
    std::memcpy(addr_ + off, src.Data(), src.ByteLength());
    return env.Undefined();
  }
  Napi::Value Load32(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    int64_t off = info[0].As<Napi::Number>().Int64Value();
    if (!Span(env, off, 4) || (off & 3)) return env.Undefined();
    uint32_t v = __atomic_load_n(reinterpret_cast<uint32_t*>(addr_ + off), __ATOMIC_ACQUIRE);
    return Napi::Number::New(env, v);
  }
  Napi::Value Store32(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return env.Undefined();
    int64_t off = info[0].As<Napi::Number>().Int64Value();
    uint32_t v = info[1].As<Napi::Number>().Uint32Value();
    if (!Span(env, off, 4) || (off & 3)) return env.Undefined();
    __atomic_store_n(reinterpret_cast<uint32_t*>(addr_ + off), v, __ATOMIC_RELEASE);
    return env.Undefined();
  }
  Napi::Value Fence(const Napi::CallbackInfo& info) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // store->load ordering (mfence on x86)
    return info.Env().Undefined();
  }
  Napi::Value Unmap(const Napi::CallbackInfo& info) {
    if (addr_ && owner_) owner_->Unmap(addr_);
    addr_ = nullptr;
    owner_ = nullptr;
    if (!owner_ref_.IsEmpty()) owner_ref_.Reset();
    return info.Env().Undefined();
  }
  XenDom0* owner_ = nullptr;
  uint8_t* addr_ = nullptr;
  Napi::ObjectReference owner_ref_;
};

class XenNative : public Napi::ObjectWrap<XenNative> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "XenDom0",
        {InstanceMethod("xsRead", &XenNative::XsRead), InstanceMethod("xsWrite", &XenNative::XsWrite),
         InstanceMethod("xsRm", &XenNative::XsRm), InstanceMethod("xsDirectory", &XenNative::XsDirectory),
         InstanceMethod("xsTransactionStart", &XenNative::XsTxStart), InstanceMethod("xsTransactionEnd", &XenNative::XsTxEnd),
         InstanceMethod("xsWatch", &XenNative::XsWatch), InstanceMethod("xsSetPermissions", &XenNative::XsSetPerms), InstanceMethod("xsUnwatch", &XenNative::XsUnwatch),
         InstanceMethod("mapGrant", &XenNative::MapGrant), InstanceMethod("grantCopy", &XenNative::GrantCopy),
         InstanceMethod("bindInterdomain", &XenNative::Bind), InstanceMethod("notify", &XenNative::Notify),
         InstanceMethod("unmask", &XenNative::Unmask), InstanceMethod("unbind", &XenNative::Unbind),
         InstanceMethod("close", &XenNative::Close)});
  }

  // new XenDom0(onWatch(path, token), onEvent(port))
  explicit XenNative(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XenNative>(info) {
    Napi::Env env = info.Env();
    std::string reason = XenUnavailableReason();
    if (!reason.empty()) {
      Napi::Error::New(env, "Xen backend unavailable: " + reason).ThrowAsJavaScriptException();
      return;
    }
    std::string what;
    int err = x_.Open(&what);
    if (err) {
      ErrnoError(env, err, what).ThrowAsJavaScriptException();
      return;
    }
    on_watch_ = Napi::Persistent(info[0].As<Napi::Function>());
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    env_ = env;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    xs_poll_ = new uv_poll_t();
    ev_poll_ = new uv_poll_t();
    StartPoll(loop, xs_poll_, x_.XsFd());
    StartPoll(loop, ev_poll_, x_.EvtchnFd());
    open_ = true;
  }
  ~XenNative() override { Shutdown(); }

 private:
  void StartPoll(uv_loop_t* loop, uv_poll_t* p, int fd) {
    uv_poll_init(loop, p, fd);
    p->data = this;
    uv_poll_start(p, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<XenNative*>(h->data)->OnReadable(h); });
  }
  void OnReadable(uv_poll_t* h) {
    Napi::HandleScope scope(env_);
    if (h == xs_poll_) {
      std::string path, token;
      while (open_ && x_.XsNextWatch(&path, &token)) {
        on_watch_.MakeCallback(env_.Global(), {Napi::String::New(env_, path), Napi::String::New(env_, token)});
      }
    } else {
      int port = open_ ? x_.Pending() : -1;
      if (port >= 0) on_event_.MakeCallback(env_.Global(), {Napi::Number::New(env_, port)});
    }
  }
  void Shutdown() {
    if (!open_) return;
    open_ = false;
    // The handles outlive this object until libuv has closed them.
    for (uv_poll_t* p : {xs_poll_, ev_poll_}) {
      uv_poll_stop(p);
      uv_close(reinterpret_cast<uv_handle_t*>(p), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    }
    xs_poll_ = ev_poll_ = nullptr;
    x_.Close();
  }
  Napi::Value Fail(const Napi::Env& env, int err, const std::string& what) {
    ErrnoError(env, err, what).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool Ready(const Napi::Env& env) {
    if (!open_) Napi::Error::New(env, "XenDom0 is closed").ThrowAsJavaScriptException();
    return open_;
  }
  static uint32_t U32(const Napi::Value& v) { return v.As<Napi::Number>().Uint32Value(); }

  Napi::Value XsRead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    std::string out;
    int err = x_.XsRead(U32(info[0]), info[1].As<Napi::String>(), &out);
    if (err == ENOENT) return env.Undefined();
    if (err) return Fail(env, err, "xs_read " + info[1].As<Napi::String>().Utf8Value());
    return Napi::String::New(env, out);
  }
  Napi::Value XsWrite(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    int err = x_.XsWrite(U32(info[0]), info[1].As<Napi::String>(), info[2].As<Napi::String>());
    return err ? Fail(env, err, "xs_write " + info[1].As<Napi::String>().Utf8Value()) : env.Undefined();
  }
  Napi::Value XsRm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    int err = x_.XsRm(U32(info[0]), info[1].As<Napi::String>());
    return err ? Fail(env, err, "xs_rm " + info[1].As<Napi::String>().Utf8Value()) : env.Undefined();
  }
  Napi::Value XsDirectory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    std::vector<std::string> out;
    int err = x_.XsDirectory(U32(info[0]), info[1].As<Napi::String>(), &out);
    if (err) return Fail(env, err, "xs_directory " + info[1].As<Napi::String>().Utf8Value());
    Napi::Array a = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); i++) a.Set(i, Napi::String::New(env, out[i]));
    return a;
  }
  Napi::Value XsTxStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    uint32_t tx = 0;
    int err = x_.XsTransactionStart(&tx);
    return err ? Fail(env, err, "xs_transaction_start") : Napi::Number::New(env, tx);
  }
  // returns true on commit, false on EAGAIN (retry)
  Napi::Value XsTxEnd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    int err = x_.XsTransactionEnd(U32(info[0]), info[1].As<Napi::Boolean>());
    if (err == EAGAIN) return Napi::Boolean::New(env, false);
    return err ? Fail(env, err, "xs_transaction_end") : Napi::Boolean::New(env, true);
  }
  // xsSetPermissions(tx, path, Uint32Array [domid, bits, domid, bits, ...])
  Napi::Value XsSetPerms(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    auto a = info[2].As<Napi::Uint32Array>();
    if (a.ElementLength() == 0 || a.ElementLength() % 2 != 0) {
      Napi::RangeError::New(env, "xsSetPermissions: need (domid, perms) pairs").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::vector<std::pair<uint32_t, uint32_t>> perms;
    for (size_t i = 0; i < a.ElementLength(); i += 2) perms.emplace_back(a[i], a[i + 1]);
    int err = x_.XsSetPermissions(U32(info[0]), info[1].As<Napi::String>(), perms);
    return err ? Fail(env, err, "xs_set_permissions " + info[1].As<Napi::String>().Utf8Value()) : env.Undefined();
  }
  Napi::Value XsWatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    int err = x_.XsWatch(info[0].As<Napi::String>(), info[1].As<Napi::String>());
    return err ? Fail(env, err, "xs_watch " + info[0].As<Napi::String>().Utf8Value()) : env.Undefined();
  }
  Napi::Value XsUnwatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    x_.XsUnwatch(info[0].As<Napi::String>(), info[1].As<Napi::String>());
    return env.Undefined();
  }
  // mapGrant(domid, ref, writable) -> XenPage
  Napi::Value MapGrant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    int err = 0;
    void* p = x_.MapGrant(static_cast<uint16_t>(U32(info[0])), U32(info[1]), info[2].As<Napi::Boolean>(), &err);
    if (!p) return Fail(env, err, "xengnttab_map_grant_ref");
    Napi::Object page = g_page_ctor->New({});
    XenPage::Unwrap(page)->Attach(&x_, p, Value());
    return page;
  }
  // grantCopy(toGuest, domid, refs:Uint32Array, offsets:Uint16Array, lens:Uint16Array, buf, bufOffset) -> Int16Array statuses
  Napi::Value GrantCopy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    bool to_guest = info[0].As<Napi::Boolean>();
    uint16_t domid = static_cast<uint16_t>(U32(info[1]));
    auto refs = info[2].As<Napi::Uint32Array>();
    auto offs = info[3].As<Napi::Uint16Array>();
    auto lens = info[4].As<Napi::Uint16Array>();
    auto buf = info[5].As<Napi::Uint8Array>();
    int64_t at = info[6].As<Napi::Number>().Int64Value();
    size_t n = refs.ElementLength();
    if (offs.ElementLength() != n || lens.ElementLength() != n || at < 0) {
      Napi::RangeError::New(env, "grantCopy: inconsistent arguments").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::vector<XenCopySeg> segs(n);
    for (size_t i = 0; i < n; i++) {
      uint32_t off = offs[i], len = lens[i];
      if (off + len > kPage || static_cast<uint64_t>(at) + len > buf.ByteLength()) {
        Napi::RangeError::New(env, "grantCopy: segment outside its page or the buffer").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      segs[i] = XenCopySeg{to_guest, domid, refs[i], static_cast<uint16_t>(off), static_cast<uint16_t>(len), buf.Data() + at, 0};
      at += len;
    }
    x_.GrantCopy(segs);
    Napi::Int16Array st = Napi::Int16Array::New(env, n);
    for (size_t i = 0; i < n; i++) st[i] = segs[i].status;
    return st;
  }
  Napi::Value Bind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    uint32_t local = 0;
    int err = x_.BindInterdomain(static_cast<uint16_t>(U32(info[0])), U32(info[1]), &local);
    return err ? Fail(env, err, "xenevtchn_bind_interdomain") : Napi::Number::New(env, local);
  }
  Napi::Value Notify(const Napi::CallbackInfo& info) {
    if (open_) x_.Notify(U32(info[0]));
    return info.Env().Undefined();
  }
  Napi::Value Unmask(const Napi::CallbackInfo& info) {
    if (open_) x_.Unmask(U32(info[0]));
    return info.Env().Undefined();
  }
  Napi::Value Unbind(const Napi::CallbackInfo& info) {
    if (open_) x_.Unbind(U32(info[0]));
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  XenDom0 x_;
  Napi::Env env_{nullptr};
  Napi::FunctionReference on_watch_, on_event_;
  uv_poll_t* xs_poll_ = nullptr;
  uv_poll_t* ev_poll_ = nullptr;
  bool open_ = false;
};
#endif

void InitXen(Napi::Env env, Napi::Object exports) {
  exports.Set("xenUnavailableReason",
              Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), XenUnavailableReason());
              }));
  exports.Set("xenBuiltWithLibxen", Napi::Boolean::New(env,
#ifdef VTGT_HAVE_LIBXEN
                                                       true
#else
                                                       false
#endif
                                                       ));
#ifdef VTGT_HAVE_LIBXEN
  if (!g_page_ctor) {
    g_page_ctor = new Napi::FunctionReference(Napi::Persistent(XenPage::Define(env)));
    g_page_ctor->SuppressDestruct();
  }
  exports.Set("XenDom0", XenNative::Define(env));
#endif
}

}  // namespace vtgt
