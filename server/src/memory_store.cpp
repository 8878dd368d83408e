#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <civicflow/server/memory_store.hpp>

namespace civicflow::server {
namespace {

// 16 shards: enough that the I/O threads of a few cores rarely meet on one mutex, few enough
// that each shard's phrase dictionary (one copy of the shared phrases per shard) stays small.
constexpr std::size_t kShards = 16;
constexpr std::size_t kShardBits = 4;
static_assert(std::size_t{1} << kShardBits == kShards);

constexpr int kSweepSlotsPerWrite = 2;
constexpr std::size_t kExtraSweepEvery = 1024;

// ---- varints (LEB128) ----

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

std::size_t varint_size(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

char* write_varint(char* p, std::uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
}

// Reads a varint this file wrote (so well-formed) and advances `p`.
std::uint64_t read_varint(const char*& p) {
    std::uint64_t v = 0;
    int shift = 0;
    for (;;) {
        const auto byte = static_cast<unsigned char>(*p++);
        v |= std::uint64_t{byte & 0x7fu} << shift;
        if (byte < 0x80)
            return v;
        shift += 7;
    }
}

// ---- the phrase dictionary ----

// Phrases shared by packed sessions, each with the number of packed sessions using it, so the
// dictionary holds only what live sessions need: a phrase is dropped with its last user.
class Phrases {
public:
    std::uint32_t acquire(std::string_view text) {
        if (auto it = index_.find(text); it != index_.end()) {
            ++entries_[it->second].refs;
            return it->second;
        }
        std::uint32_t id = 0;
        if (free_.empty()) {
            id = static_cast<std::uint32_t>(entries_.size());
            entries_.emplace_back();
        } else {
            id = free_.back();
            free_.pop_back();
        }
        Entry& e = entries_[id];
        e.text.assign(text);
        e.refs = 1;
        // The view points into the deque's element, which never moves.
        index_.emplace(std::string_view(e.text), id);
        return id;
    }

    void release(std::uint32_t id) {
        Entry& e = entries_[id];
        if (--e.refs > 0)
            return;
        index_.erase(std::string_view(e.text));
        e.text.clear();
        e.text.shrink_to_fit();
        free_.push_back(id);
    }

    std::string_view text(std::uint32_t id) const { return entries_[id].text; }

    std::size_t size() const { return index_.size(); }

private:
    struct Entry {
        std::string text;
        std::uint32_t refs = 0;
    };

    std::deque<Entry> entries_;  // by id; a deque so that elements never move
    std::vector<std::uint32_t> free_;
    std::unordered_map<std::string_view, std::uint32_t> index_;
};

// ---- packed sessions ----
//
// A packed string is a sequence of: bytes >= 0x20, copied as they are; kPhrase + varint id, a
// phrase of the shard's dictionary; kNumber + varint, a run of 3 to 19 decimal digits without
// a leading zero, written back as the same digits. Only strings without bytes below 0x20 are
// packed (JSON never has them raw), so the codes cannot be confused with text. Everything else
// is stored raw.
//
// Phrases are the maximal runs between numbers and slot values: the engine's session encoding
// puts a citizen's flow, state, language, wait, stack and history (shared by everyone at the
// same point of a form) between its timestamps and slot values (each citizen's own), so a
// citizen waiting in a form packs into three phrase references and two numbers. The scanner
// only needs JSON's string and bracket syntax; any input packs exactly, JSON or not.

constexpr char kPhrase = 0x01;
constexpr char kNumber = 0x02;
constexpr std::size_t kMinPhrase = 3;  // shorter runs cost no more written out
constexpr std::size_t kMaxPhrase = 512;

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

void release_phrases(std::string_view packed, Phrases& phrases) {
    const char* p = packed.data();
    const char* end = p + packed.size();
    while (p < end) {
        const char c = *p++;
        if (c == kPhrase) {
            phrases.release(static_cast<std::uint32_t>(read_varint(p)));
        } else if (c == kNumber) {
            read_varint(p);
        }
    }
}

// Whether `s` has a byte below 0x20, eight bytes at a time: (x - 0x20 in every byte) & ~x has a
// byte's high bit set exactly when some byte of x is below 0x20 (bytes >= 0x80 never match).
bool has_control_byte(std::string_view s) {
    constexpr std::uint64_t kBelow = 0x2020202020202020ULL;
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        std::uint64_t x = 0;
        std::memcpy(&x, s.data() + i, sizeof x);
        if (((x - kBelow) & ~x & kHigh) != 0)
            return true;
    }
    for (; i < s.size(); ++i) {
        if (static_cast<unsigned char>(s[i]) < 0x20)
            return true;
    }
    return false;
}

// What the packer stops at outside strings; every other byte joins the current phrase.
enum : unsigned char { kPlain = 0, kQuote, kOpen, kClose, kDigit };

constexpr std::array<unsigned char, 256> kClass = [] {
    std::array<unsigned char, 256> t{};
    t['"'] = kQuote;
    t['{'] = kOpen;
    t['['] = kOpen;
    t['}'] = kClose;
    t[']'] = kClose;
    for (int c = '1'; c <= '9'; ++c)
        t[static_cast<std::size_t>(c)] = kDigit;
    return t;
}();

// Packs `s` into `out` (acquiring its phrases); false, with nothing acquired, when `s` is better
// stored raw (a byte below 0x20, or no gain). Runs on every write, so it scans each byte once
// and stops only at quotes, brackets and digits.
bool pack(std::string_view s, Phrases& phrases, std::string& out) {
    if (has_control_byte(s))
        return false;
    out.clear();
    const std::size_t n = s.size();
    std::size_t start = 0;     // where the current phrase began
    int depth = 0;             // brackets open outside strings
    int slots_depth = -1;      // depth of the "slots" object while inside it
    bool slots_opens = false;  // the key "slots" was just read and its object opens next
    auto flush = [&](std::size_t end) {
        const std::string_view run = s.substr(start, end - start);
        if (run.size() >= kMinPhrase) {
            out.push_back(kPhrase);
            put_varint(out, phrases.acquire(run));
        } else {
            out.append(run);
        }
        start = end;
    };
    std::size_t i = 0;
    while (i < n) {
        const unsigned char k = kClass[static_cast<unsigned char>(s[i])];
        if (k == kPlain) {
            ++i;
            continue;
        }
        if (i - start >= kMaxPhrase)
            flush(i);
        if (k == kQuote) {
            std::size_t j = i + 1;
            while (j < n && s[j] != '"')
                j += s[j] == '\\' ? 2 : 1;
            if (j >= n)
                break;  // unterminated: the rest joins the phrase
            const bool key = j + 1 < n && s[j + 1] == ':';
            if (!key && slots_depth >= 0) {
                // A slot value (a name, a date the citizen typed): the citizen's own, so kept
                // out of the shared dictionary, which would otherwise hold one phrase per
                // citizen.
                flush(i);
                out.append(s.substr(i, j + 1 - i));
                start = j + 1;
            }
            slots_opens = key && j + 2 < n && s[j + 2] == '{' && slots_depth < 0 &&
                          s.substr(i, j + 1 - i) == "\"slots\"";
            i = j + 1;
        } else if (k == kOpen) {
            ++depth;
            if (slots_opens)
                slots_depth = depth;
            slots_opens = false;
            ++i;
        } else if (k == kClose) {
            if (depth == slots_depth)
                slots_depth = -1;
            --depth;
            ++i;
        } else if (i > 0 && is_digit(s[i - 1])) {
            ++i;  // inside a run that began with 0: written as it is
        } else {
            std::size_t j = i;
            std::uint64_t v = 0;
            while (j < n && is_digit(s[j])) {
                v = v * 10 + static_cast<std::uint64_t>(s[j] - '0');
                ++j;
                if (j - i > 19)
                    break;
            }
            while (j < n && is_digit(s[j]))
                ++j;
            if (j - i >= 3 && j - i <= 19) {
                flush(i);
                out.push_back(kNumber);
                put_varint(out, v);
                start = j;
            }
            i = j;
        }
    }
    flush(n);
    if (out.size() >= n) {
        release_phrases(out, phrases);
        return false;
    }
    return true;
}

void unpack(std::string_view packed, const Phrases& phrases, std::string& out) {
    const char* p = packed.data();
    const char* end = p + packed.size();
    while (p < end) {
        const char c = *p++;
        if (c == kPhrase) {
            out.append(phrases.text(static_cast<std::uint32_t>(read_varint(p))));
        } else if (c == kNumber) {
            char digits[24];
            const auto r = std::to_chars(digits, digits + sizeof digits, read_varint(p));
            out.append(digits, r.ptr);
        } else {
            out.push_back(c);
        }
    }
}

// ---- records ----
//
// One heap block per citizen: [expires_at: 8 bytes][flags: 1][varint key length][key]
// [varint body length][body], the body being the session (packed or raw). No padding, no
// separate allocations for the id or the session.

constexpr unsigned kHasSession = 1;
constexpr unsigned kHasExtra = 2;
constexpr unsigned kPacked = 4;

struct RecordView {
    std::int64_t expires_at = 0;
    unsigned flags = 0;
    std::string_view key;
    std::string_view body;

