// Thin binding over io_engine.cc. ioSubmit(...) -> Promise: the Buffer an op reads into or writes from
// is pinned by a reference until the op completes; the promise settles on the loop thread.
// ioSubmitTransfer(..., slot): a read or write whose completion goes to one JS function registered with
// ioSetTransferSink, in batches written to a shared Float64Array — no promise, persistent handle or
// Buffer reference per request (the caller keeps the Buffer alive; src/native/transfer-slots.ts).
#include <napi.h>
#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "addon_data.h"
#include "io_engine.h"

namespace vtgt {
namespace {

struct JsRequest {
  napi_deferred deferred = nullptr;
  napi_ref buffer = nullptr;
};

}  // namespace

struct IoState {
  IoEngine* engine = nullptr;
  napi_env env = nullptr;
  napi_async_context async_ctx = nullptr;
  Napi::ObjectReference resource;
  // The transfer sink: called with n after n completions [slot, result, errno] were written to ring.
  Napi::FunctionReference sink;
  Napi::Reference<Napi::Float64Array> ring_ref;
  double* ring = nullptr;
  size_t ring_entries = 0;
  // Transfer requests are reused rather than allocated and freed for every read and write.
  std::vector<IoRequest*> spare;
  ~IoState() {
    for (IoRequest* r : spare) delete r;
  }
};

namespace {

Napi::Value ResultValue(Napi::Env e, const IoRequest& r) {
  if (r.op != IoOp::kDevInfo) return Napi::Number::New(e, static_cast<double>(r.result));
  Napi::Object o = Napi::Object::New(e);
  o.Set("size", r.info[0]);
  o.Set("isBlockDevice", r.info[1] != 0);
  o.Set("logicalBlockSize", r.info[2]);
  o.Set("physicalBlockSize", r.info[3]);
  o.Set("readOnlyDevice", r.info[4] != 0);
  o.Set("mode", r.info[5]);
  o.Set("rdevMajor", r.info[6]);
  o.Set("rdevMinor", r.info[7]);
  o.Set("fsType", r.info[8]);
  return o;
}

// The error a failed request rejects with: errno name and text, plus what the request was, so that one
// rejection handler per file can name it (no closure per request).
Napi::Error RequestError(Napi::Env e, int err, IoOp op, double position, double length, double done) {
  Napi::Error error = ErrnoError(e, err, IoOpName(op));
  error.Set("syscall", Napi::String::New(e, IoOpName(op)));
  error.Set("bytesDone", Napi::Number::New(e, done));
  error.Set("op", Napi::Number::New(e, static_cast<double>(op)));
  error.Set("position", Napi::Number::New(e, position));
  error.Set("length", Napi::Number::New(e, length));
  return error;
}

void Settle(napi_env env, IoRequest* r) {
  auto* js = static_cast<JsRequest*>(r->js);
  Napi::Env e(env);
  if (r->err) {
    Napi::Error err = RequestError(e, r->err, r->op, static_cast<double>(r->offset), static_cast<double>(r->len), static_cast<double>(r->done));
    napi_reject_deferred(env, js->deferred, err.Value());
  } else {
    napi_resolve_deferred(env, js->deferred, ResultValue(e, *r));
  }
  if (js->buffer) napi_delete_reference(env, js->buffer);
  delete js;
  delete r;
}

IoState* State(Napi::Env env);

// Requests kept for reuse at most: as many as the io_uring ring and its backlog commonly hold.
constexpr size_t kMaxSpareRequests = 4096;

// Hands `n` completions in the ring to the sink. The sink catches its own errors; one that escapes
// anyway is reported as an uncaught exception rather than left pending in the middle of a batch.
void CallSink(Napi::Env env, IoState* st, size_t n) {
  napi_value argv[1] = {Napi::Number::New(env, static_cast<double>(n))};
  napi_value result;
  if (napi_call_function(env, env.Undefined(), st->sink.Value(), 1, argv, &result) != napi_ok && env.IsExceptionPending()) {
    napi_fatal_exception(env, env.GetAndClearPendingException().Value());
  }
}

void Deliver(napi_env env, IoState* st, IoRequest** reqs, size_t n) {
  Napi::Env e(env);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    IoRequest* r = reqs[i];
    if (r->tag < 0) {
      Settle(env, r);
      continue;
    }
    if (st->ring == nullptr) {  // the environment is being torn down: nobody is waiting any more
      delete r;
      continue;
    }
    if (k == st->ring_entries) {
      CallSink(e, st, k);
      k = 0;
    }
    double* slot = st->ring + 3 * k++;
    slot[0] = r->tag;
    slot[1] = r->err ? static_cast<double>(r->done) : static_cast<double>(r->result);
    slot[2] = r->err;
    if (st->spare.size() < kMaxSpareRequests) {
      *r = IoRequest();
      st->spare.push_back(r);
    } else {
      delete r;
    }
  }
  if (k) CallSink(e, st, k);
}

// Environment teardown (process exit, worker termination). An *async* cleanup hook, because closing
// the engine's uv handles completes in callbacks inside this library: Node must not unload the addon
// (worker threads dlclose it) before they have run.
void Cleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* st = static_cast<IoState*>(arg);
  napi_async_destroy(st->env, st->async_ctx);
  st->async_ctx = nullptr;
  st->resource.Reset();
  st->sink.Reset();
  st->ring_ref.Reset();
  st->ring = nullptr;
  IoEngine* engine = st->engine;
  st->engine = nullptr;
  engine->Shutdown([engine, st, hook]() {
    delete engine;
    delete st;  // AddonData::io is not touched: the instance data is being torn down too
    napi_remove_async_cleanup_hook(hook);
  });
}

