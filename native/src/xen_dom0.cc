#include "xen_dom0.h"

#include <sys/stat.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#ifdef VTGT_HAVE_LIBXEN
#include <sys/mman.h>
extern "C" {
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xen/grant_table.h>
}
#endif

namespace vtgt {

static bool Exists(const char* p) {
  struct stat st;
  return stat(p, &st) == 0;
}

std::string XenUnavailableReason() {
  if (!Exists("/proc/xen") && !Exists("/sys/hypervisor/type")) {
    return "this machine is not running under Xen (/proc/xen and /sys/hypervisor/type are missing)";
  }
  std::ifstream type("/sys/hypervisor/type");
  std::string t;
  if (type && std::getline(type, t) && t != "xen") return "the hypervisor is \"" + t + "\", not Xen";
  if (!Exists("/dev/xen/gntdev")) return "/dev/xen/gntdev is missing (load the xen-gntdev module; a dom0 or driver domain is required)";
  if (!Exists("/dev/xen/evtchn")) return "/dev/xen/evtchn is missing (load the xen-evtchn module)";
  if (!Exists("/dev/xen/xenbus") && !Exists("/var/run/xenstored/socket") && !Exists("/run/xenstored/socket")) {
    return "no xenstore access (/dev/xen/xenbus or the xenstored socket)";
  }
#ifndef VTGT_HAVE_LIBXEN
  return "vtgt was built without the Xen libraries (install libxen-dev and rebuild with npm run build:native)";
#else
  return "";
#endif
}

#ifdef VTGT_HAVE_LIBXEN
// The library typedefs are opaque structs; keep our members typed through casts in one place.
#define XGT(p) static_cast<xengnttab_handle*>(p)
#define XCE(p) static_cast<xenevtchn_handle*>(p)
#define XSH(p) static_cast<struct xs_handle*>(p)

XenDom0::~XenDom0() { Close(); }

int XenDom0::Open(std::string* what) {
  xs_ = xs_open(0);
  if (!xs_) {
    *what = "xs_open";
    return errno ? errno : EIO;
  }
  gnt_ = xengnttab_open(nullptr, 0);
  if (!gnt_) {
    *what = "xengnttab_open";
    return errno ? errno : EIO;
  }
  // Ring pages only stay mapped; data moves by grant copy. Room for many rings.
  xengnttab_set_max_grants(XGT(gnt_), 4096);
  evt_ = xenevtchn_open(nullptr, 0);
  if (!evt_) {
    *what = "xenevtchn_open";
    return errno ? errno : EIO;
  }
  return 0;
}

void XenDom0::Close() {
  if (evt_) xenevtchn_close(XCE(evt_));
  if (gnt_) xengnttab_close(XGT(gnt_));
  if (xs_) xs_close(XSH(xs_));
  evt_ = nullptr;
  gnt_ = nullptr;
  xs_ = nullptr;
}

int XenDom0::XsRead(uint32_t tx, const std::string& path, std::string* out) {
  unsigned int len = 0;
  void* v = xs_read(XSH(xs_), tx, path.c_str(), &len);
  if (!v) return errno ? errno : ENOENT;
  out->assign(static_cast<char*>(v), len);
  free(v);
  return 0;
}

int XenDom0::XsWrite(uint32_t tx, const std::string& path, const std::string& value) {
  return xs_write(XSH(xs_), tx, path.c_str(), value.data(), value.size()) ? 0 : (errno ? errno : EIO);
}

int XenDom0::XsRm(uint32_t tx, const std::string& path) {
  if (xs_rm(XSH(xs_), tx, path.c_str())) return 0;
  return errno == ENOENT ? 0 : (errno ? errno : EIO);
}

int XenDom0::XsDirectory(uint32_t tx, const std::string& path, std::vector<std::string>* out) {
  unsigned int n = 0;
  char** d = xs_directory(XSH(xs_), tx, path.c_str(), &n);
  if (!d) return errno == ENOENT ? 0 : (errno ? errno : EIO);
  for (unsigned int i = 0; i < n; i++) out->emplace_back(d[i]);
  free(d);
  return 0;
}

int XenDom0::XsTransactionStart(uint32_t* tx) {
  xs_transaction_t t = xs_transaction_start(XSH(xs_));
  if (t == XBT_NULL) return errno ? errno : EIO;
  *tx = t;
  return 0;
}

int XenDom0::XsTransactionEnd(uint32_t tx, bool abort) {
  return xs_transaction_end(XSH(xs_), tx, abort) ? 0 : (errno ? errno : EIO);
}

int XenDom0::XsSetPermissions(uint32_t tx, const std::string& path, const std::vector<std::pair<uint32_t, uint32_t>>& perms) {
  std::vector<struct xs_permissions> p(perms.size());
  for (size_t i = 0; i < perms.size(); i++) {
    p[i].id = perms[i].first;
    p[i].perms = perms[i].second & (XS_PERM_READ | XS_PERM_WRITE);
  }
  return xs_set_permissions(XSH(xs_), tx, path.c_str(), p.data(), static_cast<unsigned int>(p.size())) ? 0 : (errno ? errno : EIO);
}

int XenDom0::XsWatch(const std::string& path, const std::string& token) {
  return xs_watch(XSH(xs_), path.c_str(), token.c_str()) ? 0 : (errno ? errno : EIO);
}

int XenDom0::XsUnwatch(const std::string& path, const std::string& token) {
  return xs_unwatch(XSH(xs_), path.c_str(), token.c_str()) ? 0 : (errno ? errno : EIO);
}

int XenDom0::XsFd() const { return xs_fileno(XSH(xs_)); }

bool XenDom0::XsNextWatch(std::string* path, std::string* token) {
  char** w = xs_check_watch(XSH(xs_));
  if (!w) return false;
  path->assign(w[XS_WATCH_PATH]);
  token->assign(w[XS_WATCH_TOKEN]);
  free(w);
  return true;
}

void* XenDom0::MapGrant(uint16_t domid, uint32_t ref, bool writable, int* err) {
  void* p = xengnttab_map_grant_ref(XGT(gnt_), domid, ref, writable ? (PROT_READ | PROT_WRITE) : PROT_READ);
  *err = p ? 0 : (errno ? errno : EIO);
  return p;
}

int XenDom0::Unmap(void* addr) {
  // After Close() the gntdev handle is gone and its mappings with it.
  if (!gnt_) return EBADF;
  return xengnttab_unmap(XGT(gnt_), addr, 1) == 0 ? 0 : (errno ? errno : EIO);
}

int XenDom0::GrantCopy(std::vector<XenCopySeg>& segs) {
  std::vector<xengnttab_grant_copy_segment_t> ops(segs.size());
  for (size_t i = 0; i < segs.size(); i++) {
    const XenCopySeg& s = segs[i];
    xengnttab_grant_copy_segment_t& o = ops[i];
    std::memset(&o, 0, sizeof o);
    o.len = s.len;
    if (s.to_guest) {
      o.flags = GNTCOPY_dest_gref;
      o.source.virt = s.local;
      o.dest.foreign.ref = s.ref;
      o.dest.foreign.offset = s.offset;
      o.dest.foreign.domid = s.domid;
    } else {
      o.flags = GNTCOPY_source_gref;
      o.source.foreign.ref = s.ref;
      o.source.foreign.offset = s.offset;
      o.source.foreign.domid = s.domid;
      o.dest.virt = s.local;
    }
  }
  int rc = xengnttab_grant_copy(XGT(gnt_), static_cast<uint32_t>(ops.size()), ops.data());
  for (size_t i = 0; i < segs.size(); i++) segs[i].status = rc == 0 ? ops[i].status : GNTST_general_error;
  return rc == 0 ? 0 : (errno ? errno : EIO);
}

int XenDom0::BindInterdomain(uint16_t domid, uint32_t remote_port, uint32_t* local_port) {
  xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(XCE(evt_), domid, remote_port);
  if (p < 0) return errno ? errno : EIO;
  *local_port = static_cast<uint32_t>(p);
  return 0;
}

int XenDom0::Notify(uint32_t port) { return xenevtchn_notify(XCE(evt_), port) == 0 ? 0 : (errno ? errno : EIO); }
int XenDom0::Unmask(uint32_t port) { return xenevtchn_unmask(XCE(evt_), port) == 0 ? 0 : (errno ? errno : EIO); }
int XenDom0::Unbind(uint32_t port) { return xenevtchn_unbind(XCE(evt_), port) == 0 ? 0 : (errno ? errno : EIO); }
int XenDom0::EvtchnFd() const { return xenevtchn_fd(XCE(evt_)); }
int XenDom0::Pending() {
  xenevtchn_port_or_error_t p = xenevtchn_pending(XCE(evt_));
  return p < 0 ? -1 : static_cast<int>(p);
}
#endif

}  // namespace vtgt
