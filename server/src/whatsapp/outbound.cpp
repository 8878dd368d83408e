#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <civicflow/server/whatsapp/outbound.hpp>

namespace civicflow::server::whatsapp {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::string_view kEllipsis = "\u2026";

// ---- UTF-8 ----------------------------------------------------------------------------------

struct CodePoint {
    std::uint32_t value = 0;
    std::size_t size = 1;  // bytes; an invalid byte is a one-byte "character"
};

CodePoint decode(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned char>(s[k]);
    };
    const unsigned char lead = byte(i);
    std::size_t size = 0;
    std::uint32_t value = 0;
    if (lead < 0x80U) {
        return {lead, 1};
    } else if ((lead & 0xE0U) == 0xC0U) {
        size = 2;
        value = lead & 0x1FU;
    } else if ((lead & 0xF0U) == 0xE0U) {
        size = 3;
        value = lead & 0x0FU;
    } else if ((lead & 0xF8U) == 0xF0U) {
        size = 4;
        value = lead & 0x07U;
    } else {
        return {lead, 1};
    }
    if (i + size > s.size()) {
        return {lead, 1};
    }
    for (std::size_t k = 1; k < size; ++k) {
        if ((byte(i + k) & 0xC0U) != 0x80U) {
            return {lead, 1};
        }
        value = (value << 6U) | (byte(i + k) & 0x3FU);
    }
    return {value, size};
}

std::size_t length(std::string_view s) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); i += decode(s, i).size) {
        ++n;
    }
    return n;
}

