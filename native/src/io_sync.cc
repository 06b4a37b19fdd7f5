#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "io_request.h"

namespace vtgt {

const char* IoOpName(IoOp op) {
  switch (op) {
    case IoOp::kRead: return "pread";
    case IoOp::kWrite: return "pwrite";
    case IoOp::kFdatasync: return "fdatasync";
    case IoOp::kFsync: return "fsync";
    case IoOp::kFallocate: return "fallocate";
    case IoOp::kBlkDiscard: return "ioctl(BLKDISCARD)";
    case IoOp::kBlkZeroout: return "ioctl(BLKZEROOUT)";
    case IoOp::kSeekData: return "lseek(SEEK_DATA)";
    case IoOp::kSeekHole: return "lseek(SEEK_HOLE)";
    case IoOp::kDevInfo: return "fstat";
    default: return "io";
  }
}

namespace {

void Transfer(IoRequest* r, bool write) {
  while (r->done < r->len) {
    iovec iov{r->buf + r->done, static_cast<size_t>(r->len - r->done)};
    off_t at = static_cast<off_t>(r->offset + r->done);
    ssize_t n = write ? pwritev2(r->fd, &iov, 1, at, r->mode) : preadv2(r->fd, &iov, 1, at, r->mode);
    if (n < 0) {
      if (errno == EINTR) continue;
      r->err = errno;
      return;
    }
    if (n == 0) {
      if (write) r->err = EIO;  // a regular file or device never accepts 0 bytes without an error
      break;                    // read: end of file
    }
    r->done += static_cast<uint64_t>(n);
  }
  r->result = static_cast<int64_t>(r->done);
}

void Seek(IoRequest* r, int whence) {
  off_t o = lseek(r->fd, static_cast<off_t>(r->offset), whence);
  if (o >= 0) {
    r->result = o;
  } else if (errno == ENXIO) {
    r->result = -1;  // no data (or no hole) at or after offset: at/after end of file
  } else {
    r->err = errno;
  }
}

void DevInfo(IoRequest* r) {
  struct stat st;
  if (fstat(r->fd, &st) != 0) {
    r->err = errno;
    return;
  }
  r->info[5] = st.st_mode;
  struct statfs sfs;
  if (fstatfs(r->fd, &sfs) == 0) r->info[8] = static_cast<double>(static_cast<uint64_t>(sfs.f_type));
  r->info[6] = major(st.st_rdev);
  r->info[7] = minor(st.st_rdev);
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    int lbs = 0;
    unsigned int pbs = 0;
    int ro = 0;
    if (ioctl(r->fd, BLKGETSIZE64, &size) != 0 || ioctl(r->fd, BLKSSZGET, &lbs) != 0) {
      r->err = errno;
      return;
    }
    if (ioctl(r->fd, BLKPBSZGET, &pbs) != 0) pbs = static_cast<unsigned>(lbs);
    if (ioctl(r->fd, BLKROGET, &ro) != 0) ro = 0;
    r->info[0] = static_cast<double>(size);
    r->info[1] = 1;
    r->info[2] = lbs;
    r->info[3] = pbs;
    r->info[4] = ro ? 1 : 0;
  } else {
    r->info[0] = static_cast<double>(st.st_size);
    r->info[1] = 0;
    r->info[2] = 0;
    r->info[3] = static_cast<double>(st.st_blksize);
  }
}

}  // namespace

int64_t TransferOnce(bool write, int fd, uint8_t* buf, uint64_t len, uint64_t offset, int rwflags) {
  iovec iov{buf, static_cast<size_t>(len)};
  for (;;) {
    ssize_t n = write ? pwritev2(fd, &iov, 1, static_cast<off_t>(offset), rwflags)
                      : preadv2(fd, &iov, 1, static_cast<off_t>(offset), rwflags);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

void ExecuteSync(IoRequest* r) {
  r->err = 0;
  switch (r->op) {
    case IoOp::kRead:
      Transfer(r, false);
      break;
    case IoOp::kWrite:
      Transfer(r, true);
      break;
    case IoOp::kFdatasync:
      if (fdatasync(r->fd) != 0) r->err = errno;
      break;
    case IoOp::kFsync:
      if (fsync(r->fd) != 0) r->err = errno;
      break;
    case IoOp::kFallocate:
      if (fallocate(r->fd, r->mode, static_cast<off_t>(r->offset), static_cast<off_t>(r->len)) != 0) r->err = errno;
      break;
    case IoOp::kBlkDiscard:
    case IoOp::kBlkZeroout: {
      uint64_t range[2] = {r->offset, r->len};
      if (ioctl(r->fd, r->op == IoOp::kBlkDiscard ? BLKDISCARD : BLKZEROOUT, range) != 0) r->err = errno;
      break;
    }
    case IoOp::kSeekData:
      Seek(r, SEEK_DATA);
      break;
    case IoOp::kSeekHole:
      Seek(r, SEEK_HOLE);
      break;
    case IoOp::kDevInfo:
      DevInfo(r);
      break;
    default:
      r->err = EINVAL;
  }
}

}  // namespace vtgt