    bool live_session(std::int64_t now) const {
        return (flags & kHasSession) != 0 && expires_at > now;
    }
};

RecordView view(const char* r) {
    RecordView v;
    std::memcpy(&v.expires_at, r, sizeof v.expires_at);
    v.flags = static_cast<unsigned char>(r[8]);
    const char* p = r + 9;
    const auto key_size = static_cast<std::size_t>(read_varint(p));
    v.key = std::string_view(p, key_size);
    p += key_size;
    const auto body_size = static_cast<std::size_t>(read_varint(p));
    v.body = std::string_view(p, body_size);
    return v;
}

char* make_record(
    std::int64_t expires_at, unsigned flags, std::string_view key, std::string_view body
) {
    const std::size_t size =
        9 + varint_size(key.size()) + key.size() + varint_size(body.size()) + body.size();
    char* r = new char[size];
    std::memcpy(r, &expires_at, sizeof expires_at);
    r[8] = static_cast<char>(static_cast<unsigned char>(flags));
    char* p = write_varint(r + 9, key.size());
    if (!key.empty())  // an empty view may have a null data(), which memcpy must not get
        std::memcpy(p, key.data(), key.size());
    p = write_varint(p + key.size(), body.size());
    if (!body.empty())
        std::memcpy(p, body.data(), body.size());
    return r;
}

std::size_t hash_of(std::string_view key) {
    return std::hash<std::string_view>{}(key);
}

// Open addressing with linear probing over record pointers (8 bytes a slot, at most 7/8 full),
// backward-shift deletion (no tombstones). The low hash bits chose the shard; the table uses
// the others.
class Table {
public:
    Table() = default;
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;

