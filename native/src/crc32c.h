// CRC32C (Castagnoli), as iSCSI header and data digests use it (RFC 7143 §13.1).
#pragma once
#include <cstddef>
#include <cstdint>

namespace vtgt {
// Continues a CRC32C over data; start with crc = 0 for a fresh digest. Uses the SSE4.2 CRC32
// instruction when the CPU has it, the table code otherwise.
uint32_t crc32c(uint32_t crc, const uint8_t* data, size_t len);
// The portable slicing-by-8 table implementation, same contract as crc32c(). Exposed so tests can
// check it on machines where crc32c() would always take the hardware path.
uint32_t crc32c_software(uint32_t crc, const uint8_t* data, size_t len);
bool crc32c_hardware();
}  // namespace vtgt
