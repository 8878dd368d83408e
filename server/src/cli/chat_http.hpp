// A blocking HTTP client for `civicflow chat --backend-url` (a terminal tool, not the server:
// blocking is fine here; the server's own client is asynchronous).
#pragma once

#include <string>

#include <civicflow/engine/turn.hpp>

namespace civicflow::cli {

/// Performs `call` against `base_url` (http://host[:port][/prefix]) with a 5 s timeout.
/// Network failures become Outcome::kError, timeouts Outcome::kTimeout.
engine::CallResult http_call(const std::string& base_url, const engine::BackendCall& call);

}  // namespace civicflow::cli
