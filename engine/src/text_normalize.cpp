#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <utility>

#include <civicflow/engine/text_normalize.hpp>

namespace civicflow::engine {

namespace {

/// Decodes one strict UTF-8 sequence at `p` (n > 0 bytes available). Returns its length and
/// stores the code point, or returns 0 for an invalid byte (overlong, surrogate, > U+10FFFF,
/// truncated, stray continuation); callers then skip exactly one byte.
inline std::size_t decode(const unsigned char* p, std::size_t n, char32_t& cp) {
    const unsigned char b0 = p[0];
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    }
    if (b0 < 0xC2) {
        return 0;  // continuation byte or overlong 2-byte lead
    }
    if (b0 < 0xE0) {
        if (n < 2 || (p[1] & 0xC0) != 0x80) {
            return 0;
        }
        cp = static_cast<char32_t>(((b0 & 0x1Fu) << 6) | (p[1] & 0x3Fu));
        return 2;
    }
    if (b0 < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) {
            return 0;
        }
        // E0 needs A0..BF (no overlongs); ED needs 80..9F (no surrogates).
        if ((b0 == 0xE0 && p[1] < 0xA0) || (b0 == 0xED && p[1] > 0x9F)) {
            return 0;
        }
        cp = static_cast<char32_t>(((b0 & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu));
        return 3;
    }
    if (b0 < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
            return 0;
        }
        // F0 needs 90..BF (no overlongs); F4 needs 80..8F (<= U+10FFFF).
        if ((b0 == 0xF0 && p[1] < 0x90) || (b0 == 0xF4 && p[1] > 0x8F)) {
            return 0;
        }
        cp = static_cast<char32_t>(
            ((b0 & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu)
        );
        return 4;
    }
    return 0;
}

inline void encode(char32_t cp, std::string& out) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// The ASCII digit for a digit of an Indian script or a full-width digit, else 0.
/// Devanagari through Malayalam are consecutive 128-code-point blocks (U+0900..U+0D7F) that all
/// put their digits at offset 0x66, so one range test covers the nine scripts.
inline char indian_digit(char32_t cp) {
    if (cp >= 0x0966 && cp <= 0x0D6F) {
        const char32_t offset = cp & 0x7F;
        if (offset >= 0x66 && offset <= 0x6F) {
            return static_cast<char>('0' + (offset - 0x66));
        }
        return 0;
    }
    if (cp >= 0xFF10 && cp <= 0xFF19) {
        return static_cast<char>('0' + (cp - 0xFF10));
    }
    return 0;
}

inline bool even(char32_t cp) {
    return (cp & 1u) == 0;
}

/// Lower case of `cp` for the scripts we support. With `fold` set, also applies the case-folding
/// only mappings (final sigma, long s, Greek symbol variants, micro sign) so that matching treats
/// them as their ordinary letters.
char32_t lower_cp(char32_t cp, bool fold) {
    if (cp < 0x80) {
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    }
    if (cp < 0x100) {
        if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) {
            return cp + 32;
        }
        if (fold && cp == 0xB5) {
            return 0x3BC;  // micro sign -> Greek mu
        }
        return cp;
    }
    if (cp < 0x180) {  // Latin Extended-A
        if (cp == 0x130) {
            return 'i';  // dotted capital I: simple lower case
        }
        if (cp == 0x178) {
            return 0xFF;
        }
        if (cp == 0x17F) {
            return fold ? 's' : cp;
        }
        if ((cp <= 0x12F || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) &&
            even(cp)) {
            return cp + 1;
        }
        if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) && !even(cp)) {
            return cp + 1;
        }
        return cp;
    }
    if (cp >= 0x370 && cp < 0x400) {  // Greek and Coptic
        if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) {
            return cp + 32;
        }
        switch (cp) {
            case 0x370:
            case 0x372:
            case 0x376:
            case 0x3F7:
            case 0x3FA:
                return cp + 1;
            case 0x37F:
                return 0x3F3;
            case 0x386:
                return 0x3AC;
            case 0x388:
            case 0x389:
            case 0x38A:
                return cp + 37;
            case 0x38C:
                return 0x3CC;
            case 0x38E:
            case 0x38F:
                return cp + 63;
            case 0x3CF:
                return 0x3D7;
            case 0x3F4:
                return 0x3B8;
            case 0x3F9:
                return 0x3F2;
            case 0x3FD:
            case 0x3FE:
            case 0x3FF:
                return cp - 0x82;
            default:
                break;
        }
        if (cp >= 0x3D8 && cp <= 0x3EF && even(cp)) {
            return cp + 1;
        }
        if (fold) {
            switch (cp) {
                case 0x3C2:
                    return 0x3C3;  // final sigma
                case 0x3D0:
                    return 0x3B2;
                case 0x3D1:
                    return 0x3B8;
                case 0x3D5:
                    return 0x3C6;
                case 0x3D6:
                    return 0x3C0;
                case 0x3F0:
                    return 0x3BA;
                case 0x3F1:
                    return 0x3C1;
                case 0x3F5:
                    return 0x3B5;
                default:
                    break;
            }
        }
        return cp;
    }
    if (cp >= 0x400 && cp < 0x530) {  // Cyrillic and Cyrillic Supplement
        if (cp <= 0x40F) {
            return cp + 80;
        }
        if (cp <= 0x42F) {
            return cp + 32;
        }
        if (cp == 0x4C0) {
            return 0x4CF;
        }
        if (((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF) || cp >= 0x4D0) &&
            even(cp)) {
            return cp + 1;
        }
        if (cp >= 0x4C1 && cp <= 0x4CE && !even(cp)) {
            return cp + 1;
        }
        return cp;
    }
    return cp;
}

