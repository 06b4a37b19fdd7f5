#include "shm_region.h"

#include "js_number.h"
#include "mem_guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ring accessors assume a little-endian host");

namespace vtgt {
namespace {

ShmResult SysError(int err, const std::string& what) {
  ShmResult r;
  r.err = err;
  r.message = what + ": " + std::strerror(err);
  return r;
}

// The mapped file shrank under us (a peer truncated it): the access raised SIGBUS.
ShmResult Fault(const char* op) {
  ShmResult r;
  r.err = EFAULT;
  r.message = std::string(op) + ": the file behind this region was truncated by another process";
  return r;
}

ShmResult RangeError(const std::string& what) {
  ShmResult r;
  r.err = -1;
  r.message = what;
  return r;
}

}  // namespace

ShmRegion::~ShmRegion() { Close(); }

void ShmRegion::Close() {
  if (base_) munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  if (owned_fd_ >= 0) close(owned_fd_);
  owned_fd_ = -1;
}

ShmResult ShmRegion::MapFd(int fd, uint64_t size, bool read_only) {
  if (size == 0) return RangeError("cannot map an empty region (size 0)");
  if (size > static_cast<uint64_t>(SIZE_MAX)) return RangeError("region size too large");
  int prot = PROT_READ | (read_only ? 0 : PROT_WRITE);
  void* p = mmap(nullptr, static_cast<size_t>(size), prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return SysError(errno, "mmap");
  base_ = static_cast<uint8_t*>(p);
  size_ = size;
  read_only_ = read_only;
  return {};
}

ShmResult ShmRegion::Create(const std::string& path, uint64_t size) {
  if (size == 0) return RangeError("cannot create an empty region (size 0)");
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return SysError(errno, "open " + path);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    return SysError(e, "ftruncate " + path);
  }
  ShmResult r = MapFd(fd, size, false);
  close(fd);  // the mapping keeps the file referenced
  if (!r.ok()) r.message += " " + path;
  return r;
}

ShmResult ShmRegion::Open(const std::string& path, bool read_only) {
  int fd = open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return SysError(errno, "open " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return SysError(e, "fstat " + path);
  }
  ShmResult r = MapFd(fd, static_cast<uint64_t>(st.st_size), read_only);
  close(fd);
  if (!r.ok()) r.message += " (" + path + ")";
  return r;
}

ShmResult ShmRegion::FromFd(int fd, uint64_t size, bool read_only) { return MapFd(fd, size, read_only); }

ShmResult ShmRegion::CreateAnonymous(uint64_t size) {
  if (size == 0) return RangeError("cannot create an empty region (size 0)");
  int fd = memfd_create("vtgt-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return SysError(errno, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    return SysError(e, "ftruncate memfd");
  }
  // A peer that got the fd may not shrink it under our mapping (that would SIGBUS us).
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    int e = errno;
    close(fd);
    return SysError(e, "seal memfd");
  }
  ShmResult r = MapFd(fd, size, false);
  if (!r.ok()) {
    close(fd);
    return r;
  }
  owned_fd_ = fd;
  return r;
}

ShmResult ShmRegion::Check(const char* op, uint64_t offset, uint64_t length) const {
  if (!base_) return RangeError(std::string(op) + ": region is closed");
  if (!InRange(offset, length, size_))
    return RangeError(std::string(op) + ": offset " + std::to_string(offset) + " + length " + std::to_string(length) +
                      " exceeds region size " + std::to_string(size_));
  return {};
}

ShmResult ShmRegion::Read(uint64_t offset, uint8_t* dst, uint64_t length) const {
  ShmResult r = Check("read", offset, length);
  if (r.ok() && length && !Guarded([&] { std::memcpy(dst, base_ + offset, length); })) return Fault("read");
  return r;
}

ShmResult ShmRegion::Write(uint64_t offset, const uint8_t* src, uint64_t length) {
  ShmResult r = Check("write", offset, length);
  if (!r.ok()) return r;
  if (read_only_) return SysError(EROFS, "write: region is mapped read-only");
  if (length && !Guarded([&] { std::memcpy(base_ + offset, src, length); })) return Fault("write");
  return r;
}

ShmResult CheckSegments(const double* segments, size_t count, uint64_t region_size, uint64_t* total) {
  uint64_t sum = 0;
  for (size_t i = 0; i < count; i++) {
    double o = segments[2 * i], l = segments[2 * i + 1];
    if (!IsJsIndex(o) || !IsJsIndex(l))
      return RangeError("segment " + std::to_string(i) + ": offset and length must be non-negative integers");
    uint64_t off = static_cast<uint64_t>(o), len = static_cast<uint64_t>(l);
    if (!ShmRegion::InRange(off, len, region_size))
      return RangeError("segment " + std::to_string(i) + ": offset " + std::to_string(off) + " + length " +
                        std::to_string(len) + " exceeds region size " + std::to_string(region_size));
    // 2^20 segments of up to 2^53 bytes could wrap a 64-bit sum: stop before it can.
    if (len > UINT64_MAX - sum) return RangeError("segments total more than 2^64 bytes");
    sum += len;
  }
  *total = sum;
  return {};
}

