// Thin binding over io_engine.cc. ioSubmitTransfer(..., slot): a read or write whose completion goes to
// one JS function registered with ioSetTransferSink, in batches written to a shared Float64Array — no
// promise, persistent handle or Buffer reference per request (the caller keeps the Buffer alive;
// src/native/transfer-slots.ts). ioSubmit(...) -> Promise: every other operation (none has a buffer);
// the promise settles on the loop thread.
#include <napi.h>
#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "addon_data.h"
#include "io_engine.h"

namespace vtgt {
namespace {

struct JsRequest {
  napi_deferred deferred = nullptr;
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

// What a request resolves with: bytes (or an offset) for most, an object for kDevInfo. With N-API's C
// functions for the reason given at RequestError; nullptr when the value cannot be made.
napi_value ResultValue(napi_env env, const IoRequest& r) {
  napi_value v = nullptr;
  if (r.op != IoOp::kDevInfo) {
    napi_create_double(env, static_cast<double>(r.result), &v);
    return v;
  }
  static const char* const kKeys[9] = {"size", "isBlockDevice", "logicalBlockSize", "physicalBlockSize", "readOnlyDevice",
                                       "mode", "rdevMajor", "rdevMinor", "fsType"};
  if (napi_create_object(env, &v) != napi_ok) return nullptr;
  for (int i = 0; i < 9; i++) {
    napi_value field;
    bool flag = i == 1 || i == 4;
    napi_status made = flag ? napi_get_boolean(env, r.info[i] != 0, &field) : napi_create_double(env, r.info[i], &field);
    if (made != napi_ok || napi_set_named_property(env, v, kKeys[i], field) != napi_ok) return nullptr;
  }
  return v;
}

// The error a failed request rejects with: errno name and text, plus what the request was, so that one
// rejection handler per file can name it (no closure per request). Built with N-API's C functions,
// whose failures are returned rather than fatal: completions keep arriving while a worker thread is
// being terminated, when no JavaScript object can be made any more. nullptr then.
napi_value RequestError(napi_env env, int err, IoOp op, double position, double length, double done) {
  napi_value error = ErrnoErrorValue(env, err, IoOpName(op));
  if (!error) return nullptr;
  auto set = [&](const char* key, napi_value v) { return napi_set_named_property(env, error, key, v) == napi_ok; };
  auto number = [&](double d) {
    napi_value v = nullptr;
    napi_create_double(env, d, &v);
    return v;
  };
  napi_value syscall;
  if (napi_create_string_utf8(env, IoOpName(op), NAPI_AUTO_LENGTH, &syscall) != napi_ok || !set("syscall", syscall) ||
      !set("bytesDone", number(done)) ||
      !set("op", number(static_cast<double>(op))) || !set("position", number(position)) || !set("length", number(length))) {
    return nullptr;
  }
  return error;
}

void Settle(napi_env env, IoRequest* r) {
  auto* js = static_cast<JsRequest*>(r->js);
  if (r->err) {
    napi_value err = RequestError(env, r->err, r->op, static_cast<double>(r->offset), static_cast<double>(r->len), static_cast<double>(r->done));
    if (err) napi_reject_deferred(env, js->deferred, err);
  } else if (napi_value value = ResultValue(env, *r)) {
    napi_resolve_deferred(env, js->deferred, value);
  }
  delete js;
  delete r;
}

IoState* State(Napi::Env env);

// Requests kept for reuse at most: as many as the io_uring ring and its backlog commonly hold.
constexpr size_t kMaxSpareRequests = 4096;

// Hands `n` completions in the ring to the sink, with N-API's C functions (see RequestError). The sink
// catches its own errors, so a call that fails is the environment stopping (a worker thread being
// terminated): nobody is left to settle. An Error that escapes anyway is reported as uncaught.
void CallSink(napi_env env, IoState* st, size_t n) {
  napi_value argv[1], fn, undefined, result;
  if (napi_create_double(env, static_cast<double>(n), &argv[0]) != napi_ok || napi_get_reference_value(env, static_cast<napi_ref>(st->sink), &fn) != napi_ok ||
      fn == nullptr || napi_get_undefined(env, &undefined) != napi_ok) {
    return;
  }
  if (napi_call_function(env, undefined, fn, 1, argv, &result) == napi_ok) return;
  bool pending = false;
  napi_value exception;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending || napi_get_and_clear_last_exception(env, &exception) != napi_ok) return;
  bool is_error = false;
  if (napi_is_error(env, exception, &is_error) == napi_ok && is_error) napi_fatal_exception(env, exception);
}

void Deliver(napi_env env, IoState* st, IoRequest** reqs, size_t n) {
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
      CallSink(env, st, k);
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
  if (k) CallSink(env, st, k);
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

// ioSubmit(op, fd, length, position, mode, preferUring) -> Promise<number|object>, for every operation but
// READ and WRITE (those go through ioSubmitTransfer).
Napi::Value IoSubmit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t op, fd, len, pos, mode;
  if (info.Length() < 6 || !GetIndex(info[0], &op) || op >= static_cast<uint64_t>(IoOp::kCount) || !GetIndex(info[1], &fd) ||
      fd > 0x7fffffff || !GetIndex(info[2], &len) || !GetIndex(info[3], &pos) || !GetIndex(info[4], &mode) || mode > 0x7fffffff) {
    Napi::TypeError::New(env, "ioSubmit: expected (op, fd, length, position, mode, preferUring)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (op == static_cast<uint64_t>(IoOp::kRead) || op == static_cast<uint64_t>(IoOp::kWrite)) {
    Napi::TypeError::New(env, "ioSubmit: reads and writes go through ioSubmitTransfer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (pos > static_cast<uint64_t>(INT64_MAX) - len) {
    Napi::RangeError::New(env, "ioSubmit: position + length overflows a file offset").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* r = new IoRequest();
  r->op = static_cast<IoOp>(op);
  r->fd = static_cast<int>(fd);
  r->len = len;
  r->offset = pos;
  r->mode = static_cast<int>(mode);
  auto* js = new JsRequest();
  IoState* st = State(env);
  napi_value promise;
  napi_create_promise(env, &js->deferred, &promise);
  r->js = js;
  st->engine->Submit(r, info[5].ToBoolean().Value());
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
  napi_value error = RequestError(env, static_cast<int>(err), static_cast<IoOp>(op), static_cast<double>(pos), static_cast<double>(len),
                                  static_cast<double>(done));
  if (!error) return env.Undefined();  // an exception is pending, or JavaScript can no longer run
  return Napi::Value(env, error);
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
  napi_value value = ResultValue(env, r);
  if (!value) return env.Undefined();  // an exception is pending
  return Napi::Value(env, value);
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

// ioFlushSubmissions(): what this turn submitted so far goes to the kernel / the workers now.
Napi::Value IoFlushSubmissions(const Napi::CallbackInfo& info) {
  State(info.Env())->engine->FlushNow();
  return info.Env().Undefined();
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
  exports.Set("ioFlushSubmissions", Napi::Function::New(env, IoFlushSubmissions, "ioFlushSubmissions"));
}

}  // namespace vtgt