/// Upper case of `cp`: the inverse of lower_cp(cp, false), plus final sigma and long s.
char32_t upper_cp(char32_t cp) {
    if (cp < 0x80) {
        return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    }
    if (cp < 0x100) {
        if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) {
            return cp - 32;
        }
        if (cp == 0xFF) {
            return 0x178;
        }
        return cp;
    }
    if (cp < 0x180) {
        if (cp == 0x131) {
            return 'I';
        }
        if (cp == 0x17F) {
            return 'S';
        }
        if ((cp <= 0x12F || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) &&
            !even(cp)) {
            return cp - 1;
        }
        if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) && even(cp)) {
            return cp - 1;
        }
        return cp;
    }
    if (cp >= 0x370 && cp < 0x400) {
        if (cp >= 0x3B1 && cp <= 0x3CB && cp != 0x3C2) {
            return cp - 32;
        }
        switch (cp) {
            case 0x371:
            case 0x373:
            case 0x377:
            case 0x3F8:
            case 0x3FB:
                return cp - 1;
            case 0x3F3:
                return 0x37F;
            case 0x3AC:
                return 0x386;
            case 0x3AD:
            case 0x3AE:
            case 0x3AF:
                return cp - 37;
            case 0x3CC:
                return 0x38C;
            case 0x3CD:
            case 0x3CE:
                return cp - 63;
            case 0x3C2:
                return 0x3A3;
            case 0x3D7:
                return 0x3CF;
            case 0x3F2:
                return 0x3F9;
            case 0x37B:
            case 0x37C:
            case 0x37D:
                return cp + 0x82;
            default:
                break;
        }
        if (cp >= 0x3D9 && cp <= 0x3EF && !even(cp)) {
            return cp - 1;
        }
        return cp;
    }
    if (cp >= 0x400 && cp < 0x530) {
        if (cp >= 0x450 && cp <= 0x45F) {
            return cp - 80;
        }
        if (cp >= 0x430 && cp <= 0x44F) {
            return cp - 32;
        }
        if (cp == 0x4CF) {
            return 0x4C0;
        }
        if (((cp >= 0x461 && cp <= 0x481) || (cp >= 0x48B && cp <= 0x4BF) || cp >= 0x4D1) &&
            !even(cp)) {
            return cp - 1;
        }
        if (cp >= 0x4C2 && cp <= 0x4CE && even(cp)) {
            return cp - 1;
        }
        return cp;
    }
    return cp;
}

enum class CharClass : std::uint8_t { kKeep, kSpace, kDrop };

