// CRC32C (Castagnoli), as iSCSI header and data digests use it (RFC 7143 §13.1).
#pragma once
#include <cstddef>
#include <cstdint>

namespace vtgt {
// Continues a CRC32C over data; start with crc = 0 for a fresh digest.
uint32_t crc32c(uint32_t crc, const uint8_t* data, size_t len);
bool crc32c_hardware();
}  // namespace vtgt
