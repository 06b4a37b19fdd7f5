// Thin binding over shm_region.cc. The TypeScript wrapper (src/native/shm.ts) validates first; every
// check is repeated here and in ShmRegion so a bad call can never reach memcpy.
#include <napi.h>

#include "addon_data.h"
#include "shm_region.h"

namespace vtgt {
namespace {

// Bound on segments per gather/scatter call; far above any fabric's descriptor limit.
constexpr size_t kMaxSegments = 1u << 20;

void ThrowResult(Napi::Env env, const ShmResult& r) {
  if (r.err == -1) {
    Napi::RangeError::New(env, "SharedRegion " + r.message).ThrowAsJavaScriptException();
  } else {
    ErrnoError(env, r.err, "SharedRegion " + r.message).ThrowAsJavaScriptException();
  }
}

class ShmHandle : public Napi::ObjectWrap<ShmHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSharedRegion",
                       {
                           InstanceMethod("read", &ShmHandle::Read),
                           InstanceMethod("write", &ShmHandle::Write),
                           InstanceMethod("gather", &ShmHandle::Gather),
                           InstanceMethod("scatter", &ShmHandle::Scatter),
                           InstanceMethod("equals", &ShmHandle::Equals),
                           InstanceMethod("load32", &ShmHandle::Load32),
                           InstanceMethod("store32", &ShmHandle::Store32),
                           InstanceMethod("close", &ShmHandle::Close),
                           InstanceMethod("size", &ShmHandle::Size),
                           InstanceMethod("fd", &ShmHandle::Fd),
                       });
  }

  explicit ShmHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ShmHandle>(info) {}

  ShmRegion region;

  static ShmHandle* From(Napi::Env env, const Napi::Value& v) {
    AddonData* data = GetAddonData(env);
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->shm_ctor.Value())) {
      Napi::TypeError::New(env, "SharedRegion: expected a native region handle").ThrowAsJavaScriptException();
      return nullptr;
    }
    return Unwrap(v.As<Napi::Object>());
  }

 private:
  // (offset, buffer, bufferOffset, length)
  bool Args(const Napi::CallbackInfo& info, uint64_t* off, Napi::Uint8Array* buf, uint64_t* boff, uint64_t* len) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !GetIndex(info[0], off) || !info[1].IsTypedArray() || !GetIndex(info[2], boff) ||
        !GetIndex(info[3], len)) {
      Napi::TypeError::New(env, "SharedRegion: expected (offset, buffer, bufferOffset, length) as non-negative integers")
          .ThrowAsJavaScriptException();
      return false;
    }
    Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "SharedRegion: buffer must be a Buffer or Uint8Array").ThrowAsJavaScriptException();
      return false;
    }
    *buf = info[1].As<Napi::Uint8Array>();
    if (!ShmRegion::InRange(*boff, *len, buf->ByteLength())) {
      Napi::RangeError::New(env, "SharedRegion: buffer offset " + std::to_string(*boff) + " + length " +
                                     std::to_string(*len) + " exceeds buffer size " +
                                     std::to_string(buf->ByteLength()))
          .ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    uint64_t off, boff, len;
    Napi::Uint8Array buf;
    if (!Args(info, &off, &buf, &boff, &len)) return info.Env().Undefined();
    ShmResult r = region.Read(off, buf.Data() + boff, len);
    if (!r.ok()) ThrowResult(info.Env(), r);
    return info.Env().Undefined();
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    uint64_t off, boff, len;
    Napi::Uint8Array buf;
    if (!Args(info, &off, &buf, &boff, &len)) return info.Env().Undefined();
    ShmResult r = region.Write(off, buf.Data() + boff, len);
    if (!r.ok()) ThrowResult(info.Env(), r);
    return info.Env().Undefined();
  }

  // (segments: Float64Array [off, len, ...], buffer, bufferOffset) -> bytes copied
  bool SgArgs(const Napi::CallbackInfo& info, Napi::Float64Array* segs, Napi::Uint8Array* buf, uint64_t* boff) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !GetIndex(info[2], boff) ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "SharedRegion: expected (Float64Array segments, Buffer, bufferOffset)")
          .ThrowAsJavaScriptException();
      return false;
    }
    *segs = info[0].As<Napi::Float64Array>();
    *buf = info[1].As<Napi::Uint8Array>();
    if (segs->ElementLength() % 2 || segs->ElementLength() / 2 > kMaxSegments) {
      Napi::RangeError::New(env, "SharedRegion: segment list must hold (offset, length) pairs, at most " +
                                     std::to_string(kMaxSegments))
          .ThrowAsJavaScriptException();
      return false;
    }
    if (*boff > buf->ByteLength()) {
      Napi::RangeError::New(env, "SharedRegion: buffer offset " + std::to_string(*boff) + " exceeds buffer size " +
                                     std::to_string(buf->ByteLength()))
          .ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  // Gather (region → buffer) or scatter (buffer → region) after SgArgs validated the arguments.
  template <bool to_region>
  Napi::Value SgCopy(const Napi::CallbackInfo& info) {
    Napi::Float64Array segs;
    Napi::Uint8Array buf;
    uint64_t boff, copied = 0;
    if (!SgArgs(info, &segs, &buf, &boff)) return info.Env().Undefined();
    size_t count = segs.ElementLength() / 2;
    uint8_t* p = buf.Data() + boff;
    uint64_t room = buf.ByteLength() - boff;
    ShmResult r = to_region ? region.Scatter(segs.Data(), count, p, room, &copied)
                            : region.Gather(segs.Data(), count, p, room, &copied);
    if (!r.ok()) {
      ThrowResult(info.Env(), r);
      return info.Env().Undefined();
    }
    return Napi::Number::New(info.Env(), static_cast<double>(copied));
  }

  Napi::Value Gather(const Napi::CallbackInfo& info) { return SgCopy<false>(info); }
  Napi::Value Scatter(const Napi::CallbackInfo& info) { return SgCopy<true>(info); }

  // (segments, expected, expectedOffset) -> whether the segments hold expected's bytes from there.
  Napi::Value Equals(const Napi::CallbackInfo& info) {
    Napi::Float64Array segs;
    Napi::Uint8Array buf;
    uint64_t boff;
    if (!SgArgs(info, &segs, &buf, &boff)) return info.Env().Undefined();
    bool equal = false;
    ShmResult r = region.Equals(segs.Data(), segs.ElementLength() / 2, buf.Data() + boff, buf.ByteLength() - boff, &equal);
    if (!r.ok()) {
      ThrowResult(info.Env(), r);
      return info.Env().Undefined();
    }
    return Napi::Boolean::New(info.Env(), equal);
  }

  // (offset, bigEndian) -> uint32
  Napi::Value Load32(const Napi::CallbackInfo& info) {
    uint64_t off;
    if (info.Length() < 1 || !GetIndex(info[0], &off)) {
      Napi::TypeError::New(info.Env(), "SharedRegion.load32: offset must be a non-negative integer")
          .ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    bool be = info.Length() > 1 && info[1].ToBoolean().Value();
    uint32_t v = 0;
    ShmResult r = region.Load32(off, be, &v);
    if (!r.ok()) {
      ThrowResult(info.Env(), r);
      return info.Env().Undefined();
    }
    return Napi::Number::New(info.Env(), v);
  }

  // (offset, value, bigEndian)
  Napi::Value Store32(const Napi::CallbackInfo& info) {
    uint64_t off, value;
    if (info.Length() < 2 || !GetIndex(info[0], &off) || !GetIndex(info[1], &value) || value > 0xffffffffu) {
      Napi::TypeError::New(info.Env(), "SharedRegion.store32: expected (offset, uint32 value)")
          .ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    bool be = info.Length() > 2 && info[2].ToBoolean().Value();
    ShmResult r = region.Store32(off, static_cast<uint32_t>(value), be);
    if (!r.ok()) ThrowResult(info.Env(), r);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    region.Close();
    return info.Env().Undefined();
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(region.size()));
  }
  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), region.owned_fd()); }
};