IoState* State(Napi::Env env) {
  AddonData* data = GetAddonData(env);
  if (data->io) return data->io;
  auto* st = new IoState();
  st->env = env;
  data->io = st;
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  unsigned threads = 4;
  if (const char* t = std::getenv("VTGT_IO_THREADS")) {
    long v = std::strtol(t, nullptr, 10);
    if (v >= 1 && v <= 64) threads = static_cast<unsigned>(v);
  }
  const char* mode = std::getenv("VTGT_IO_ENGINE");
  bool want_uring = !(mode && std::strcmp(mode, "threadpool") == 0);
  Napi::Object resource = Napi::Object::New(env);
  st->resource = Napi::Persistent(resource);
  napi_async_init(env, resource, Napi::String::New(env, "vtgt:io"), &st->async_ctx);
  st->engine = new IoEngine(loop, threads, want_uring, [env, st](IoRequest** reqs, size_t n) {
    Napi::HandleScope hs(env);
    // A callback scope so promise continuations (microtasks) run when the batch is settled.
    Napi::CallbackScope cs(env, st->async_ctx);
    Deliver(env, st, reqs, n);
  });
  napi_add_async_cleanup_hook(env, Cleanup, st, nullptr);
  return st;
}

// ioSubmit(op, fd, buffer|null, bufferOffset, length, position, mode, preferUring[, punt]) -> Promise<number|object>
Napi::Value IoSubmit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t op, fd, boff, len, pos, mode;
  if (info.Length() < 8 || !GetIndex(info[0], &op) || op >= static_cast<uint64_t>(IoOp::kCount) ||
      !GetIndex(info[1], &fd) || fd > 0x7fffffff || !GetIndex(info[3], &boff) || !GetIndex(info[4], &len) ||
      !GetIndex(info[5], &pos) || !GetIndex(info[6], &mode) || mode > 0x7fffffff) {
    Napi::TypeError::New(env, "ioSubmit: expected (op, fd, buffer, bufferOffset, length, position, mode, preferUring)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* r = new IoRequest();
  r->op = static_cast<IoOp>(op);
  r->fd = static_cast<int>(fd);
  r->len = len;
  r->offset = pos;
  r->mode = static_cast<int>(mode);
  r->punt = info.Length() > 8 && info[8].ToBoolean().Value();
  if (pos > static_cast<uint64_t>(INT64_MAX) - len) {
    delete r;
    Napi::RangeError::New(env, "ioSubmit: position + length overflows a file offset").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* js = new JsRequest();
  if (r->op == IoOp::kRead || r->op == IoOp::kWrite) {
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      delete r;
      delete js;
      Napi::TypeError::New(env, "ioSubmit: read/write need a Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array buf = info[2].As<Napi::Uint8Array>();
    size_t blen = buf.ByteLength();
    if (boff > blen || len > blen - boff) {
      delete r;
      delete js;
      Napi::RangeError::New(env, "ioSubmit: buffer offset " + std::to_string(boff) + " + length " + std::to_string(len) +
                                     " exceeds buffer size " + std::to_string(blen))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    r->buf = buf.Data() + boff;
    napi_create_reference(env, buf, 1, &js->buffer);
  }
  IoState* st = State(env);
  napi_value promise;
  napi_create_promise(env, &js->deferred, &promise);
  r->js = js;
  st->engine->Submit(r, info[7].ToBoolean().Value());
  return Napi::Value(env, promise);
}

// ioSetTransferSink(sink(n), ring: Float64Array of 3 * entries) — once per environment.
Napi::Value IoSetTransferSink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array || info[1].As<Napi::Float64Array>().ElementLength() < 3) {
    Napi::TypeError::New(env, "ioSetTransferSink(sink, ring): sink must be a function and ring a Float64Array of at least 3 elements")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  IoState* st = State(env);
  if (!st->sink.IsEmpty()) {
    Napi::Error::New(env, "ioSetTransferSink: a sink is already registered in this environment").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array ring = info[1].As<Napi::Float64Array>();
  st->sink = Napi::Persistent(info[0].As<Napi::Function>());
  st->ring_ref = Napi::Persistent(ring);
  st->ring = ring.Data();
  st->ring_entries = ring.ElementLength() / 3;
  return env.Undefined();
}

// ioSubmitTransfer(op READ|WRITE, fd, buffer, bufferOffset, length, position, rwflags, preferUring, punt, slot)
// -> undefined. The completion reaches the sink as [slot, bytes (or bytes done before the error), errno].
Napi::Value IoSubmitTransfer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t op, fd, boff, len, pos, mode, slot;
  if (info.Length() < 10 || !GetIndex(info[0], &op) || (op != static_cast<uint64_t>(IoOp::kRead) && op != static_cast<uint64_t>(IoOp::kWrite)) ||
      !GetIndex(info[1], &fd) || fd > 0x7fffffff || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !GetIndex(info[3], &boff) || !GetIndex(info[4], &len) ||
      !GetIndex(info[5], &pos) || !GetIndex(info[6], &mode) || mode > 0x7fffffff || !GetIndex(info[9], &slot) || slot > 0x7fffffff) {
    Napi::TypeError::New(env, "ioSubmitTransfer: expected (op READ or WRITE, fd, buffer, bufferOffset, length, position, rwflags, preferUring, punt, slot)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  IoState* st = State(env);
  if (st->sink.IsEmpty()) {
    Napi::Error::New(env, "ioSubmitTransfer: no sink registered (ioSetTransferSink)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array buf = info[2].As<Napi::Uint8Array>();
  size_t blen = buf.ByteLength();
  if (boff > blen || len > blen - boff || pos > static_cast<uint64_t>(INT64_MAX) - len) {
    Napi::RangeError::New(env, "ioSubmitTransfer: buffer offset " + std::to_string(boff) + " + length " + std::to_string(len) +
                                   " exceeds buffer size " + std::to_string(blen) + " or the position overflows")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  IoRequest* r;
  if (st->spare.empty()) {
    r = new IoRequest();
  } else {
    r = st->spare.back();
    st->spare.pop_back();
  }
  r->op = static_cast<IoOp>(op);
  r->fd = static_cast<int>(fd);
  r->buf = buf.Data() + boff;
  r->len = len;
  r->offset = pos;
  r->mode = static_cast<int>(mode);
  r->punt = info[8].ToBoolean().Value();
  r->tag = static_cast<double>(slot);
  st->engine->Submit(r, info[7].ToBoolean().Value());
  return env.Undefined();
}

// ioTransferError(errno, op, position, length, bytesDone) -> the Error ioSubmit would have rejected with.
Napi::Value IoTransferError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t err, op, pos, len, done;
  if (info.Length() < 5 || !GetIndex(info[0], &err) || err == 0 || err > 4095 || !GetIndex(info[1], &op) ||
      op >= static_cast<uint64_t>(IoOp::kCount) || !GetIndex(info[2], &pos) || !GetIndex(info[3], &len) || !GetIndex(info[4], &done)) {
    Napi::TypeError::New(env, "ioTransferError: expected (errno, op, position, length, bytesDone)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return RequestError(env, static_cast<int>(err), static_cast<IoOp>(op), static_cast<double>(pos), static_cast<double>(len),
                      static_cast<double>(done))
      .Value();
}

// ioExecuteSync(op, fd, position, length, mode) -> number | device info. For ops without a buffer
// (fallocate probes, device info, seeks) at configuration time, on the calling thread.
Napi::Value IoExecuteSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t op, fd, pos, len, mode;
  if (info.Length() < 5 || !GetIndex(info[0], &op) || op >= static_cast<uint64_t>(IoOp::kCount) ||
      op == static_cast<uint64_t>(IoOp::kRead) || op == static_cast<uint64_t>(IoOp::kWrite) || !GetIndex(info[1], &fd) ||
      fd > 0x7fffffff || !GetIndex(info[2], &pos) || !GetIndex(info[3], &len) || !GetIndex(info[4], &mode) ||
      mode > 0x7fffffff) {
    Napi::TypeError::New(env, "ioExecuteSync: expected (op other than read/write, fd, position, length, mode)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  IoRequest r;
  r.op = static_cast<IoOp>(op);
  r.fd = static_cast<int>(fd);
  r.offset = pos;
  r.len = len;
  r.mode = static_cast<int>(mode);
  ExecuteSync(&r);
  if (r.err) {
    Napi::Error e = ErrnoError(env, r.err, IoOpName(r.op));
    e.Set("syscall", Napi::String::New(env, IoOpName(r.op)));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return ResultValue(env, r);
}

// ioTransferSync(write, fd, buffer, bufferOffset, length, position, rwflags) -> bytes | -errno.
// A single attempt on the calling thread; the caller falls back to ioSubmit on any negative result.
Napi::Value IoTransferSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t fd, boff, len, pos, flags;
  if (info.Length() < 7 || !GetIndex(info[1], &fd) || fd > 0x7fffffff || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !GetIndex(info[3], &boff) ||
      !GetIndex(info[4], &len) || !GetIndex(info[5], &pos) || !GetIndex(info[6], &flags) || flags > 0x7fffffff) {
    Napi::TypeError::New(env, "ioTransferSync: expected (write, fd, buffer, bufferOffset, length, position, rwflags)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array buf = info[2].As<Napi::Uint8Array>();
  size_t blen = buf.ByteLength();
  if (boff > blen || len > blen - boff || pos > static_cast<uint64_t>(INT64_MAX) - len) {
    Napi::RangeError::New(env, "ioTransferSync: buffer offset " + std::to_string(boff) + " + length " +
                                   std::to_string(len) + " exceeds buffer size " + std::to_string(blen))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int64_t n = TransferOnce(info[0].ToBoolean().Value(), static_cast<int>(fd), buf.Data() + boff, len, pos,
                           static_cast<int>(flags));
  return Napi::Number::New(env, static_cast<double>(n));
}

// alignedBuffer(size, alignment) -> Buffer whose memory starts on `alignment` (O_DIRECT needs it).
Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size, align;
  if (info.Length() < 2 || !GetIndex(info[0], &size) || !GetIndex(info[1], &align) || align < sizeof(void*) ||
      align > (1u << 21) || (align & (align - 1)) || size > (uint64_t{1} << 32)) {
    Napi::TypeError::New(env, "alignedBuffer: expected (size <= 4 GiB, power-of-two alignment)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  void* p = nullptr;
  if (posix_memalign(&p, static_cast<size_t>(align), size ? static_cast<size_t>(size) : 1) != 0) {
    Napi::Error::New(env, "alignedBuffer: out of memory").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::memset(p, 0, static_cast<size_t>(size));
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), static_cast<size_t>(size),
                                    [](Napi::Env, uint8_t* data) { std::free(data); });
}

// bufferAlignment(buf) -> the largest power of two (up to 4096) its start address is a multiple of.
Napi::Value BufferAlignment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    Napi::TypeError::New(env, "bufferAlignment: expected a Buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto addr = reinterpret_cast<uintptr_t>(info[0].As<Napi::Uint8Array>().Data());
  unsigned a = 1;
  while (a < 4096 && (addr & (a * 2 - 1)) == 0) a *= 2;
  return Napi::Number::New(env, a);
}

Napi::Value IoEngineInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  IoState* st = State(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("uring", st->engine->uring_active());
  o.Set("uringEntries", st->engine->uring_entries());
  o.Set("threads", st->engine->pool_threads());
  o.Set("uringOps", st->engine->uring_ops());
  o.Set("poolOps", st->engine->pool_ops());
  o.Set("uringSubmits", st->engine->uring_submits());
  o.Set("poolHandoffs", st->engine->pool_handoffs());
  o.Set("uringUnavailableReason", st->engine->uring_unavailable_reason());
  return o;
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("ioSubmit", Napi::Function::New(env, IoSubmit, "ioSubmit"));
  exports.Set("ioSetTransferSink", Napi::Function::New(env, IoSetTransferSink, "ioSetTransferSink"));
  exports.Set("ioSubmitTransfer", Napi::Function::New(env, IoSubmitTransfer, "ioSubmitTransfer"));
  exports.Set("ioTransferError", Napi::Function::New(env, IoTransferError, "ioTransferError"));
  exports.Set("ioExecuteSync", Napi::Function::New(env, IoExecuteSync, "ioExecuteSync"));
  exports.Set("ioTransferSync", Napi::Function::New(env, IoTransferSync, "ioTransferSync"));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
  exports.Set("bufferAlignment", Napi::Function::New(env, BufferAlignment, "bufferAlignment"));
  exports.Set("ioEngineInfo", Napi::Function::New(env, IoEngineInfo, "ioEngineInfo"));
}

}  // namespace vtgt
