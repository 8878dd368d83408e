/// Rendering of engine replies as WhatsApp Cloud API message bodies (JSON for
/// POST /{version}/{phone_number_id}/messages): text, reply buttons, lists, media by link,
/// templates and mark-as-read.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <civicflow/engine/turn.hpp>

namespace civicflow::server::whatsapp {

/// Cloud API limits, in characters (Unicode code points).
inline constexpr std::size_t kMaxTextChars = 4096;       // text.body
inline constexpr std::size_t kMaxBodyChars = 1024;       // interactive body, media caption
inline constexpr std::size_t kMaxButtons = 3;            // reply buttons per message
inline constexpr std::size_t kMaxButtonTitleChars = 20;  // reply button title, list button
inline constexpr std::size_t kMaxRows = 10;              // list rows per message
inline constexpr std::size_t kMaxRowTitleChars = 24;
inline constexpr std::size_t kMaxRowDescriptionChars = 72;

/// Words the channel adds to menus; the caller passes the helpline language's wording.
struct RenderOptions {
    /// The label of the button that opens a list. Cut to 20 characters with an ellipsis.
    std::string list_button = "Choose";
    /// The body of an interactive message whose menu text went out as a text message before it
    /// (over 1,024 characters) or was empty.
    std::string menu_prompt = "Please choose an option.";
};

/// Renders the replies of one turn for recipient `to`, in order; one reply may become several
/// messages. `to` is a phone number (digits, optionally with a leading '+') and goes into "to";
/// anything else is a business-scoped user id and goes into "recipient".
///
/// - kText: split_text(text); an empty text sends nothing.
/// - kMenu (the rule; option ids are never changed, whatever their titles):
///   1. no options: the text, as kText;
///   2. at most 3 options, every title 1 to 20 characters, no two titles alike: reply buttons,
///      body = the menu text;
///   3. otherwise a list of the first 10 options. A row title over 24 characters is cut to 23
///      plus "…" and the row description holds the full title (cut to 71 plus "…" past 72).
///      When a title was cut, or there are more than 10 options, the body is the menu text, a
///      blank line, and every option on its own line as "N. full title": the full wording stays
///      visible, and options past the tenth are chosen by typing their number (the engine
///      matches option numbers);
///   4. a body over 1,024 characters goes first as text messages, and the interactive message
///      then has options.menu_prompt as its body. An empty title shows the option id.
/// - kMedia: by link; "image" when the URL path ends in .jpg, .jpeg or .png (any case; the only
///   image types WhatsApp takes), else "document" with the path's last segment as file name.
///   A caption over 1,024 characters is sent after the media as text messages instead.
std::vector<std::string> render_replies(
    const std::vector<engine::Reply>& replies,
    std::string_view to,
    const RenderOptions& options = {}
);

/// Splits text into parts of at most `max_chars` code points at word boundaries: each part
/// ends before the last white space inside the limit (a line break in the second half of the
/// window is preferred to a space), and the white space run at a split is dropped. A word
/// longer than the limit is cut hard, at a code point boundary and not before a combining mark
/// (Devanagari vowel signs, virama, ZWJ). Joining the parts with the dropped white space gives
/// back the text. Empty text gives no part. Invalid UTF-8 bytes count as one character each.
std::vector<std::string> split_text(std::string_view text, std::size_t max_chars = kMaxTextChars);

/// An approved template message: body parameters in order (none: no components).
/// `lang` is the template language code ("en", "hi", "en_US").
std::string render_template(
    std::string_view to,
    std::string_view name,
    std::string_view lang,
    const std::vector<std::string>& params
);

/// The form a citizen's id takes in webhooks and session keys, from what an integrator wrote: a
/// phone number in international format with or without its "+" gives its digits (as in
/// `wa_id`); a business-scoped user id (letters, digits, ".", "-", "_", at least one letter,
/// as in `user_id`: "US.13491208655302741918") is kept as it is. Anything else (spaces, other
/// separators, empty) is nullopt, so that no citizen is reached, or checked for consent, under a
/// second spelling.
std::optional<std::string> normalize_citizen(std::string_view id);

/// Marks an inbound message as read and shows the typing indicator until our reply (or 25 s).
std::string render_mark_read(std::string_view message_id);

}  // namespace civicflow::server::whatsapp