    ~Table() {
        for (std::size_t i = 0; i < capacity(); ++i)
            delete[] slots_[i];
    }

    std::size_t capacity() const { return slots_ ? mask_ + 1 : 0; }

    std::size_t size() const { return size_; }

    char* at(std::size_t i) const { return slots_[i]; }

    void set(std::size_t i, char* r) { slots_[i] = r; }

    static constexpr std::size_t kNone = ~std::size_t{0};

    std::size_t find(std::string_view key, std::size_t hash) const {
        if (!slots_)
            return kNone;
        for (std::size_t i = home(hash);; i = (i + 1) & mask_) {
            if (slots_[i] == nullptr)
                return kNone;
            if (view(slots_[i]).key == key)
                return i;
        }
    }

    // Adds a record whose key is absent.
    void insert(char* r, std::size_t hash) {
        if ((size_ + 1) * 8 > capacity() * 7)
            rehash(std::max<std::size_t>(16, capacity() * 2));
        place(r, hash);
        ++size_;
    }

    // Removes (without freeing) the record at `i`; later records of its probe run move back.
    void remove(std::size_t i) {
        slots_[i] = nullptr;
        --size_;
        for (std::size_t j = (i + 1) & mask_; slots_[j] != nullptr; j = (j + 1) & mask_) {
            const std::size_t h = home(hash_of(view(slots_[j]).key));
            // The record at j stays if its home lies cyclically in (i, j].
            const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (!stays) {
                slots_[i] = slots_[j];
                slots_[j] = nullptr;
                i = j;
            }
        }
        if (capacity() > 16 && size_ * 8 < capacity())
            rehash(capacity() / 2);
    }

private:
    std::size_t home(std::size_t hash) const { return (hash >> kShardBits) & mask_; }

