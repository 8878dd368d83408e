/// Normalization of citizen input for matching: Unicode case folding, punctuation and extra
/// spaces dropped, digits of Indian scripts read as ASCII digits.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace civicflow::engine {

/// Replaces the digits of Devanagari, Bengali, Gurmukhi, Gujarati, Odia, Tamil, Telugu, Kannada
/// and Malayalam (and full-width digits) with ASCII digits; everything else is kept as is.
std::string ascii_digits(std::string_view text);

/// Folds case (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic), reads Indian digits as ASCII,
/// turns punctuation (ASCII, General Punctuation, the Devanagari danda) and white space into single
/// spaces, drops zero-width characters, and trims. Invalid UTF-8 bytes are dropped.
/// "  What's the FEE?? " -> "what s the fee"; "१२" -> "12".
std::string normalize(std::string_view text);

/// Splits normalized text into words at spaces.
std::vector<std::string_view> split_words(std::string_view normalized);

/// Number of Unicode code points in valid UTF-8 text (invalid bytes count as one each).
std::size_t utf8_length(std::string_view text);

/// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);

/// A control character YAML does not allow in a file, and no phone shows in a text: C0 but
/// tab, line feed and carriage return, and DEL.
bool is_control_character(unsigned char c);

/// How many bytes from the start of `text` are well-formed UTF-8 (text.size() when all are):
/// the offset of the first byte that cannot start or continue a character there.
std::size_t utf8_valid_prefix(std::string_view text);

/// Simple lower-casing of ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters; every
/// other character (and invalid bytes) is kept as is. Used by the template filter `lower`.
std::string to_lower(std::string_view text);

/// The inverse of to_lower for the same scripts (no length-changing mappings: "ß" stays).
/// Used by the template filter `upper`.
std::string to_upper(std::string_view text);

/// Damerau-Levenshtein distance over code points, but stops early: returns limit + 1 as soon as
/// the distance is known to exceed `limit`.
int edit_distance(std::string_view a, std::string_view b, int limit);

}  // namespace civicflow::engine