namespace {

// Checks the segments against the region and against a buffer of buf_len bytes (`short_buffer` words
// the refusal), then, under the fault guard, calls visit(region bytes, position in the buffer, length)
// for each non-empty segment in order until it returns false. *total: the segments' total length.
template <typename Visit>
ShmResult WalkSegments(const char* op, const char* short_buffer, uint8_t* base, uint64_t size, const double* segments,
                       size_t count, uint64_t buf_len, uint64_t* total, Visit visit) {
  ShmResult r = CheckSegments(segments, count, size, total);
  if (!r.ok()) return r;
  if (*total > buf_len)
    return RangeError(std::string(op) + ": segments total " + std::to_string(*total) + " bytes but " + short_buffer +
                      std::to_string(buf_len));
  bool ok = Guarded([&] {
    uint64_t pos = 0;
    for (size_t i = 0; i < count; i++) {
      uint64_t off = static_cast<uint64_t>(segments[2 * i]), len = static_cast<uint64_t>(segments[2 * i + 1]);
      if (len && !visit(base + off, pos, len)) break;
      pos += len;
    }
  });
  return ok ? ShmResult{} : Fault(op);
}

// Gather (region → buf) and scatter (buf → region) differ only in the copy direction and wording.
template <bool to_region, typename Byte>
ShmResult CopySegments(uint8_t* base, uint64_t size, const double* segments, size_t count, Byte* buf,
                       uint64_t buf_len, uint64_t* copied) {
  return WalkSegments(to_region ? "scatter" : "gather", to_region ? "the source has only " : "the destination has room for ",
                      base, size, segments, count, buf_len, copied, [&](uint8_t* at, uint64_t pos, uint64_t len) {
                        if constexpr (to_region)
                          std::memcpy(at, buf + pos, len);
                        else
                          std::memcpy(buf + pos, at, len);
                        return true;
                      });
}

}  // namespace

ShmResult ShmRegion::Gather(const double* segments, size_t count, uint8_t* dst, uint64_t dst_len,
                            uint64_t* copied) const {
  if (!base_) return RangeError("gather: region is closed");
  return CopySegments<false>(base_, size_, segments, count, dst, dst_len, copied);
}

ShmResult ShmRegion::Scatter(const double* segments, size_t count, const uint8_t* src, uint64_t src_len,
                             uint64_t* copied) {
  if (!base_) return RangeError("scatter: region is closed");
  if (read_only_) return SysError(EROFS, "scatter: region is mapped read-only");
  return CopySegments<true>(base_, size_, segments, count, src, src_len, copied);
}

ShmResult ShmRegion::Equals(const double* segments, size_t count, const uint8_t* expected, uint64_t expected_len,
                            bool* equal) const {
  if (!base_) return RangeError("equals: region is closed");
  bool same = true;
  uint64_t total = 0;
  ShmResult r = WalkSegments("equals", "the expected data has only ", base_, size_, segments, count, expected_len, &total,
                             [&](uint8_t* at, uint64_t pos, uint64_t len) { return (same = std::memcmp(at, expected + pos, len) == 0); });
  if (!r.ok()) return r;
  *equal = same;
  return {};
}

ShmResult ShmRegion::Copy(const ShmRegion& src, uint64_t src_off, ShmRegion& dst, uint64_t dst_off, uint64_t length) {
  ShmResult r = src.Check("copy (source)", src_off, length);
  if (!r.ok()) return r;
  r = dst.Check("copy (destination)", dst_off, length);
  if (!r.ok()) return r;
  if (dst.read_only_) return SysError(EROFS, "copy: destination region is mapped read-only");
  // memmove: source and destination may be the same region, overlapping.
  if (length && !Guarded([&] { std::memmove(dst.base_ + dst_off, src.base_ + src_off, length); })) {
    return Fault("copy");
  }
  return {};
}

ShmResult ShmRegion::Load32(uint64_t offset, bool big_endian, uint32_t* out) const {
  ShmResult r = Check("load32", offset, 4);
  if (!r.ok()) return r;
  if (offset % 4) return RangeError("load32: offset " + std::to_string(offset) + " is not 4-byte aligned");
  uint32_t v = 0;
  if (!Guarded([&] { v = __atomic_load_n(reinterpret_cast<const uint32_t*>(base_ + offset), __ATOMIC_ACQUIRE); })) {
    return Fault("load32");
  }
  *out = big_endian ? __builtin_bswap32(v) : v;  // x86-64/aarch64 Linux hosts are little-endian
  return r;
}

ShmResult ShmRegion::Store32(uint64_t offset, uint32_t value, bool big_endian) {
  ShmResult r = Check("store32", offset, 4);
  if (!r.ok()) return r;
  if (offset % 4) return RangeError("store32: offset " + std::to_string(offset) + " is not 4-byte aligned");
  if (read_only_) return SysError(EROFS, "store32: region is mapped read-only");
  uint32_t v = big_endian ? __builtin_bswap32(value) : value;
  if (!Guarded([&] { __atomic_store_n(reinterpret_cast<uint32_t*>(base_ + offset), v, __ATOMIC_RELEASE); })) {
    return Fault("store32");
  }
  // A full barrier so a following load of the peer's index is not reordered before this store
  // (the Xen ring protocol's "push requests, then check for notify" pattern needs it).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return r;
}

}  // namespace vtgt