    void place(char* r, std::size_t hash) {
        std::size_t i = home(hash);
        while (slots_[i] != nullptr)
            i = (i + 1) & mask_;
        slots_[i] = r;
    }

    void rehash(std::size_t new_capacity) {
        std::unique_ptr<char*[]> old = std::move(slots_);
        const std::size_t old_capacity = old ? mask_ + 1 : 0;
        slots_ = std::make_unique<char*[]>(new_capacity);  // value-initialized: all null
        mask_ = new_capacity - 1;
        for (std::size_t i = 0; i < old_capacity; ++i) {
            if (old[i] != nullptr)
                place(old[i], hash_of(view(old[i]).key));
        }
    }

    std::unique_ptr<char*[]> slots_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
};

struct Response {
    std::string value;
    std::int64_t expires_at = 0;
};

// What only some citizens have: message ids with their responses, consent, a pending call.
struct Extra {
    std::unordered_map<std::string, Response> responses;
    std::optional<Consent> consent;
    std::optional<PendingCall> pending;

    bool empty() const { return responses.empty() && !consent && !pending; }
};

}  // namespace

struct MemoryStore::Shard {
    std::mutex mutex;
    Table table;
    Phrases phrases;
    std::unordered_map<std::string, Extra> extras;
    std::size_t cursor = 0;        // the next table slot the sweep looks at
    std::size_t extra_writes = 0;  // writes since the side map was last swept
    std::string scratch;           // packing buffer, reused

    // Frees a record and the phrases its body holds.
    void destroy(char* r) {
        const RecordView v = view(r);
        if ((v.flags & kPacked) != 0)
            release_phrases(v.body, phrases);
        delete[] r;
    }

    // Builds the record of `key` with this session (packing it), or with no session.
    char* build(
        std::string_view key, unsigned flags, std::int64_t expires_at, std::string_view session
    ) {
        flags &= ~kPacked;
        if ((flags & kHasSession) == 0)
            return make_record(0, flags, key, {});
        if (pack(session, phrases, scratch))
            return make_record(expires_at, flags | kPacked, key, scratch);
        return make_record(expires_at, flags, key, session);
    }

    // Changes the flags of the record at slot `i` in place.
    void set_flags(std::size_t i, unsigned flags) {
        table.at(i)[8] = static_cast<char>(static_cast<unsigned char>(flags));
    }

    // Drops the citizen at slot `i` when nothing live is left in the record.
    void drop_if_empty(std::size_t i, std::int64_t now) {
        const RecordView v = view(table.at(i));
        if ((v.flags & kHasExtra) != 0 || v.live_session(now))
            return;
        char* r = table.at(i);
        table.remove(i);
        destroy(r);
    }