/// What normalize() does with a non-ASCII code point.
inline CharClass classify(char32_t cp) {
    if (cp < 0xA0) {
        return CharClass::kSpace;  // C1 controls
    }
    if (cp < 0xC0) {
        switch (cp) {
            case 0xA0:  // no-break space
            case 0xA1:  // inverted exclamation mark
            case 0xA6:  // broken bar
            case 0xA7:  // section sign
            case 0xAB:  // left guillemet
            case 0xB6:  // pilcrow
            case 0xB7:  // middle dot
            case 0xBB:  // right guillemet
            case 0xBF:  // inverted question mark
                return CharClass::kSpace;
            case 0xAD:  // soft hyphen: invisible, so it must not split a word
                return CharClass::kDrop;
            default:
                return CharClass::kKeep;
        }
    }
    if (cp == 0x37E || cp == 0x387) {
        return CharClass::kSpace;  // Greek question mark, ano teleia
    }
    if (cp == 0x964 || cp == 0x965) {
        return CharClass::kSpace;  // Devanagari danda, double danda
    }
    if (cp >= 0x2000 && cp <= 0x206F) {  // General Punctuation
        // Zero-width and directional format characters are invisible: phones insert them
        // (ZWJ/ZWNJ in Indic scripts, marks in pasted text) and they must not split words.
        if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) || cp >= 0x2060) {
            return CharClass::kDrop;
        }
        return CharClass::kSpace;  // spaces, dashes, quotes, bullets, ellipsis, separators
    }
    if (cp == 0xFEFF) {
        return CharClass::kDrop;  // byte-order mark / zero-width no-break space
    }
    if ((cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0x20E3) {
        // Variation selectors and the enclosing keycap: "3️⃣" is the digit 3 as an emoji, and
        // phones offer it for menu numbers.
        return CharClass::kDrop;
    }
    if (cp == 0x1680 || cp == 0x3000 || cp == 0x3001 || cp == 0x3002) {
        return CharClass::kSpace;
    }
    return CharClass::kKeep;
}

/// Applies `map` to every valid code point; invalid bytes are copied unchanged.
template <typename Map>
std::string map_code_points(std::string_view text, Map map) {
    std::string out;
    out.reserve(text.size());
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        char32_t cp = 0;
        const std::size_t len = decode(p + i, n - i, cp);
        if (len == 0) {
            out.push_back(static_cast<char>(p[i]));
            ++i;
            continue;
        }
        encode(map(cp), out);
        i += len;
    }
    return out;
}

/// Decodes `text` into code points, into `small` when it fits and `big` otherwise, so that the
/// common short word needs no allocation. Invalid bytes become one code point each (U+FFFD).
template <std::size_t N>
std::size_t to_code_points(
    std::string_view text,
    std::array<char32_t, N>& small,
    std::vector<char32_t>& big,
    const char32_t*& data
) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    char32_t* dst = small.data();
    if (n > N) {
        big.resize(n);
        dst = big.data();
    }
    std::size_t count = 0;
    std::size_t i = 0;
    while (i < n) {
        char32_t cp = 0;
        const std::size_t len = decode(p + i, n - i, cp);
        if (len == 0) {
            cp = 0xFFFD;
            ++i;
        } else {
            i += len;
        }
        dst[count++] = cp;
    }
    data = dst;
    return count;
}

inline bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x80;
    });
}

/// The exact edit distance when it is 0 or 1, else 2: one linear scan from the first mismatch
/// instead of a table. This is the typo check of every message word, so it must be cheap.
template <typename Char>
int distance_up_to_one(const Char* s, std::size_t m, const Char* t, std::size_t n) {
    if (m < n) {
        std::swap(s, t);
        std::swap(m, n);
    }
    if (m - n > 1) {
        return 2;
    }
    std::size_t i = 0;
    while (i < n && s[i] == t[i]) {
        ++i;
    }
    if (i == n) {
        return m == n ? 0 : 1;  // equal, or one extra code point at the end
    }
    if (m == n) {
        // The one edit must be at the first mismatch: a substitution or a transposition.
        if (std::equal(s + i + 1, s + m, t + i + 1)) {
            return 1;
        }
        if (i + 1 < n && s[i] == t[i + 1] && s[i + 1] == t[i] &&
            std::equal(s + i + 2, s + m, t + i + 2)) {
            return 1;
        }
        return 2;
    }
    // One code point more in s: deleting it at the first mismatch is as good as anywhere.
    return std::equal(s + i + 1, s + m, t + i) ? 1 : 2;
}

}  // namespace

std::string ascii_digits(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        // Every digit we convert is a 3-byte sequence (E0 or EF lead); copy the rest untouched.
        if ((p[i] == 0xE0 || p[i] == 0xEF) && i + 2 < n) {
            char32_t cp = 0;
            const std::size_t len = decode(p + i, n - i, cp);
            if (len == 3) {
                if (const char digit = indian_digit(cp); digit != 0) {
                    out.push_back(digit);
                    i += 3;
                    continue;
                }
            }
        }
        out.push_back(static_cast<char>(p[i]));
        ++i;
    }
    return out;
}

