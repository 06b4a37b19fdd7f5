// One asynchronous block-I/O request, as the engines (io_uring, thread pool) execute it.
// Plain C++: the binding owns the JS side (promise, pinned Buffer) through `js`.
#pragma once
#include <cstdint>

namespace vtgt {

// Numbers shared with src/native/io.ts (IoOp there); keep in sync.
enum class IoOp : uint32_t {
  kRead = 0,
  kWrite = 1,
  kFdatasync = 2,
  kFsync = 3,
  kFallocate = 4,   // mode = FALLOC_FL_* flags
  kBlkDiscard = 5,  // BLKDISCARD ioctl
  kBlkZeroout = 6,  // BLKZEROOUT ioctl
  kSeekData = 7,    // result = next data offset, or -1 when none (ENXIO)
  kSeekHole = 8,    // result = next hole offset, or -1 when past the end (ENXIO)
  kDevInfo = 9,     // fills info[]
  kCount = 10,
};

struct IoRequest {
  IoOp op = IoOp::kRead;
  int fd = -1;
  uint8_t* buf = nullptr;
  uint64_t len = 0;
  uint64_t offset = 0;
  // kFallocate: FALLOC_FL_* flags; kWrite/kRead: RWF_* flags (RWF_DSYNC for a FUA write).
  int mode = 0;
  // io_uring: hand the request to an io-wq worker at once instead of first trying it inline (for
  // buffered writes the file system cannot do without blocking: the inline attempt only fails).
  bool punt = false;
  // Bytes transferred so far: engines resume short reads/writes until len, or EOF for reads.
  uint64_t done = 0;
  // Outcome: err == 0 -> result holds the op's value (bytes for read/write); else err is an errno.
  int64_t result = 0;
  int err = 0;
  // kDevInfo: [size, isBlockDevice, logicalBlockSize, physicalBlockSize, readOnlyDevice, mode, rdevMajor,
  // rdevMinor, fsType (statfs f_type)]
  double info[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  void* js = nullptr;
  // A transfer completed through the JS completion sink rather than a promise of its own: the
  // caller's slot number (>= 0), handed back with the result (napi_io.cc, ioSubmitTransfer).
  double tag = -1;
  IoRequest* next = nullptr;
};

// Runs a request to completion on the calling thread (thread-pool workers, and tests).
void ExecuteSync(IoRequest* req);

// One preadv2/pwritev2 attempt on the calling thread (the loop thread's fast path for page-cache and
// tmpfs data). Returns bytes moved, or -errno (-EAGAIN when RWF_NOWAIT would have blocked).
int64_t TransferOnce(bool write, int fd, uint8_t* buf, uint64_t len, uint64_t offset, int rwflags);
const char* IoOpName(IoOp op);

}  // namespace vtgt