    // Looks at a few slots from the cursor and drops expired sessions there.
    void sweep_step(std::int64_t now) {
        for (int n = 0; n < kSweepSlotsPerWrite && table.capacity() > 0; ++n) {
            const std::size_t i = cursor & (table.capacity() - 1);
            char* r = table.at(i);
            if (r == nullptr) {
                cursor = i + 1;
                continue;
            }
            const RecordView v = view(r);
            if ((v.flags & kHasSession) == 0 || v.expires_at > now) {
                cursor = i + 1;
                continue;
            }
            if ((v.flags & kHasExtra) != 0) {
                table.set(i, build(v.key, v.flags & ~kHasSession, 0, {}));
                destroy(r);
                cursor = i + 1;
            } else {
                // Removal moves a later record into slot i: look at i again.
                table.remove(i);
                destroy(r);
            }
        }
    }

    // Drops expired message ids, and side records left empty.
    void sweep_extras(std::int64_t now) {
        for (auto it = extras.begin(); it != extras.end();) {
            std::erase_if(it->second.responses, [now](const auto& kv) {
                return kv.second.expires_at <= now;
            });
            if (!it->second.empty()) {
                ++it;
                continue;
            }
            const std::size_t i = table.find(it->first, hash_of(it->first));
            if (i != Table::kNone) {
                set_flags(i, view(table.at(i)).flags & ~kHasExtra);
                drop_if_empty(i, now);
            }
            it = extras.erase(it);
        }
    }

