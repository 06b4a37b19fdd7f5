// Unit tests of ShmRegion, ExecuteSync and CRC32C without Node. Exit status 0 when all pass.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "crc32c.h"
#include "io_request.h"
#include "shm_region.h"

using namespace vtgt;

static int g_failed = 0;
static int g_passed = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (cond) {                                                        \
      g_passed++;                                                      \
    } else {                                                           \
      g_failed++;                                                      \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

static std::string TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/vtgt-native-XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    std::perror("mkdtemp");
    std::exit(2);
  }
  return std::string(buf.data());
}

static void TestShmBounds() {
  ShmRegion r;
  CHECK(r.CreateAnonymous(4096).ok());
  uint8_t buf[64] = {0};
  CHECK(r.Write(4032, buf, 64).ok());
  CHECK(!r.Write(4033, buf, 64).ok());
  CHECK(!r.Read(UINT64_MAX, buf, 1).ok());           // offset past end
  CHECK(!r.Read(1, buf, UINT64_MAX).ok());           // offset + length overflows
  CHECK(!r.Read(4096, buf, 1).ok());
  CHECK(r.Read(4096, buf, 0).ok());                  // empty read at the end is fine
  uint32_t v = 0;
  CHECK(!r.Load32(4094, false, &v).ok());
  CHECK(!r.Load32(2, false, &v).ok());               // unaligned
  CHECK(r.Store32(4092, 0xA1B2C3D4u, false).ok());
  CHECK(r.Load32(4092, true, &v).ok() && v == 0xD4C3B2A1u);
  r.Close();
  CHECK(!r.Read(0, buf, 1).ok());                    // closed
  CHECK(!r.CreateAnonymous(0).ok());
}

static void TestShmSegments() {
  ShmRegion r;
  CHECK(r.CreateAnonymous(8192).ok());
  std::vector<uint8_t> src(300);
  for (size_t i = 0; i < src.size(); i++) src[i] = static_cast<uint8_t>(i);
  double segs[] = {8000, 192, 0, 100, 5000, 8};
  uint64_t copied = 0;
  CHECK(r.Scatter(segs, 3, src.data(), src.size(), &copied).ok() && copied == 300);
  std::vector<uint8_t> dst(300);
  CHECK(r.Gather(segs, 3, dst.data(), dst.size(), &copied).ok() && copied == 300);
  CHECK(std::memcmp(src.data(), dst.data(), 300) == 0);
  {
    ShmResult small = r.Gather(segs, 3, dst.data(), 299, &copied);  // destination too small
    CHECK(small.err == -1 && small.message.find("gather: segments total 300 bytes but the destination has room for 299") == 0);
    small = r.Scatter(segs, 3, src.data(), 299, &copied);  // source too short
    CHECK(small.err == -1 && small.message.find("scatter: segments total 300 bytes but the source has only 299") == 0);
    // A refused copy touches nothing: the region still holds the first scatter.
    std::vector<uint8_t> again(300);
    CHECK(r.Gather(segs, 3, again.data(), again.size(), &copied).ok() && again == src);
    double empty[] = {100, 0};
    CHECK(r.Scatter(empty, 1, src.data(), 0, &copied).ok() && copied == 0);
  }
  {
    bool equal = false;
    CHECK(r.Equals(segs, 3, src.data(), src.size(), &equal).ok() && equal);
    std::vector<uint8_t> other = src;
    other[299] ^= 1;  // the last byte of the last segment
    CHECK(r.Equals(segs, 3, other.data(), other.size(), &equal).ok() && !equal);
    ShmResult short_expected = r.Equals(segs, 3, src.data(), 299, &equal);
    CHECK(short_expected.err == -1 &&
          short_expected.message.find("equals: segments total 300 bytes but the expected data has only 299") == 0);
  }
  double past[] = {8000, 193};
  CHECK(!r.Gather(past, 1, dst.data(), dst.size(), &copied).ok());
  {
    bool equal = true;
    CHECK(!r.Equals(past, 1, dst.data(), dst.size(), &equal).ok());
  }
  double neg[] = {-1, 4};
  CHECK(!r.Gather(neg, 1, dst.data(), dst.size(), &copied).ok());
  double frac[] = {0.5, 4};
  CHECK(!r.Gather(frac, 1, dst.data(), dst.size(), &copied).ok());
  double nan[] = {0, std::strtod("nan", nullptr)};
  CHECK(!r.Gather(nan, 1, dst.data(), dst.size(), &copied).ok());
  double inf[] = {std::strtod("inf", nullptr), 1};
  CHECK(!r.Scatter(inf, 1, src.data(), src.size(), &copied).ok());
  // Totals that would wrap a 64-bit sum must be refused (checked without mapping 2^52 bytes).
  {
    std::vector<double> many;
    for (int i = 0; i < 4200; i++) {
      many.push_back(0);
      many.push_back(static_cast<double>(uint64_t{1} << 52));
    }
    uint64_t total = 0;
    CHECK(!CheckSegments(many.data(), 4200, uint64_t{1} << 52, &total).ok());
    CHECK(CheckSegments(many.data(), 4000, uint64_t{1} << 52, &total).ok() && total == (uint64_t{4000} << 52));
  }
  // Copy within one region, overlapping.
  CHECK(ShmRegion::Copy(r, 0, r, 1, 100).ok());
  uint8_t b[4];
  CHECK(r.Read(0, b, 4).ok() && b[0] == 192 && b[1] == 192 && b[2] == 193 && b[3] == 194);  // [0..100) held src[192..292)
  CHECK(!ShmRegion::Copy(r, 8100, r, 0, 93).ok());
}

