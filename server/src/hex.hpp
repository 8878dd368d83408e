/// Lowercase hex digits of bytes, for digests and ids (private to the server).
#pragma once

#include <span>
#include <string>

namespace civicflow::server {

/// Appends two lowercase hex digits per byte of `bytes` to `out`.
inline void append_hex(std::string& out, std::span<const unsigned char> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (const unsigned char b : bytes) {
        out.push_back(kDigits[b >> 4U]);
        out.push_back(kDigits[b & 0x0FU]);
    }
}

}  // namespace civicflow::server
