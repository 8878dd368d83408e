/// Operator logs: one line per event, key=value fields, never message text or ids in clear.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace civicflow::server {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

/// Process-wide line logger writing to stderr. Thread-safe: each line is written with one call,
/// so lines of different threads never interleave. Callers pass only non-personal fields (codes,
/// backend names, durations, hashed citizens); nothing here inspects or redacts them.
///
/// By default a line is written by the thread that logs it. The server switches to a writer
/// thread (Async below) so that an I/O thread never waits on stderr: a slow or stuck reader of
/// the log (a full pipe, a paused terminal) then costs lines, never requests. Lines are queued up
/// to a byte limit; past it they are dropped and counted, and the writer reports the count
/// (`event=log_lines_dropped count=N`) once it can write again.
class Logger {
public:
    static void set_level(LogLevel level);
    static bool enabled(LogLevel level);

    /// While alive, lines go through the writer thread; its destructor writes what is queued
    /// and stops the thread. One at a time.
    class Async {
    public:
        explicit Async(std::size_t max_queued_bytes = 1 << 20);
        ~Async();
        Async(const Async&) = delete;
        Async& operator=(const Async&) = delete;

    private:
        bool owner_ = false;  // false when another Async was already running
    };

    /// Lines dropped because the queue was full, since the process started.
    static std::uint64_t dropped();

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