// Letters with a nukta that also exist as one code point (Devanagari ड़ U+095C and its kin,
// Bengali, Gurmukhi, Oriya): the base letter, whose nukta follows. Keyboards produce either
// form, and Unicode normalization itself decomposes most of them (composition exclusions), so
// both spellings of "छोड़ें" must normalize alike. 0 when `cp` has no such decomposition.
inline char32_t nukta_base(char32_t cp, char32_t& nukta) {
    struct Pair {
        char32_t composed;
        char32_t base;
    };

    static constexpr Pair kDevanagari[] = {
        {0x0929, 0x0928},
        {0x0931, 0x0930},
        {0x0934, 0x0933},
        {0x0958, 0x0915},
        {0x0959, 0x0916},
        {0x095A, 0x0917},
        {0x095B, 0x091C},
        {0x095C, 0x0921},
        {0x095D, 0x0922},
        {0x095E, 0x092B},
        {0x095F, 0x092F}};
    static constexpr Pair kBengali[] = {{0x09DC, 0x09A1}, {0x09DD, 0x09A2}, {0x09DF, 0x09AF}};
    static constexpr Pair kGurmukhi[] = {
        {0x0A33, 0x0A32},
        {0x0A36, 0x0A38},
        {0x0A59, 0x0A16},
        {0x0A5A, 0x0A17},
        {0x0A5B, 0x0A1C},
        {0x0A5E, 0x0A2B}};
    static constexpr Pair kOriya[] = {{0x0B5C, 0x0B21}, {0x0B5D, 0x0B22}};
    auto find = [cp](const auto& table) -> char32_t {
        for (const Pair& p : table) {
            if (p.composed == cp)
                return p.base;
        }
        return 0;
    };
    if (cp >= 0x0929 && cp <= 0x095F) {
        nukta = 0x093C;
        return find(kDevanagari);
    }
    if (cp >= 0x09DC && cp <= 0x09DF) {
        nukta = 0x09BC;
        return find(kBengali);
    }
    if (cp >= 0x0A33 && cp <= 0x0A5E) {
        nukta = 0x0A3C;
        return find(kGurmukhi);
    }
    if (cp == 0x0B5C || cp == 0x0B5D) {
        nukta = 0x0B3C;
        return find(kOriya);
    }
    return 0;
}

std::string normalize(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    // A separator is written lazily, only before the next kept character: this collapses runs
    // of punctuation and white space into one space and trims both ends in the same pass.
    bool pending_space = false;
    std::size_t i = 0;
    while (i < n) {
        const unsigned char b = p[i];
        if (b < 0x80) {
            ++i;
            const bool digit = b >= '0' && b <= '9';
            const bool lower = b >= 'a' && b <= 'z';
            const bool upper = b >= 'A' && b <= 'Z';
            if (!(digit || lower || upper)) {
                pending_space = true;
                continue;
            }
            if (pending_space && !out.empty()) {
                out.push_back(' ');
            }
            pending_space = false;
            out.push_back(static_cast<char>(upper ? b + 32 : b));
            continue;
        }
        char32_t cp = 0;
        const std::size_t len = decode(p + i, n - i, cp);
        if (len == 0) {
            ++i;  // invalid byte: dropped
            continue;
        }
        i += len;
        const CharClass cls = classify(cp);
        if (cls == CharClass::kDrop) {
            continue;
        }
        if (cls == CharClass::kSpace) {
            pending_space = true;
            continue;
        }
        if (pending_space && !out.empty()) {
            out.push_back(' ');
        }
        pending_space = false;
        char32_t nukta = 0;
        if (const char digit = indian_digit(cp); digit != 0) {
            out.push_back(digit);
        } else if (const char32_t base = nukta_base(cp, nukta); base != 0) {
            encode(base, out);
            encode(nukta, out);
        } else {
            encode(lower_cp(cp, true), out);
        }
    }
    return out;
}

std::vector<std::string_view> split_words(std::string_view normalized) {
    std::vector<std::string_view> words;
    std::size_t i = 0;
    const std::size_t n = normalized.size();
    while (i < n) {
        while (i < n && normalized[i] == ' ') {
            ++i;
        }
        const std::size_t start = i;
        while (i < n && normalized[i] != ' ') {
            ++i;
        }
        if (i > start) {
            words.push_back(normalized.substr(start, i - start));
        }
    }
    return words;
}

