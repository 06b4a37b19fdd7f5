// Plain C++ over libxenstore / libxengnttab / libxenevtchn for the user-space pvSCSI backend on a
// Xen dom0 (or driver domain). No N-API here: napi_xen.cc is the thin binding.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vtgt {

// Why this machine cannot run the real Xen backend, or "" when it can (device nodes present).
std::string XenUnavailableReason();

#ifdef VTGT_HAVE_LIBXEN
struct XenCopySeg {
  bool to_guest;  // true: local buffer -> guest page (GNTCOPY_dest_gref)
  uint16_t domid;
  uint32_t ref;
  uint16_t offset;
  uint16_t len;
  uint8_t* local;
  int16_t status;
};

class XenDom0 {
 public:
  XenDom0() = default;
  ~XenDom0();
  XenDom0(const XenDom0&) = delete;
  XenDom0& operator=(const XenDom0&) = delete;

  // Opens xenstore, gntdev and evtchn; returns 0 or an errno, with `what` naming the failed step.
  int Open(std::string* what);
  void Close();

  // xenstore (tx = 0: no transaction)
  int XsRead(uint32_t tx, const std::string& path, std::string* out);  // ENOENT when absent
  int XsWrite(uint32_t tx, const std::string& path, const std::string& value);
  int XsRm(uint32_t tx, const std::string& path);
  int XsDirectory(uint32_t tx, const std::string& path, std::vector<std::string>* out);
  int XsTransactionStart(uint32_t* tx);
  int XsTransactionEnd(uint32_t tx, bool abort);  // EAGAIN: conflict, retry
  // perms: (domid, XS_PERM_* bits) pairs; the first names the owner and the default for others.
  int XsSetPermissions(uint32_t tx, const std::string& path, const std::vector<std::pair<uint32_t, uint32_t>>& perms);
  int XsWatch(const std::string& path, const std::string& token);
  int XsUnwatch(const std::string& path, const std::string& token);
  int XsFd() const;
  // Next pending watch event without blocking; false when none.
  bool XsNextWatch(std::string* path, std::string* token);

  // grants
  void* MapGrant(uint16_t domid, uint32_t ref, bool writable, int* err);
  int Unmap(void* addr);
  int GrantCopy(std::vector<XenCopySeg>& segs);

  // event channels
  int BindInterdomain(uint16_t domid, uint32_t remote_port, uint32_t* local_port);
  int Notify(uint32_t port);
  int Unmask(uint32_t port);
  int Unbind(uint32_t port);
  int EvtchnFd() const;
  // Next pending port (now masked) or -1 when none.
  int Pending();

 private:
  // Library handles kept opaque here so this header needs no Xen headers.
  void* xs_ = nullptr;
  void* gnt_ = nullptr;
  void* evt_ = nullptr;
};
#endif

}  // namespace vtgt
