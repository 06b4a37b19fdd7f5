// A MAP_SHARED mapping of a shared-memory file or memfd, with every access bounds-checked.
// Guest-memory emulation for the IBM VIO and Xen fabrics: the peer process is hostile, so offsets and
// lengths are validated here even though the TypeScript wrapper validated them already.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace vtgt {

struct ShmResult {
  // 0 on success; an errno value for system failures; -1 for a range error.
  int err = 0;
  std::string message;
  bool ok() const { return err == 0; }
};

class ShmRegion {
 public:
  ShmRegion() = default;
  ~ShmRegion();
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;

  // Creates (or truncates) `path` to `size` bytes and maps it read-write.
  ShmResult Create(const std::string& path, uint64_t size);
  // Maps an existing file whole.
  ShmResult Open(const std::string& path, bool read_only);
  // Maps `size` bytes of an fd the caller keeps owning.
  ShmResult FromFd(int fd, uint64_t size, bool read_only);
  // memfd of `size` bytes, sealed against shrinking so a peer cannot make our accesses SIGBUS.
  ShmResult CreateAnonymous(uint64_t size);

  void Close();
  bool mapped() const { return base_ != nullptr; }
  uint64_t size() const { return size_; }
  bool read_only() const { return read_only_; }
  // The owned memfd (CreateAnonymous), or -1.
  int owned_fd() const { return owned_fd_; }

  static bool InRange(uint64_t offset, uint64_t length, uint64_t size) {
    return offset <= size && length <= size - offset;
  }

  ShmResult Read(uint64_t offset, uint8_t* dst, uint64_t length) const;
  ShmResult Write(uint64_t offset, const uint8_t* src, uint64_t length);
  // segments = [offset0, length0, offset1, length1, ...]; copies them in order to/from one buffer.
  ShmResult Gather(const double* segments, size_t count, uint8_t* dst, uint64_t dst_len, uint64_t* copied) const;
  ShmResult Scatter(const double* segments, size_t count, const uint8_t* src, uint64_t src_len, uint64_t* copied);
  // Whether the segments, in order, hold the first (their total) bytes of `expected`; no copy made.
  ShmResult Equals(const double* segments, size_t count, const uint8_t* expected, uint64_t expected_len,
                   bool* equal) const;
  static ShmResult Copy(const ShmRegion& src, uint64_t src_off, ShmRegion& dst, uint64_t dst_off, uint64_t length);

  // Ring-index accessors: 4-byte aligned, acquire loads and release stores.
  ShmResult Load32(uint64_t offset, bool big_endian, uint32_t* out) const;
  ShmResult Store32(uint64_t offset, uint32_t value, bool big_endian);

 private:
  ShmResult MapFd(int fd, uint64_t size, bool read_only);
  ShmResult Check(const char* op, uint64_t offset, uint64_t length) const;

  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  bool read_only_ = false;
  int owned_fd_ = -1;
};

// Segment list validation shared by Gather/Scatter: each value a non-negative integer and each
// segment inside the region; returns the total length.
ShmResult CheckSegments(const double* segments, size_t count, uint64_t region_size, uint64_t* total);

}  // namespace vtgt
