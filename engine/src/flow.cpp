// Look-ups on the loaded flow model.
#include <civicflow/engine/flow.hpp>

namespace civicflow::engine {

const State* Flow::find_state(const std::string& id) const {
    const auto it = state_index.find(id);
    if (it == state_index.end() || it->second < 0 ||
        static_cast<std::size_t>(it->second) >= states.size()) {
        return nullptr;
    }
    return &states[static_cast<std::size_t>(it->second)];
}

const LocalizedText* Helpline::message(std::string_view key) const {
    for (const auto& [message_key, text] : messages) {
        if (message_key == key) {
            return &text;
        }
    }
    return nullptr;
}

std::size_t FlowSet::state_count() const {
    std::size_t count = 0;
    for (const Flow& flow : flows) {
        count += flow.states.size();
    }
    return count;
}

const Flow* FlowSet::find_flow(const std::string& name) const {
    const auto it = flow_index.find(name);
    if (it == flow_index.end() || it->second < 0 ||
        static_cast<std::size_t>(it->second) >= flows.size()) {
        return nullptr;
    }
    return &flows[static_cast<std::size_t>(it->second)];
}

}  // namespace civicflow::engine