ShmHandle* NewHandle(Napi::Env env, Napi::Object* obj) {
  *obj = GetAddonData(env)->shm_ctor.New({});
  return ShmHandle::Unwrap(*obj);
}

Napi::Value Finish(Napi::Env env, const ShmResult& r, const Napi::Object& obj) {
  if (!r.ok()) {
    ThrowResult(env, r);
    return env.Undefined();
  }
  return obj;
}

// shmCreate(path, size)
Napi::Value ShmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size;
  if (info.Length() < 2 || !info[0].IsString() || !GetIndex(info[1], &size)) {
    Napi::TypeError::New(env, "shmCreate: expected (path, size)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object obj;
  ShmHandle* h = NewHandle(env, &obj);
  return Finish(env, h->region.Create(info[0].As<Napi::String>().Utf8Value(), size), obj);
}

// shmOpen(path, readOnly)
Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "shmOpen: expected (path, readOnly)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool ro = info.Length() > 1 && info[1].ToBoolean().Value();
  Napi::Object obj;
  ShmHandle* h = NewHandle(env, &obj);
  return Finish(env, h->region.Open(info[0].As<Napi::String>().Utf8Value(), ro), obj);
}

// shmFromFd(fd, size, readOnly)
Napi::Value ShmFromFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t fd, size;
  if (info.Length() < 2 || !GetIndex(info[0], &fd) || fd > 0x7fffffff || !GetIndex(info[1], &size)) {
    Napi::TypeError::New(env, "shmFromFd: expected (fd, size)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool ro = info.Length() > 2 && info[2].ToBoolean().Value();
  Napi::Object obj;
  ShmHandle* h = NewHandle(env, &obj);
  return Finish(env, h->region.FromFd(static_cast<int>(fd), size, ro), obj);
}

// shmCreateAnonymous(size)
Napi::Value ShmCreateAnonymous(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size;
  if (info.Length() < 1 || !GetIndex(info[0], &size)) {
    Napi::TypeError::New(env, "shmCreateAnonymous: expected (size)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object obj;
  ShmHandle* h = NewHandle(env, &obj);
  return Finish(env, h->region.CreateAnonymous(size), obj);
}

// shmCopy(src, srcOffset, dst, dstOffset, length)
Napi::Value ShmCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t so, dof, len;
  if (info.Length() < 5 || !GetIndex(info[1], &so) || !GetIndex(info[3], &dof) || !GetIndex(info[4], &len)) {
    Napi::TypeError::New(env, "shmCopy: expected (src, srcOffset, dst, dstOffset, length)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ShmHandle* src = ShmHandle::From(env, info[0]);
  if (!src) return env.Undefined();
  ShmHandle* dst = ShmHandle::From(env, info[2]);
  if (!dst) return env.Undefined();
  ShmResult r = ShmRegion::Copy(src->region, so, dst->region, dof, len);
  if (!r.ok()) ThrowResult(env, r);
  return env.Undefined();
}

}  // namespace

void InitShm(Napi::Env env, Napi::Object exports) {
  GetAddonData(env)->shm_ctor = Napi::Persistent(ShmHandle::Define(env));
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate, "shmCreate"));
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen, "shmOpen"));
  exports.Set("shmFromFd", Napi::Function::New(env, ShmFromFd, "shmFromFd"));
  exports.Set("shmCreateAnonymous", Napi::Function::New(env, ShmCreateAnonymous, "shmCreateAnonymous"));
  exports.Set("shmCopy", Napi::Function::New(env, ShmCopy, "shmCopy"));
}

}  // namespace vtgt
