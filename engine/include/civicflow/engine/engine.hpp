/// The turn function: (flows, session, input, now) -> replies, new session, effects. Pure.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/flow.hpp>
#include <civicflow/engine/turn.hpp>

namespace civicflow::engine {

/// At most this many states are entered in one turn; past it the turn stops with event R501,
/// the citizen gets the helpline's error message and the session returns to the entry flow.
inline constexpr int kMaxStepsPerTurn = 64;

/// The helpline language a client's hint names (Input::lang): the same code in any case, else
/// the same primary subtag ("hi-IN", "hi_in" and "HI" are "hi", as browsers and phones send
/// them); empty when none.
std::string helpline_language(const std::vector<std::string>& languages, std::string_view hint);

/// Runs one turn. Deterministic: same arguments, same Turn. Never does I/O, never throws for
/// content problems (they become events). `now` is milliseconds since the epoch.
/// Thread-safe: `flows` is only read.
Turn turn(const FlowSet& flows, const Session& session, const Input& input, Timestamp now);

/// The (flow, state) pairs entered during a turn, in order: for test coverage and debugging.
struct TurnTrace {
    std::vector<std::pair<std::string, std::string>> entered;
};

/// As turn(), also recording the states entered into `trace` (may be null).
Turn turn(
    const FlowSet& flows,
    const Session& session,
    const Input& input,
    Timestamp now,
    TurnTrace* trace
);

}  // namespace civicflow::engine
