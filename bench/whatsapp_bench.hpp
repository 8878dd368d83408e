/// Shared by the WhatsApp benchmark tools (bench/wa_bodies.cpp writes the expectation file,
/// bench/fake_graph_server.cpp reads it): the body hash and the expectation file format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace civicflow::bench {

/// First line of an expectation file. The lines after it:
///   template <t> <k> <n> <hash_1> ... <hash_n>
///       the k-th message (0-based) of a conversation of template t is answered by n messages
///       with these body hashes (hex, see body_hash), in this order; n may be 0;
///   citizen <recipient> <t> <wamid_0> <wamid_1> ...
///       the citizen's messages, in the order they are sent, follow template t.
inline constexpr std::string_view kExpectMagic = "civicflow-whatsapp-expect 1";

/// Where a string member's value lies in a body.
struct Span {
    std::size_t pos = std::string_view::npos;
    std::size_t len = 0;

    bool found() const { return pos != std::string_view::npos; }

    std::string_view in(std::string_view body) const {
        return found() ? body.substr(pos, len) : std::string_view{};
    }
};

/// The value of the first `"key":"value"` in `body`, as civicflow writes its Graph API bodies
/// (RapidJSON's compact writer: no white space). Only for values without escapes (phone
/// numbers, user ids, wamids, "read"): a value holding a backslash is not found. A fake's
/// shortcut: a general Cloud API client would parse the JSON.
inline Span string_member(std::string_view body, std::string_view key) {
    std::size_t from = 0;
    for (;;) {
        const std::size_t at = body.find(key, from);
        if (at == std::string_view::npos)
            return {};
        from = at + 1;
        // A key: quoted, followed by ":" and the opening quote of a string value.
        if (at == 0 || body[at - 1] != '"')
            continue;
        const std::size_t colon = at + key.size();
        if (body.substr(colon, 3) != "\":\"")
            continue;
        const std::size_t start = colon + 3;
        const std::size_t end = body.find('"', start);
        if (end == std::string_view::npos)
            return {};
        const std::string_view value = body.substr(start, end - start);
        if (value.find('\\') != std::string_view::npos)
            return {};
        return Span{start, end - start};
    }
}

/// The recipient of a message body: "to" (a phone number) or "recipient" (a user id).
inline Span recipient_of(std::string_view body) {
    const Span to = string_member(body, "to");
    return to.found() ? to : string_member(body, "recipient");
}

/// 64-bit FNV-1a, continued from `h`.
inline std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 14695981039346656037ULL) {
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ULL;
    }
    return h;
}

/// The hash of a message body with its recipient's value left out, so that one expected reply
/// covers every citizen of a template (the Graph API body differs between citizens only there).
inline std::uint64_t body_hash(std::string_view body, Span recipient) {
    if (!recipient.found())
        return fnv1a(body);
    const std::uint64_t head = fnv1a(body.substr(0, recipient.pos));
    return fnv1a(body.substr(recipient.pos + recipient.len), head);
}

}  // namespace civicflow::bench