// Byte offset just after the first `n` code points (s.size() when s is shorter).
std::size_t offset_after(std::string_view s, std::size_t n) {
    std::size_t i = 0;
    for (std::size_t k = 0; k < n && i < s.size(); ++k) {
        i += decode(s, i).size;
    }
    return i;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Marks that attach to the preceding character: a split before one would orphan it.
bool is_combining(std::uint32_t cp) {
    return (cp >= 0x0300 && cp <= 0x036F) ||  // combining diacritical marks
           (cp >= 0x0900 && cp <= 0x0903) ||  // Devanagari candrabindu, anusvara, visarga
           (cp >= 0x093A && cp <= 0x094F && cp != 0x093D) ||  // vowel signs, nukta, virama
           (cp >= 0x0951 && cp <= 0x0957) || (cp >= 0x0962 && cp <= 0x0963) || cp == 0x200C ||
           cp == 0x200D ||                  // ZWNJ, ZWJ
           (cp >= 0xFE00 && cp <= 0xFE0F);  // variation selectors
}

// A virama or ZWJ joins the next character into a conjunct: no split right after one either.
bool joins_next(std::uint32_t cp) {
    return cp == 0x094D || cp == 0x200D;
}

// Hard split point for a word longer than the window: `end` moved back (at most 32 code
// points) while it would separate a mark from its base; `end` itself when no better one is near.
std::size_t hard_split(std::string_view s, std::size_t end) {
    std::vector<std::size_t> starts;  // code point starts before `end`
    for (std::size_t i = 0; i < end; i += decode(s, i).size) {
        starts.push_back(i);
    }
    // Code point k starts at starts[k]; "k == starts.size()" is `end` itself.
    for (std::size_t k = starts.size(), step = 0; k > 0 && step < 32; --k, ++step) {
        const std::size_t candidate = k == starts.size() ? end : starts[k];
        if (!is_combining(decode(s, candidate).value) &&
            !joins_next(decode(s, starts[k - 1]).value)) {
            return candidate;
        }
    }
    return end;
}

// `s` in at most `max_chars` code points: cut with an ellipsis, at the last space when that
// keeps at least half of the room ("Report a lost ration…", not "Report a lost ration c…"),
// and never between a letter and its vowel sign.
std::string cut(std::string_view s, std::size_t max_chars) {
    if (length(s) <= max_chars) {
        return std::string(s);
    }
    const std::size_t end = hard_split(s, offset_after(s, max_chars - 1));
    std::string_view head = s.substr(0, end);
    if (!is_space(s[end])) {
        const std::size_t space = head.find_last_of(" \t\n");
        if (space != std::string_view::npos && length(head.substr(0, space)) >= max_chars / 2) {
            head = head.substr(0, space);
        }
    }
    while (!head.empty() && is_space(head.back())) {
        head.remove_suffix(1);
    }
    return std::string(head) + std::string(kEllipsis);
}

// ---- JSON -------------------------------------------------------------------------------------

void put(Writer& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void put(Writer& w, const char* key, std::string_view value) {
    w.Key(key);
    put(w, value);
}

bool is_phone_number(std::string_view to) {
    if (!to.empty() && to.front() == '+') {
        to.remove_prefix(1);
    }
    return !to.empty() &&
           std::all_of(to.begin(), to.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Opens a message object up to and including "type"; the caller writes the type's object and
// closes it with w.EndObject().
void begin_message(Writer& w, std::string_view to, const char* type) {
    w.StartObject();
    put(w, "messaging_product", "whatsapp");
    put(w, "recipient_type", "individual");
    // A username-only citizen has no phone number: Meta addresses them by BSUID in "recipient".
    put(w, is_phone_number(to) ? "to" : "recipient", to);
    put(w, "type", type);
}

std::string finish(rapidjson::StringBuffer& buffer) {
    return std::string(buffer.GetString(), buffer.GetSize());
}

void add_text_messages(std::vector<std::string>& out, std::string_view to, std::string_view text) {
    for (const std::string& part : split_text(text)) {
        rapidjson::StringBuffer buffer;
        Writer w(buffer);
        begin_message(w, to, "text");
        w.Key("text");
        w.StartObject();
        put(w, "body", part);
        w.EndObject();
        w.EndObject();
        out.push_back(finish(buffer));
    }
}

// ---- menus ------------------------------------------------------------------------------------

std::string_view display_title(const engine::MenuItem& item) {
    return item.title.empty() ? std::string_view(item.id) : std::string_view(item.title);
}

bool fits_buttons(const std::vector<engine::MenuItem>& options) {
    if (options.size() > kMaxButtons) {
        return false;
    }
    std::set<std::string_view> titles;
    for (const auto& item : options) {
        const std::size_t n = length(item.title);
        if (n == 0 || n > kMaxButtonTitleChars || !titles.insert(item.title).second) {
            return false;
        }
    }
    return true;
}

// Writes the body, or sends it first as text when it is over the interactive limit.
void write_body(
    Writer& w,
    std::vector<std::string>& out,
    std::string_view to,
    const std::string& body,
    const RenderOptions& options
) {
    std::string_view shown = body;
    if (body.empty() || length(body) > kMaxBodyChars) {
        add_text_messages(out, to, body);
        shown = options.menu_prompt;
    }
    w.Key("body");
    w.StartObject();
    put(w, "text", cut(shown, kMaxBodyChars));
    w.EndObject();
}

void add_buttons(
    std::vector<std::string>& out,
    std::string_view to,
    const engine::Reply& reply,
    const RenderOptions& options
) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    begin_message(w, to, "interactive");
    w.Key("interactive");
    w.StartObject();
    put(w, "type", "button");
    write_body(w, out, to, reply.text, options);
    w.Key("action");
    w.StartObject();
    w.Key("buttons");
    w.StartArray();
    for (const auto& item : reply.options) {
        w.StartObject();
        put(w, "type", "reply");
        w.Key("reply");
        w.StartObject();
        put(w, "id", item.id);
        put(w, "title", item.title);
        w.EndObject();
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndObject();
    w.EndObject();
    out.push_back(finish(buffer));
}

void add_list(
    std::vector<std::string>& out,
    std::string_view to,
    const engine::Reply& reply,
    const RenderOptions& options
) {
    const std::size_t rows = std::min(reply.options.size(), kMaxRows);
    bool any_cut = false;
    for (const auto& item : reply.options) {
        any_cut = any_cut || length(display_title(item)) > kMaxRowTitleChars;
    }
    std::string body = reply.text;
    if (any_cut || reply.options.size() > kMaxRows) {
        if (!body.empty()) {
            body += "\n\n";
        }
        for (std::size_t i = 0; i < reply.options.size(); ++i) {
            if (i > 0) {
                body += '\n';
            }
            body += std::to_string(i + 1) + ". ";
            body += display_title(reply.options[i]);
        }
    }
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    begin_message(w, to, "interactive");
    w.Key("interactive");
    w.StartObject();
    put(w, "type", "list");
    write_body(w, out, to, body, options);
    w.Key("action");
    w.StartObject();
    put(w, "button", cut(options.list_button, kMaxButtonTitleChars));
    w.Key("sections");
    w.StartArray();
    w.StartObject();
    w.Key("rows");
    w.StartArray();
    for (std::size_t i = 0; i < rows; ++i) {
        const auto& item = reply.options[i];
        const std::string_view title = display_title(item);
        w.StartObject();
        put(w, "id", item.id);
        put(w, "title", cut(title, kMaxRowTitleChars));
        if (length(title) > kMaxRowTitleChars) {
            put(w, "description", cut(title, kMaxRowDescriptionChars));
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndArray();
    w.EndObject();
    w.EndObject();
    w.EndObject();
    out.push_back(finish(buffer));
}

// ---- media ------------------------------------------------------------------------------------

// The URL's path: without scheme and host, query and fragment.
std::string_view url_path(std::string_view url) {
    const std::size_t scheme = url.find("://");
    if (scheme != std::string_view::npos) {
        url.remove_prefix(scheme + 3);
        const std::size_t slash = url.find('/');
        url = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
    }
    const std::size_t end = url.find_first_of("?#");
    return end == std::string_view::npos ? url : url.substr(0, end);
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
    if (s.size() < suffix.size()) {
        return false;
    }
    s = s.substr(s.size() - suffix.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != suffix[i]) {
            return false;
        }
    }
    return true;
}

void add_media(std::vector<std::string>& out, std::string_view to, const engine::Reply& reply) {
    const std::string_view path = url_path(reply.url);
    const bool image =
        ends_with_ci(path, ".jpg") || ends_with_ci(path, ".jpeg") || ends_with_ci(path, ".png");
    const bool caption_fits = length(reply.caption) <= kMaxBodyChars;
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    const char* type = image ? "image" : "document";
    begin_message(w, to, type);
    w.Key(type);
    w.StartObject();
    put(w, "link", reply.url);
    if (!reply.caption.empty() && caption_fits) {
        put(w, "caption", reply.caption);
    }
    if (!image) {
        const std::size_t slash = path.rfind('/');
        const std::string_view filename =
            slash == std::string_view::npos ? path : path.substr(slash + 1);
        if (!filename.empty()) {
            put(w, "filename", filename);
        }
    }
    w.EndObject();
    w.EndObject();
    out.push_back(finish(buffer));
    if (!caption_fits) {
        add_text_messages(out, to, reply.caption);
    }
}

}  // namespace

std::vector<std::string> split_text(std::string_view text, std::size_t max_chars) {
    std::vector<std::string> parts;
    if (max_chars == 0) {
        max_chars = 1;
    }
    std::string_view rest = text;
    while (!rest.empty()) {
        const std::size_t window = offset_after(rest, max_chars);
        if (window == rest.size()) {
            parts.emplace_back(rest);
            break;
        }
        // White space right after a full window is the best split of all; otherwise the last
        // white space inside it, a line break preferred when it keeps at least half the window.
        std::size_t split = std::string_view::npos;
        if (is_space(rest[window])) {
            split = window;
        } else {
            std::size_t last_space = std::string_view::npos;
            std::size_t last_newline = std::string_view::npos;
            std::size_t chars = 0;
            for (std::size_t i = 0; i < window; i += decode(rest, i).size, ++chars) {
                if (is_space(rest[i])) {
                    last_space = i;
                    if ((rest[i] == '\n') && chars >= max_chars / 2) {
                        last_newline = i;
                    }
                }
            }
            split = last_newline != std::string_view::npos ? last_newline : last_space;
        }
        std::size_t run_start = split;
        std::size_t run_end = split;
        if (split != std::string_view::npos) {
            while (run_start > 0 && is_space(rest[run_start - 1])) {
                --run_start;
            }
            while (run_end < rest.size() && is_space(rest[run_end])) {
                ++run_end;
            }
        }
        if (split == std::string_view::npos || run_start == 0) {
            // One word fills the window (leading white space aside): cut it.
            run_start = run_end = hard_split(rest, window);
        }
        parts.emplace_back(rest.substr(0, run_start));
        rest.remove_prefix(run_end);
    }
    return parts;
}

std::vector<std::string> render_replies(
    const std::vector<engine::Reply>& replies, std::string_view to, const RenderOptions& options
) {
    std::vector<std::string> out;
    for (const engine::Reply& reply : replies) {
        switch (reply.kind) {
            case engine::Reply::Kind::kText:
                add_text_messages(out, to, reply.text);
                break;
            case engine::Reply::Kind::kMenu:
                if (reply.options.empty()) {
                    add_text_messages(out, to, reply.text);
                } else if (fits_buttons(reply.options)) {
                    add_buttons(out, to, reply, options);
                } else {
                    add_list(out, to, reply, options);
                }
                break;
            case engine::Reply::Kind::kMedia:
                add_media(out, to, reply);
                break;
        }
    }
    return out;
}

std::string render_template(
    std::string_view to,
    std::string_view name,
    std::string_view lang,
    const std::vector<std::string>& params
) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    begin_message(w, to, "template");
    w.Key("template");
    w.StartObject();
    put(w, "name", name);
    w.Key("language");
    w.StartObject();
    put(w, "code", lang);
    w.EndObject();
    if (!params.empty()) {
        w.Key("components");
        w.StartArray();
        w.StartObject();
        put(w, "type", "body");
        w.Key("parameters");
        w.StartArray();
        for (const std::string& param : params) {
            w.StartObject();
            put(w, "type", "text");
            put(w, "text", param);
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
        w.EndArray();
    }
    w.EndObject();
    w.EndObject();
    return finish(buffer);
}

std::optional<std::string> normalize_citizen(std::string_view id) {
    if (is_phone_number(id)) {
        if (id.front() == '+')
            id.remove_prefix(1);
        return std::string(id);
    }
    const auto letter = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    };
    const auto id_char = [&](char c) {
        return letter(c) || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    };
    if (!std::all_of(id.begin(), id.end(), id_char) || !std::any_of(id.begin(), id.end(), letter))
        return std::nullopt;
    return std::string(id);
}

std::string render_mark_read(std::string_view message_id) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    put(w, "messaging_product", "whatsapp");
    put(w, "status", "read");
    put(w, "message_id", message_id);
    w.Key("typing_indicator");
    w.StartObject();
    put(w, "type", "text");
    w.EndObject();
    w.EndObject();
    return finish(buffer);
}

}  // namespace civicflow::server::whatsapp
