/// X-Hub-Signature-256 for WhatsApp webhooks: HMAC-SHA256 of the raw body bytes, keyed with the
/// app secret, written "sha256=" + 64 hex digits.
#pragma once

#include <string>
#include <string_view>

namespace civicflow::server::whatsapp {

/// True when `header_value` is "sha256=" followed by exactly 64 hex digits (either case) that
/// equal HMAC-SHA256(app_secret, raw_body). Surrounding spaces and tabs are ignored (HTTP
/// optional whitespace). The MAC is compared with CRYPTO_memcmp, in constant time.
///
/// `raw_body` must be the bytes exactly as received: Meta escapes '/' and non-ASCII characters
/// in its JSON, so a parsed and re-serialized body never matches.
///
/// Every malformed header (missing, empty, another algorithm, wrong length, a non-hex digit) is
/// false, and so is an empty `app_secret`: anyone can compute a MAC with an empty key. Never
/// throws; thread-safe; neither the body nor the expected value is logged.
bool signature_matches(
    std::string_view header_value, std::string_view raw_body, std::string_view app_secret
);

/// The header value Meta would send for `raw_body`: "sha256=" + lower-case hex HMAC-SHA256.
/// For tests, the benchmark and the SDK cross-check. Thread-safe.
std::string sign_body(std::string_view raw_body, std::string_view app_secret);

}  // namespace civicflow::server::whatsapp
