/// Classification of Graph API answers to a send (POST .../messages): sent, retry later,
/// throttled, or failed for good.
#pragma once

#include <string>
#include <string_view>

namespace civicflow::server::whatsapp {

struct SendOutcome {
    enum class Kind {
        kSent,       // 2xx: accepted by Meta
        kRetry,      // a transient failure: retry with backoff
        kThrottled,  // a rate limit: retry later, slower (131056: this recipient only)
        kPermanent,  // never retry: the same request fails again
    };

    Kind kind = Kind::kRetry;
    /// kSent: messages[0].id of the answer; "" for answers without one (mark-as-read answers
    /// {"success": true}).
    std::string wamid;
    int error_code = 0;       // error.code of a Graph error body, 0 if none
    std::string error_title;  // error.message (or error.error_user_title); "" if none
};

/// Classifies the answer to one send. A known Graph error code decides:
/// - kThrottled: 4 (app call limit), 80007 (WABA rate limit), 130429 (throughput limit),
///   131048 (spam rate limit), 131056 (too many messages to this recipient);
/// - kRetry: 1 (unknown), 2 (service unavailable), 131000 (something went wrong), 131016
///   (service unavailable), 131057 (maintenance mode), 133004 (server unavailable);
/// - kPermanent: 3, 10, 100 (invalid parameter), 190 (token), 200-299 (permissions), 368,
///   131008, 131009, 131021, 131026 (undeliverable), 131030, 131031, 131042, 131045, 131047
///   (outside the 24-hour window), 131049, 131050, 131051 (unsupported type), 131052, 131053,
///   132000-132999 (template errors), 133010 (number not registered).
/// Otherwise (no error body, or a code not listed) the HTTP status decides: 2xx kSent, 429
/// kThrottled, other 4xx kPermanent, 5xx kRetry, and 0 (no answer: connection failure or
/// timeout) or anything else kRetry. Never throws; the body may be empty or not JSON.
SendOutcome classify_send(unsigned http_status, std::string_view response_body);

/// "sent", "retry", "throttled" or "permanent" (logs and metrics).
std::string_view kind_name(SendOutcome::Kind kind);

}  // namespace civicflow::server::whatsapp
