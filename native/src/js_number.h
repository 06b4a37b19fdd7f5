// JS numbers used as offsets, lengths and fds: one rule for every entry point into the addon.
#pragma once
#include <cmath>

namespace vtgt {

// 2^53: the largest integer a JS number carries exactly.
constexpr double kMaxExactJsInteger = 9007199254740992.0;

// A non-negative integer a JS number represents exactly (NaN, infinities and fractions are not).
inline bool IsJsIndex(double v) { return v >= 0 && v < kMaxExactJsInteger && std::floor(v) == v; }

}  // namespace vtgt
