#include <civicflow/server/channel_store.hpp>

namespace civicflow::server {

using State = OutboxItem::State;

std::string_view to_string(State state) {
    switch (state) {
        case State::kQueued:
            return "queued";
        case State::kSent:
            return "sent";
        case State::kDelivered:
            return "delivered";
        case State::kRead:
            return "read";
        case State::kFailed:
            return "failed";
    }
    return "unknown";
}

bool can_advance(State from, State to) {
    if (from == State::kRead || from == State::kFailed || to == State::kQueued)
        return false;
    if (to == State::kFailed)
        return from == State::kQueued || from == State::kSent;
    // kQueued < kSent < kDelivered < kRead in declaration order.
    return static_cast<int>(to) > static_cast<int>(from);
}

bool apply_delivery_status(OutboundRecord& record, const DeliveryStatus& status) {
    State& state = record.item.state;
    if (status.state == State::kFailed) {
        if (!can_advance(state, State::kFailed))
            return false;
        state = State::kFailed;
        record.failed_at = status.at;
        record.error_code = status.error_code;
        record.error_title = status.error_title;
        return true;
    }
    // A failed message stays failed, whatever its other statuses say.
    if (state == State::kFailed)
        return false;
    std::int64_t* seen_at = nullptr;
    switch (status.state) {
        case State::kSent:
            seen_at = &record.sent_at;
            break;
        case State::kDelivered:
            seen_at = &record.delivered_at;
            break;
        case State::kRead:
            seen_at = &record.read_at;
            break;
        case State::kQueued:
        case State::kFailed:
            return false;
    }
    bool changed = false;
    // Times are facts even when they arrive out of order (a "delivered" after "read" still
    // says when the message reached the phone); the state itself only moves forward.
    if (*seen_at == 0) {
        *seen_at = status.at;
        changed = true;
    }
    if (can_advance(state, status.state)) {
        state = status.state;
        changed = true;
    }
    return changed;
}

}  // namespace civicflow::server