    void wrote(std::int64_t now) {
        sweep_step(now);
        if (!extras.empty() && ++extra_writes >= std::max(kExtraSweepEvery, extras.size())) {
            extra_writes = 0;
            sweep_extras(now);
        }
    }
};

MemoryStore::MemoryStore(std::chrono::milliseconds message_ttl, Clock clock)
    : message_ttl_(message_ttl)
    , clock_(std::move(clock))
    , shards_(std::make_unique<Shard[]>(kShards)) {}

// Each table frees its records; no phrase needs releasing when the dictionaries go too.
MemoryStore::~MemoryStore() = default;

std::int64_t MemoryStore::now() const {
    if (clock_)
        return clock_();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

MemoryStore::Shard& MemoryStore::shard_for(std::size_t hash) {
    return shards_[hash & (kShards - 1)];
}

CitizenState MemoryStore::get(const std::string& user, const std::string& message_id) {
    const std::size_t h = hash_of(user);
    Shard& s = shard_for(h);
    const std::int64_t t = now();
    CitizenState out;
    std::lock_guard lock(s.mutex);
    const std::size_t i = s.table.find(user, h);
    if (i == Table::kNone)
        return out;
    const RecordView v = view(s.table.at(i));
    if (v.live_session(t)) {
        if ((v.flags & kPacked) != 0) {
            out.session.emplace();
            unpack(v.body, s.phrases, *out.session);
        } else {
            out.session.emplace(v.body);
        }
    }
    if ((v.flags & kHasExtra) != 0) {
        auto e = s.extras.find(user);
        if (e != s.extras.end()) {
            if (!message_id.empty()) {
                auto r = e->second.responses.find(message_id);
                if (r != e->second.responses.end() && r->second.expires_at > t)
                    out.response = r->second.value;
            }
            out.pending = e->second.pending;
        }
    }
    return out;
}

void MemoryStore::put(TurnWrite w) {
    const std::size_t h = hash_of(w.user);
    Shard& s = shard_for(h);
    const std::int64_t t = now();
    std::lock_guard lock(s.mutex);
    std::size_t i = s.table.find(w.user, h);
    const RecordView old = i == Table::kNone ? RecordView{} : view(s.table.at(i));

    // The side record first: whether it exists is part of the main record's flags.
    const bool touches_extra = !w.message_id.empty() || w.consent || w.pending ||
                               (w.clear_pending && (old.flags & kHasExtra) != 0);
    bool has_extra = (old.flags & kHasExtra) != 0;
    if (touches_extra) {
        auto e = s.extras.find(w.user);
        if (e == s.extras.end() && (!w.message_id.empty() || w.consent || w.pending))
            e = s.extras.try_emplace(w.user).first;
        if (e != s.extras.end()) {
            Extra& x = e->second;
            if (!w.message_id.empty()) {
                x.responses[w.message_id] =
                    Response{std::move(w.response), t + message_ttl_.count()};
            }
            if (w.consent)
                x.consent = std::move(w.consent);
            if (w.clear_pending)
                x.pending.reset();
            if (w.pending)
                x.pending = std::move(w.pending);
            if (x.empty()) {
                s.extras.erase(e);
                has_extra = false;
            } else {
                has_extra = true;
            }
        }
    }

    unsigned flags = has_extra ? kHasExtra : 0;
    if (w.session) {
        // The new record is built (acquiring its phrases) before the old one is destroyed
        // (releasing its own), so phrases both use are never dropped and re-added.
        char* r = s.build(w.user, flags | kHasSession, t + w.session_ttl_ms, *w.session);
        if (i == Table::kNone) {
            s.table.insert(r, h);
        } else {
            char* prev = s.table.at(i);
            s.table.set(i, r);
            s.destroy(prev);
        }
    } else if (i != Table::kNone) {
        flags |= old.flags & (kHasSession | kPacked);
        s.set_flags(i, flags);
        s.drop_if_empty(i, t);
    } else if (has_extra) {
        s.table.insert(s.build(w.user, flags, 0, {}), h);
    }
    s.wrote(t);
}

std::optional<Consent> MemoryStore::get_consent(const std::string& user) {
    const std::size_t h = hash_of(user);
    Shard& s = shard_for(h);
    std::lock_guard lock(s.mutex);
    auto e = s.extras.find(user);
    if (e == s.extras.end())
        return std::nullopt;
    return e->second.consent;
}

void MemoryStore::erase(const std::string& user) {
    const std::size_t h = hash_of(user);
    Shard& s = shard_for(h);
    std::lock_guard lock(s.mutex);
    const std::size_t i = s.table.find(user, h);
    if (i != Table::kNone) {
        char* r = s.table.at(i);
        s.table.remove(i);
        s.destroy(r);
    }
    s.extras.erase(user);
}

std::optional<std::string> MemoryStore::get_session(const std::string& user) {
    return get(user, {}).session;
}

void MemoryStore::put_session(const std::string& user, std::string session, std::int64_t ttl_ms) {
    TurnWrite w;
    w.user = user;
    w.session = std::move(session);
    w.session_ttl_ms = ttl_ms;
    put(std::move(w));
}

std::size_t MemoryStore::session_count() {
    const std::int64_t t = now();
    std::size_t count = 0;
    for (std::size_t s = 0; s < kShards; ++s) {
        std::lock_guard lock(shards_[s].mutex);
        const Table& table = shards_[s].table;
        for (std::size_t i = 0; i < table.capacity(); ++i) {
            if (table.at(i) != nullptr && view(table.at(i)).live_session(t))
                ++count;
        }
    }
    return count;
}

std::size_t MemoryStore::citizen_count() {
    std::size_t count = 0;
    for (std::size_t s = 0; s < kShards; ++s) {
        std::lock_guard lock(shards_[s].mutex);
        count += shards_[s].table.size();
    }
    return count;
}

std::size_t MemoryStore::phrase_count() {
    std::size_t count = 0;
    for (std::size_t s = 0; s < kShards; ++s) {
        std::lock_guard lock(shards_[s].mutex);
        count += shards_[s].phrases.size();
    }
    return count;
}

boost::asio::awaitable<engine::Result<CitizenState>> MemoryStore::load(
    const std::string& user, const std::string& message_id
) {
    co_return get(user, message_id);
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::write(TurnWrite write) {
    put(std::move(write));
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<std::optional<Consent>>> MemoryStore::load_consent(
    const std::string& user
) {
    co_return get_consent(user);
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::erase_citizen(
    const std::string& user
) {
    erase(user);
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::ping() {
    co_return engine::Ok{};
}

}  // namespace civicflow::server