static void TestShmFileAndReadOnly(const std::string& dir) {
  std::string path = dir + "/region";
  ShmRegion w;
  CHECK(w.Create(path, 10000).ok());
  const uint8_t msg[] = "shared";
  CHECK(w.Write(9000, msg, sizeof msg).ok());
  ShmRegion ro;
  CHECK(ro.Open(path, true).ok() && ro.size() == 10000);
  uint8_t got[sizeof msg];
  CHECK(ro.Read(9000, got, sizeof got).ok() && std::memcmp(got, msg, sizeof msg) == 0);
  CHECK(ro.Write(0, msg, 1).err == EROFS);
  CHECK(ro.Store32(0, 1, false).err == EROFS);
  double seg[] = {9000, 4};
  uint64_t copied = 99;
  CHECK(ro.Scatter(seg, 1, msg, sizeof msg, &copied).err == EROFS && copied == 99);
  CHECK(ro.Gather(seg, 1, got, sizeof got, &copied).ok() && copied == 4 && std::memcmp(got, msg, 4) == 0);
  ro.Close();
  ShmResult closed = ro.Gather(seg, 1, got, sizeof got, &copied);
  CHECK(closed.err == -1 && closed.message == "gather: region is closed");
  CHECK(ro.Scatter(seg, 1, msg, sizeof msg, &copied).message == "scatter: region is closed");
  ShmRegion missing;
  ShmResult m = missing.Open(dir + "/none", false);
  CHECK(m.err == ENOENT && m.message.find("/none") != std::string::npos);
}

static void TestShmTruncatedByPeer(const std::string& dir) {
  std::string path = dir + "/shrinking";
  ShmRegion r;
  CHECK(r.Create(path, 3 * 4096).ok());
  uint8_t b[16] = {1};
  CHECK(r.Write(8192, b, 16).ok());
  CHECK(truncate(path.c_str(), 4096) == 0);  // what a hostile peer can do to a plain file
  CHECK(r.Read(8192, b, 16).err == EFAULT);
  CHECK(r.Write(8192, b, 16).err == EFAULT);
  uint32_t v;
  CHECK(r.Load32(8192, false, &v).err == EFAULT);
  CHECK(r.Store32(8192, 1, false).err == EFAULT);
  double segs[] = {0, 16, 8192, 16};
  uint8_t big[32];
  uint64_t copied = 0;
  ShmResult g = r.Gather(segs, 2, big, sizeof big, &copied);
  CHECK(g.err == EFAULT && g.message.find("gather: ") == 0);
  ShmResult sc = r.Scatter(segs, 2, big, sizeof big, &copied);
  CHECK(sc.err == EFAULT && sc.message.find("scatter: ") == 0);
  bool equal = true;
  ShmResult eq = r.Equals(segs, 2, big, sizeof big, &equal);
  CHECK(eq.err == EFAULT && eq.message.find("equals: ") == 0);
  CHECK(r.Read(0, b, 16).ok());  // the part still backed keeps working
  CHECK(truncate(path.c_str(), 3 * 4096) == 0);
  CHECK(r.Read(8192, b, 16).ok() && b[0] == 0);  // backed again: the regrown part reads as zeroes
}

