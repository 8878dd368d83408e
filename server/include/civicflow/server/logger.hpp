/// Operator logs: one line per event, key=value fields, never message text or ids in clear.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace civicflow::server {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

/// Process-wide line logger writing to stderr. Thread-safe: each line is written with one call,
/// so lines of different threads never interleave. Callers pass only non-personal fields (codes,
/// backend names, durations, hashed citizens); nothing here inspects or redacts them.
class Logger {
public:
    static void set_level(LogLevel level);
    static bool enabled(LogLevel level);

    /// Writes "2024-05-01T10:00:00.123Z level=warn rid=REQUEST_ID event=EVENT FIELDS".
    /// `request_id` may be empty (startup and shutdown lines); `fields` is "k=v k=v" or empty.
    static void log(
        LogLevel level,
        std::string_view request_id,
        std::string_view event,
        std::string_view fields = {}
    );
};

/// A pseudonym for a citizen id, for logs: the first 12 hex digits of HMAC-SHA256 under a key
/// drawn at process start (or from CIVICFLOW_LOG_KEY, so several instances agree). A plain hash
/// of a phone number could be reversed by trying all 10^10 numbers; a keyed one cannot.
std::string citizen_tag(std::string_view user);

/// A fresh request id: 16 hex digits, unique within the process and unlikely to repeat across
/// restarts (random prefix + counter). Cheap: no locks, no system calls after the first.
std::string new_request_id();

/// True when `id` is acceptable as a caller-supplied X-Request-Id: 1..64 characters of
/// [A-Za-z0-9._-]. Anything else is replaced by a generated id (it would be logged verbatim).
bool is_valid_request_id(std::string_view id);

}  // namespace civicflow::server