std::size_t utf8_length(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t count = 0;
    std::size_t i = 0;
    while (i < n) {
        char32_t cp = 0;
        const std::size_t len = decode(p + i, n - i, cp);
        i += len == 0 ? 1 : len;
        ++count;
    }
    return count;
}

std::size_t utf8_valid_prefix(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        char32_t cp = 0;
        const std::size_t len = decode(p + i, n - i, cp);
        if (len == 0) {
            return i;
        }
        i += len;
    }
    return n;
}

bool is_control_character(unsigned char c) {
    return (c < 0x20U && c != '\t' && c != '\n' && c != '\r') || c == 0x7FU;
}

bool is_valid_utf8(std::string_view text) {
    return utf8_valid_prefix(text) == text.size();
}

std::string to_lower(std::string_view text) {
    return map_code_points(text, [](char32_t cp) { return lower_cp(cp, false); });
}

std::string to_upper(std::string_view text) {
    return map_code_points(text, [](char32_t cp) { return upper_cp(cp); });
}

int edit_distance(std::string_view a, std::string_view b, int limit) {
    if (limit < 0) {
        limit = 0;
    }
    if (a == b) {
        return 0;
    }
    if (limit <= 1 && is_ascii(a) && is_ascii(b)) {
        // Bytes are code points: no decoding for the usual typo check.
        const int d = distance_up_to_one(
            reinterpret_cast<const unsigned char*>(a.data()),
            a.size(),
            reinterpret_cast<const unsigned char*>(b.data()),
            b.size()
        );
        return d > limit ? limit + 1 : d;
    }
    // Code points on the stack for words of up to 64 bytes (every keyword in practice).
    constexpr std::size_t kSmall = 64;
    std::array<char32_t, kSmall> small_a;
    std::array<char32_t, kSmall> small_b;
    std::vector<char32_t> big_a;
    std::vector<char32_t> big_b;
    const char32_t* s = nullptr;
    const char32_t* t = nullptr;
    const std::size_t m = to_code_points(a, small_a, big_a, s);
    const std::size_t n = to_code_points(b, small_b, big_b, t);
    const std::size_t diff = m > n ? m - n : n - m;
    if (diff > static_cast<std::size_t>(limit)) {
        return limit + 1;  // the length difference alone needs more edits
    }
    if (m == 0 || n == 0) {
        return static_cast<int>(m + n);
    }
    if (limit <= 1) {
        const int d = distance_up_to_one(s, m, t, n);
        return d > limit ? limit + 1 : d;
    }

    // Optimal string alignment: three rolling rows (the one before the previous is needed
    // for transpositions).
    std::array<std::array<int, kSmall + 1>, 3> rows_small;
    std::unique_ptr<int[]> rows_big;  // not a vector: g++ 12 -O3 warns falsely on its resize
    int* prev2 = nullptr;
    int* prev = nullptr;
    int* cur = nullptr;
    if (n + 1 <= rows_small[0].size()) {
        prev2 = rows_small[0].data();
        prev = rows_small[1].data();
        cur = rows_small[2].data();
    } else {
        rows_big = std::make_unique<int[]>(3 * (n + 1));
        prev2 = rows_big.get();
        prev = prev2 + (n + 1);
        cur = prev + (n + 1);
    }
    for (std::size_t j = 0; j <= n; ++j) {
        prev[j] = static_cast<int>(j);
    }
    for (std::size_t i = 1; i <= m; ++i) {
        cur[0] = static_cast<int>(i);
        int row_min = cur[0];
        for (std::size_t j = 1; j <= n; ++j) {
            const int cost = s[i - 1] == t[j - 1] ? 0 : 1;
            int best = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && s[i - 1] == t[j - 2] && s[i - 2] == t[j - 1]) {
                best = std::min(best, prev2[j - 2] + 1);
            }
            cur[j] = best;
            row_min = std::min(row_min, best);
        }
        // A cell is built from the row above (plus 0 or 1) or, for a transposition, from two rows
        // above plus 1; so once two consecutive rows both exceed the limit, every later row does.
        if (row_min > limit) {
            int prev_min = prev[0];
            for (std::size_t j = 1; j <= n; ++j) {
                prev_min = std::min(prev_min, prev[j]);
            }
            if (prev_min > limit) {
                return limit + 1;
            }
        }
        int* recycled = prev2;
        prev2 = prev;
        prev = cur;
        cur = recycled;
    }
    const int result = prev[n];
    return result > limit ? limit + 1 : result;
}

}  // namespace civicflow::engine