static void TestIoSync(const std::string& dir) {
  std::string path = dir + "/io";
  int fd = open(path.c_str(), O_RDWR | O_CREAT, 0600);
  CHECK(fd >= 0);
  std::vector<uint8_t> data(1 << 20, 0x5a);
  IoRequest w;
  w.op = IoOp::kWrite;
  w.fd = fd;
  w.buf = data.data();
  w.len = data.size();
  ExecuteSync(&w);
  CHECK(w.err == 0 && w.result == static_cast<int64_t>(data.size()));
  IoRequest s;
  s.op = IoOp::kFdatasync;
  s.fd = fd;
  ExecuteSync(&s);
  CHECK(s.err == 0);
  IoRequest p;
  p.op = IoOp::kFallocate;
  p.fd = fd;
  p.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  p.offset = 0;
  p.len = 512 * 1024;
  ExecuteSync(&p);
  CHECK(p.err == 0);
  IoRequest h;
  h.op = IoOp::kSeekData;
  h.fd = fd;
  ExecuteSync(&h);
  CHECK(h.err == 0 && h.result == 512 * 1024);
  IoRequest end;
  end.op = IoOp::kSeekData;
  end.fd = fd;
  end.offset = 4 << 20;
  ExecuteSync(&end);
  CHECK(end.err == 0 && end.result == -1);
  std::vector<uint8_t> back(8192, 1);
  IoRequest r;
  r.op = IoOp::kRead;
  r.fd = fd;
  r.buf = back.data();
  r.len = back.size();
  r.offset = (1 << 20) - 4096;  // only 4096 bytes before EOF
  ExecuteSync(&r);
  CHECK(r.err == 0 && r.result == 4096 && back[0] == 0x5a);
  IoRequest info;
  info.op = IoOp::kDevInfo;
  info.fd = fd;
  ExecuteSync(&info);
  CHECK(info.err == 0 && info.info[0] == (1 << 20) && info.info[1] == 0);
  IoRequest ioctl_on_file;
  ioctl_on_file.op = IoOp::kBlkDiscard;
  ioctl_on_file.fd = fd;
  ioctl_on_file.len = 4096;
  ExecuteSync(&ioctl_on_file);
  CHECK(ioctl_on_file.err == ENOTTY);
  close(fd);
  IoRequest bad;
  bad.op = IoOp::kRead;
  bad.fd = fd;  // closed
  bad.buf = back.data();
  bad.len = 1;
  ExecuteSync(&bad);
  CHECK(bad.err == EBADF);
}

using Crc32cFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

// RFC 3720 appendix B.4 vectors plus the common "123456789" check value, for one implementation.
static void CheckCrc32cVectors(Crc32cFn fn) {
  uint8_t buf[32];
  std::memset(buf, 0, sizeof buf);
  CHECK(fn(0, buf, 32) == 0x8A9136AAu);
  std::memset(buf, 0xFF, sizeof buf);
  CHECK(fn(0, buf, 32) == 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = static_cast<uint8_t>(i);
  CHECK(fn(0, buf, 32) == 0x46DD794Eu);
  for (int i = 0; i < 32; i++) buf[i] = static_cast<uint8_t>(31 - i);
  CHECK(fn(0, buf, 32) == 0x113FDB5Cu);
  const auto* s = reinterpret_cast<const uint8_t*>("123456789");
  CHECK(fn(0, s, 9) == 0xE3069283u);
  CHECK(fn(fn(0, s, 4), s + 4, 5) == 0xE3069283u);
  CHECK(fn(0, s, 0) == 0u);
  CHECK(fn(0x12345678u, s, 0) == 0x12345678u);
}

static void TestCrc32c() {
  CheckCrc32cVectors(crc32c);
  CheckCrc32cVectors(crc32c_software);
  std::printf("crc32c: hardware path %s\n", crc32c_hardware() ? "in use" : "not available");

  // Random buffers at every alignment and tail length: whichever path crc32c() takes must agree with
  // the table code, whole and split at an arbitrary point (a continued digest).
  uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&x]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::vector<uint8_t> data(4096 + 16);
  for (auto& b : data) b = static_cast<uint8_t>(next());
  int mismatches = 0;
  for (int round = 0; round < 400; round++) {
    size_t off = next() % 16;
    size_t len = round < 64 ? static_cast<size_t>(round) : next() % 4097;
    size_t cut = len ? next() % (len + 1) : 0;
    const uint8_t* p = data.data() + off;
    uint32_t seed = round % 3 == 0 ? 0 : static_cast<uint32_t>(next());
    uint32_t soft = crc32c_software(seed, p, len);
    if (crc32c(seed, p, len) != soft) mismatches++;
    if (crc32c_software(crc32c_software(seed, p, cut), p + cut, len - cut) != soft) mismatches++;
    if (crc32c(crc32c(seed, p, cut), p + cut, len - cut) != soft) mismatches++;
  }
  CHECK(mismatches == 0);
}

int main() {
  std::string dir = TempDir();
  TestShmBounds();
  TestShmSegments();
  TestShmFileAndReadOnly(dir);
  TestShmTruncatedByPeer(dir);
  TestIoSync(dir);
  TestCrc32c();
  std::string cleanup = "rm -rf '" + dir + "'";
  if (std::system(cleanup.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
