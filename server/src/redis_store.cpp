#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <initializer_list>
#include <optional>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <civicflow/server/logger.hpp>
#include <civicflow/server/redis_store.hpp>

#include "hex.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

namespace civicflow::server {

namespace asio = boost::asio;

namespace {

// Our copy of a hiredis reply (hiredis frees its own when the callback returns).
struct Reply {
    int type = REDIS_REPLY_NIL;
    std::string str;
    long long integer = 0;
    std::vector<Reply> elements;

    static Reply from(const redisReply* r) {
        Reply out;
        out.type = r->type;
        out.integer = r->integer;
        if (r->str != nullptr)
            out.str.assign(r->str, r->len);
        for (std::size_t i = 0; i < r->elements; ++i)
            out.elements.push_back(from(r->element[i]));
        return out;
    }

    bool nil() const { return type == REDIS_REPLY_NIL; }
};

const engine::Error kUnavailable{"store", "redis is unreachable"};
// A turn's final write found its lease expired (and perhaps taken by another instance): it
// wrote nothing, and the message is answered 503 to be retried.
const engine::Error kLeaseLost{"store", "the citizen's lease expired before the turn was stored"};
// Another instance held the citizen's lease for all of lease_wait.
const engine::Error kLeaseTimeout{"citizen_busy", "timed out waiting for a citizen lease"};

// One turn's effects, atomically (see the key list in redis_store.hpp). With a lease token
// (ARGV[11]: the turn's final write, which releases it; ARGV[12]: a write within the turn,
// which extends it by ARGV[13] ms), nothing is written unless the lease still holds it: the
// lease expired and another instance may have taken the citizen (it returns 0, an error for
// the caller).
constexpr const char* kWriteScript = R"(
if ARGV[11] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[11] then return 0 end
if ARGV[12] ~= '' then
  if redis.call('GET', KEYS[6]) ~= ARGV[12] then return 0 end
  redis.call('PEXPIRE', KEYS[6], ARGV[13])
end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if ARGV[8] ~= '' then redis.call('SET', KEYS[4], ARGV[8]) end
if ARGV[9] == '1' then redis.call('DEL', KEYS[5]) end
if ARGV[10] ~= '' then redis.call('SET', KEYS[5], ARGV[10], 'PX', ARGV[7]) end
if ARGV[11] ~= '' then redis.call('DEL', KEYS[6]) end
return 1
)";

// The most common write: a new session, and the lease released when still ours (the general
// script above does the same with eleven arguments to unpack; this is the cheaper call).
constexpr const char* kSessionReleaseScript = R"(
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
)";

// Everything about one citizen, message responses included (found through the id set; ARGV[2]
// is the prefix builds before 2026-12 used, whose keys may still be there within message_ttl).
constexpr const char* kEraseScript = R"(
local ids = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id, ARGV[2] .. id) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
)";

// Takes over a lease this process left behind (ARGV[1]: its token prefix): a lease whose
// SET NX was applied though its reply never came (Redis stalled, the connection dropped), or
// whose release was lost. The caller holds the citizen's place in this process's queue, so no
// turn of this process holds it.
constexpr const char* kTakeOverScript = R"(
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
)";

// Deletes the lease only when it is still ours (it may have expired and been taken).
constexpr const char* kReleaseScript = R"(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)";

std::string key(const char* kind, const std::string& user) {
    return std::string("cf:") + kind + ":{" + user + "}";
}

// The keys of a citizen's message responses: "cf:m:<length of user>:{user}:" + the message id.
// The length makes the pair unambiguous: user and message id may both contain "}" and ":",
// and without it user "u" with id "v}:w" and user "u}:v" with id "w" shared one key.
std::string message_key_prefix(const std::string& user) {
    return "cf:m:" + std::to_string(user.size()) + ":{" + user + "}:";
}

// A command in Redis's wire format (RESP), built in one string: hiredis's own formatting
// (redisAsyncCommandArgv) goes through a printf-like builder and several reallocations, which
// profiling showed as the largest part of this store's cost on the server.
class Command {
public:
    // `size_hint`: the bytes of all arguments together (the buffer is allocated once).
    explicit Command(std::size_t args, std::size_t size_hint = 0) {
        out_.reserve(16 + size_hint + args * 16);
        out_ += '*';
        number(args);
    }

    Command& arg(std::string_view a) {
        out_ += '$';
        number(a.size());
        out_.append(a);
        out_.append("\r\n", 2);
        return *this;
    }

    Command& arg(std::int64_t v) {
        char digits[24];
        const auto r = std::to_chars(digits, digits + sizeof digits, v);
        return arg(std::string_view(digits, static_cast<std::size_t>(r.ptr - digits)));
    }

    std::string take() { return std::move(out_); }

private:
    void number(std::size_t n) {
        char digits[24];
        const auto r = std::to_chars(digits, digits + sizeof digits, n);
        out_.append(digits, r.ptr);
        out_.append("\r\n", 2);
    }

    std::string out_;
};

// A Lua script sent as EVALSHA (its SHA-1, 40 bytes, instead of its text every time); when Redis
// does not have it cached (restarted, SCRIPT FLUSH) the command is sent again as EVAL, which
// caches it.
struct Script {
    explicit Script(std::string_view text)
        : body(text) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
        append_hex(sha, md);
    }

    // The EVAL form of an EVALSHA command built by script_call(): the same arguments, with the
    // script's text in place of its SHA-1.
    std::string eval_form(std::string_view evalsha) const {
        const std::size_t header = evalsha.find("\r\n") + 2;  // "*N\r\n"
        constexpr std::string_view kName = "$7\r\nEVALSHA\r\n$40\r\n";
        const std::size_t rest = header + kName.size() + 40 + 2;
        std::string out(evalsha.substr(0, header));
        out += "$4\r\nEVAL\r\n$" + std::to_string(body.size()) + "\r\n";
        out += body;
        out += "\r\n";
        out.append(evalsha.substr(rest));
        return out;
    }

    std::string body;
    std::string sha;
};

// An EVALSHA of `script` with these keys and arguments, formatted.
std::string script_call(
    const Script& script,
    std::initializer_list<std::string_view> keys,
    std::initializer_list<std::string_view> args
) {
    std::size_t size = 64;
    for (const std::string_view k : keys)
        size += k.size();
    for (const std::string_view a : args)
        size += a.size();
    Command c(3 + keys.size() + args.size(), size);
    c.arg("EVALSHA").arg(script.sha).arg(static_cast<std::int64_t>(keys.size()));
    for (const std::string_view k : keys)
        c.arg(k);
    for (const std::string_view a : args)
        c.arg(a);
    return c.take();
}

std::string encode_consent(const Consent& c) {
    return std::string(c.opted_in ? "1" : "0") + "|" + std::to_string(c.at) + "|" + c.channel;
}

std::optional<Consent> decode_consent(const std::string& s) {
    const auto a = s.find('|');
    const auto b = a == std::string::npos ? a : s.find('|', a + 1);
    if (b == std::string::npos)
        return std::nullopt;
    Consent c;
    c.opted_in = s.substr(0, a) == "1";
    try {
        c.at = std::stoll(s.substr(a + 1, b - a - 1));
    } catch (const std::exception&) {
        return std::nullopt;
    }
    c.channel = s.substr(b + 1);
    return c;
}

}  // namespace

// A command waiting for its reply: completes its caller on the caller's executor. For an
// EVALSHA, the command and its script are kept to resend it as EVAL if the script is missing.
struct PendingReply {
    std::function<void(engine::Result<Reply>)> done;
    const Script* script = nullptr;
    std::string cmd;
};

struct RedisStore::Impl : std::enable_shared_from_this<RedisStore::Impl> {
    Impl(asio::any_io_executor ex, Options o)
        : strand(asio::make_strand(ex))
        , options(std::move(o))
        , reconnect_timer(strand)
        , lease_prefix([] {
            std::random_device rd;
            return std::to_string(rd()) + "-" + std::to_string(rd()) + "-";
        }()) {}

    asio::strand<asio::any_io_executor> strand;
    Options options;
    asio::steady_timer reconnect_timer;
    // Unique per process, ends in '-': tokens are it and a number; leases are compared by token.
    std::string lease_prefix;
    const Script write_script{kWriteScript};
    const Script session_release_script{kSessionReleaseScript};
    const Script erase_script{kEraseScript};
    const Script release_script{kReleaseScript};
    const Script take_over_script{kTakeOverScript};
    std::atomic<std::uint64_t> lease_seq{0};

    // Connection state: only touched on the strand.
    redisAsyncContext* ac = nullptr;
    std::unique_ptr<asio::posix::stream_descriptor> socket;
    bool reading = false;
    bool writing = false;
    bool read_armed = false;
    bool write_armed = false;
    bool up = false;
    bool closing = false;
    std::chrono::milliseconds backoff{50};
    std::atomic<bool> connected{false};
    // When each command still waiting for its reply was handed to hiredis, oldest first (Redis
    // answers a connection's commands in order), and when the connect started.
    std::deque<std::chrono::steady_clock::time_point> sent_at;
    std::chrono::steady_clock::time_point connect_started{};
    asio::steady_timer watchdog{strand};
    bool watching = false;
    // Erasures done, and how many of them the last successful AOF rewrite covers.
    std::uint64_t erasures = 0;
    std::uint64_t erasures_rewritten = 0;
    bool rewriting = false;  // rewrite_after_erasures() runs
    asio::steady_timer rewrite_timer{strand};

    // --- the hiredis event-loop adapter (all on the strand) ---

    void arm_read() {
        if (read_armed || !socket)
            return;
        read_armed = true;
        socket->async_wait(
            asio::posix::stream_descriptor::wait_read,
            asio::bind_executor(
                strand,
                [self = shared_from_this()](boost::system::error_code ec) {
                    self->read_armed = false;
                    if (ec || self->ac == nullptr || !self->reading)
                        return;
                    redisAsyncHandleRead(self->ac);
                    if (self->reading && self->ac != nullptr)
                        self->arm_read();
                }
            )
        );
    }

    void arm_write() {
        if (write_armed || !socket)
            return;
        write_armed = true;
        socket->async_wait(
            asio::posix::stream_descriptor::wait_write,
            asio::bind_executor(
                strand,
                [self = shared_from_this()](boost::system::error_code ec) {
                    self->write_armed = false;
                    if (ec || self->ac == nullptr || !self->writing)
                        return;
                    redisAsyncHandleWrite(self->ac);
                    if (self->writing && self->ac != nullptr)
                        self->arm_write();
                }
            )
        );
    }

    static Impl* from(void* p) { return static_cast<Impl*>(p); }

    static void on_add_read(void* p) {
        from(p)->reading = true;
        from(p)->arm_read();
    }

    static void on_del_read(void* p) { from(p)->reading = false; }

    static void on_add_write(void* p) {
        from(p)->writing = true;
        from(p)->arm_write();
    }

    static void on_del_write(void* p) { from(p)->writing = false; }

    static void on_cleanup(void* p) {
        Impl* self = from(p);
        self->reading = false;
        self->writing = false;
        if (self->socket) {
            // hiredis closes the descriptor itself: give it back without closing it. Pending
            // waits complete with operation_aborted and see ac == nullptr.
            self->socket->release();
            self->socket.reset();
        }
    }

    // Checks, a few times per command_timeout, that the oldest command (or the connect) has
    // not waited longer than that; else drops the connection: hiredis fails every waiting
    // command (503) and lost() reconnects.
    void watch() {
        if (watching || closing)
            return;
        watching = true;
        const auto tick = std::clamp(
            options.command_timeout / 4,
            std::chrono::milliseconds(10),
            std::chrono::milliseconds(500)
        );
        watchdog.expires_after(tick);
        watchdog.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            self->watching = false;
            if (ec || self->closing)
                return;
            self->check_overdue();
            self->watch();
        });
    }

    void check_overdue() {
        if (ac == nullptr)
            return;
        const auto now = std::chrono::steady_clock::now();
        const bool command_overdue =
            up && !sent_at.empty() && now - sent_at.front() > options.command_timeout;
        const bool connect_overdue = !up && now - connect_started > options.command_timeout;
        if (!command_overdue && !connect_overdue)
            return;
        Logger::log(
            LogLevel::kWarn,
            {},
            "store_timeout",
            std::string("store=redis waited_for=") + (up ? "reply" : "connect") +
                " timeout_ms=" + std::to_string(options.command_timeout.count())
        );
        redisAsyncContext* c = ac;
        const bool was_up = up;
        // hiredis calls on_reply with no reply for each waiting command, then on_disconnect
        // when it was connected (which calls lost()); a connect in progress gets neither.
        redisAsyncFree(c);
        if (!was_up && ac == c)
            lost();
    }

    static void on_connect(const redisAsyncContext* c, int status) {
        Impl* self = from(c->data);
        if (status != REDIS_OK) {
            // hiredis frees the context after this callback.
            self->lost();
            return;
        }
        self->up = true;
        self->connected = true;
        self->backoff = std::chrono::milliseconds(50);
        Logger::log(LogLevel::kInfo, {}, "store_connected", "store=redis");
    }

    static void on_disconnect(const redisAsyncContext* c, int) {
        Impl* self = from(c->data);
        if (self->up)
            Logger::log(LogLevel::kWarn, {}, "store_disconnected", "store=redis");
        self->lost();
    }

    void lost() {
        ac = nullptr;
        up = false;
        connected = false;
        sent_at.clear();
        if (closing)
            return;
        reconnect_timer.expires_after(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        reconnect_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec)
                self->connect();
        });
    }

    void connect() {
        if (closing || ac != nullptr)
            return;
        redisAsyncContext* c = redisAsyncConnect(options.host.c_str(), options.port);
        if (c == nullptr || c->err != 0) {
            if (c != nullptr)
                redisAsyncFree(c);
            lost();
            return;
        }
        ac = c;
        c->data = this;
        connect_started = std::chrono::steady_clock::now();
        watch();
        socket = std::make_unique<asio::posix::stream_descriptor>(strand, c->c.fd);
        c->ev.data = this;
        c->ev.addRead = &Impl::on_add_read;
        c->ev.delRead = &Impl::on_del_read;
        c->ev.addWrite = &Impl::on_add_write;
        c->ev.delWrite = &Impl::on_del_write;
        c->ev.cleanup = &Impl::on_cleanup;
        redisAsyncSetConnectCallback(c, &Impl::on_connect);
        redisAsyncSetDisconnectCallback(c, &Impl::on_disconnect);
        // The connect completes when the socket turns writable.
        on_add_write(this);
    }

    static void on_reply(redisAsyncContext* ac, void* r, void* privdata) {
        std::unique_ptr<PendingReply> pending(static_cast<PendingReply*>(privdata));
        if (Impl* self = from(ac->data); !self->sent_at.empty())
            self->sent_at.pop_front();
        const auto* reply = static_cast<const redisReply*>(r);
        if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && pending->script != nullptr &&
            std::string_view(reply->str, reply->len).starts_with("NOSCRIPT")) {
            // The script is not in Redis's cache: send its text once, which caches it again.
            // Only this command is delayed; a citizen's commands are sent one at a time, so
            // nothing of the same citizen can overtake it.
            const std::string eval = pending->script->eval_form(pending->cmd);
            pending->script = nullptr;
            pending->cmd.clear();
            PendingReply* raw = pending.get();
            if (redisAsyncFormattedCommand(ac, &Impl::on_reply, raw, eval.data(), eval.size()) ==
                REDIS_OK) {
                from(ac->data)->sent_at.push_back(std::chrono::steady_clock::now());
                pending.release();  // owned by hiredis until on_reply
                return;
            }
            pending->done(kUnavailable);
            return;
        }
        if (reply == nullptr) {
            // The connection went away before the reply: the command may or may not have run;
            // the caller answers 503 and the citizen retries (message ids make that safe).
            pending->done(kUnavailable);
        } else if (reply->type == REDIS_REPLY_ERROR) {
            // Redis error texts name commands and types, never our values.
            pending->done(engine::Error{"store", "redis: " + std::string(reply->str, reply->len)});
        } else {
            pending->done(Reply::from(reply));
        }
    }

    // Hands one formatted command to hiredis (on the strand); `done` runs on the strand, at
    // once when Redis is unreachable. `script`: the script an EVALSHA runs (see PendingReply).
    void queue_command(
        std::string& cmd, const Script* script, std::function<void(engine::Result<Reply>)> done
    ) {
        if (ac == nullptr || !up) {
            done(kUnavailable);
            return;
        }
        auto pending = std::make_unique<PendingReply>(PendingReply{std::move(done), script, {}});
        if (redisAsyncFormattedCommand(
                ac, &Impl::on_reply, pending.get(), cmd.data(), cmd.size()
            ) != REDIS_OK) {
            pending->done(kUnavailable);
            return;
        }
        sent_at.push_back(std::chrono::steady_clock::now());
        // hiredis has copied the command into its buffer: keep ours only for a resend.
        if (script != nullptr)
            pending->cmd = std::move(cmd);
        pending.release();  // owned by hiredis until on_reply
    }

    // Sends one formatted command; `done` runs on the strand.
    void send(
        std::string cmd, const Script* script, std::function<void(engine::Result<Reply>)> done
    ) {
        asio::dispatch(
            strand,
            [self = shared_from_this(), cmd = std::move(cmd), script, done = std::move(done)](
            ) mutable { self->queue_command(cmd, script, std::move(done)); }
        );
    }

    // Sends commands back to back in one strand turn, so they leave in one write and come back
    // in one round trip; `done` gets the replies in order once the last has arrived.
    void send_pipelined(
        std::vector<std::string> cmds, std::function<void(std::vector<engine::Result<Reply>>)> done
    ) {
        struct Gather {
            std::vector<engine::Result<Reply>> replies;
            std::size_t left;
            std::function<void(std::vector<engine::Result<Reply>>)> done;

            void put(std::size_t i, engine::Result<Reply> r) {
                replies[i] = std::move(r);
                if (--left == 0)
                    done(std::move(replies));
            }
        };

        asio::dispatch(
            strand,
            [self = shared_from_this(), cmds = std::move(cmds), done = std::move(done)]() mutable {
                auto gather = std::make_shared<Gather>(Gather{
                    std::vector<engine::Result<Reply>>(cmds.size(), kUnavailable),
                    cmds.size(),
                    std::move(done)});
                for (std::size_t i = 0; i < cmds.size(); ++i) {
                    self->queue_command(cmds[i], nullptr, [gather, i](engine::Result<Reply> r) {
                        gather->put(i, std::move(r));
                    });
                }
            }
        );
    }

    // Awaits what a send function reports: `start` gets the completion to hand to send() or
    // send_pipelined(), which resumes the caller on its own executor. (Not a coroutine itself:
    // async_initiate's awaitable owns `start` until it runs.)
    template <typename R, typename Start>
    static asio::awaitable<R> on_caller(Start start) {
        return asio::async_initiate<decltype(asio::use_awaitable), void(R)>(
            [](auto handler, Start st) {
                using Handler = decltype(handler);
                auto work = asio::prefer(
                    asio::get_associated_executor(
                        handler, asio::any_io_executor(asio::system_executor())
                    ),
                    asio::execution::outstanding_work.tracked
                );
                // std::function needs a copyable target: share the move-only handler.
                auto h = std::make_shared<Handler>(std::move(handler));
                st([h, work](R r) {
                    asio::post(work, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
                });
            },
            asio::use_awaitable,
            std::move(start)
        );
    }

    // Awaitable form of send_pipelined().
    asio::awaitable<std::vector<engine::Result<Reply>>> pipelined(std::vector<std::string> cmds) {
        using Replies = std::vector<engine::Result<Reply>>;
        return on_caller<Replies>([self = shared_from_this(),
                                   cmds = std::move(cmds)](auto done) mutable {
            self->send_pipelined(std::move(cmds), std::move(done));
        });
    }

    // Awaitable command (formatted by Command or script_call): the reply comes back on the
    // caller's executor.
    asio::awaitable<engine::Result<Reply>> command(
        std::string cmd, const Script* script = nullptr
    ) {
        return on_caller<engine::Result<Reply>>(
            [self = shared_from_this(), script, cmd = std::move(cmd)](auto done) mutable {
                self->send(std::move(cmd), script, std::move(done));
            }
        );
    }

    // --- the append-only file after an erasure (all on the strand) ---

    // Called when an erasure has been applied: the next rewrite must cover it.
    void erased() {
        asio::dispatch(strand, [self = shared_from_this()] {
            ++self->erasures;
            if (self->rewriting || self->closing || self->options.erasure_rewrite.count() <= 0)
                return;
            self->rewriting = true;
            asio::co_spawn(self->strand, rewrite_after_erasures(self), asio::detached);
        });
    }

    // Waits erasure_rewrite, then has the AOF rewritten; again while erasures remain that the
    // last rewrite does not cover (done after it was asked for, or it failed).
    static asio::awaitable<void> rewrite_after_erasures(std::shared_ptr<Impl> self) {
        while (!self->closing && self->erasures_rewritten < self->erasures) {
            self->rewrite_timer.expires_after(self->options.erasure_rewrite);
            auto [ec] =
                co_await self->rewrite_timer.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || self->closing)
                break;
            const std::uint64_t covers = self->erasures;
            const auto started = std::chrono::steady_clock::now();
            auto done = co_await self->rewrite_aof();
            if (self->closing)
                break;
            if (!done) {
                // A Redis that refuses the command (renamed or blocked, as some managed services
                // do) refuses it next time too: say so once, and wait for the next erasure.
                const std::string& why = done.error().message;
                const bool refused = why.find("unknown command") != std::string::npos ||
                                     why.find("NOPERM") != std::string::npos;
                Logger::log(
                    LogLevel::kWarn,
                    {},
                    "erasure_aof_rewrite_failed",
                    "store=redis error=\"" + why + "\" " +
                        (refused ? std::string("retry=next_erasure")
                                 : "retry_in_ms=" +
                                       std::to_string(self->options.erasure_rewrite.count()))
                );
                if (refused) {
                    self->erasures_rewritten = covers;
                    break;
                }
                continue;
            }
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - started
            );
            Logger::log(
                LogLevel::kInfo,
                {},
                *done ? "erasure_aof_rewritten" : "erasure_aof_off",
                "store=redis erasures=" + std::to_string(covers - self->erasures_rewritten) +
                    " ms=" + std::to_string(ms.count())
            );
            self->erasures_rewritten = covers;
        }
        self->rewriting = false;
    }

    // One field of an INFO answer ("name:value" lines), empty when absent.
    static std::string_view info_field(std::string_view info, std::string_view name) {
        std::size_t at = 0;
        while (at < info.size()) {
            std::size_t end = info.find('\n', at);
            if (end == std::string_view::npos)
                end = info.size();
            std::string_view line = info.substr(at, end - at);
            if (!line.empty() && line.back() == '\r')
                line.remove_suffix(1);
            if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ':')
                return line.substr(name.size() + 1);
            at = end + 1;
        }
        return {};
    }

    // Has Redis rewrite its append-only file after the erasures so far and waits until the
    // rewrite has succeeded: true. False when AOF is off (no file keeps the erased writes;
    // BGREWRITEAOF would write one). A rewrite running or scheduled before this call may have
    // forked before the erasures, so it is waited out and a new one asked for.
    asio::awaitable<engine::Result<bool>> rewrite_aof() {
        bool requested = false;
        std::chrono::milliseconds pause{50};
        for (;;) {
            auto info = co_await command(Command(2).arg("INFO").arg("persistence").take());
            if (!info)
                co_return info.error();
            const std::string_view text = info->str;
            if (info_field(text, "aof_enabled") != "1")
                co_return false;
            const bool busy = info_field(text, "aof_rewrite_in_progress") == "1" ||
                              info_field(text, "aof_rewrite_scheduled") == "1";
            if (!busy && requested) {
                if (info_field(text, "aof_last_bgrewrite_status") != "ok")
                    co_return engine::Error{"store", "redis: the AOF rewrite failed"};
                co_return true;
            }
            if (!busy) {
                auto reply = co_await command(Command(1).arg("BGREWRITEAOF").take());
                if (reply) {
                    requested = true;
                } else if (reply.error().message.find("in progress") == std::string::npos) {
                    co_return reply.error();
                }  // else one started since the INFO: wait it out, then ask again
            }
            rewrite_timer.expires_after(pause);
            auto [ec] = co_await rewrite_timer.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || closing)
                co_return engine::Error{"store", "redis: the store is closing"};
            pause = std::min(pause * 2, std::chrono::milliseconds(1000));
        }
    }

    // PING for readiness, answered at once when Redis already owes a reply for longer than
    // min(command_timeout / 2, 1 s): a load balancer's health check (often with a 1-2 s
    // timeout) learns of a stalled Redis without waiting for the whole command_timeout.
    asio::awaitable<engine::Result<Reply>> ping_command() {
        return on_caller<engine::Result<Reply>>([self = shared_from_this()](auto done) mutable {
            asio::dispatch(self->strand, [self, done = std::move(done)]() mutable {
                const auto stalled_after =
                    std::min(self->options.command_timeout / 2, std::chrono::milliseconds(1000));
                if (self->up && !self->sent_at.empty() &&
                    std::chrono::steady_clock::now() - self->sent_at.front() > stalled_after) {
                    done(engine::Error{"store", "redis has stopped answering"});
                    return;
                }
                std::string cmd = Command(1).arg("PING").take();
                self->queue_command(cmd, nullptr, std::move(done));
            });
        });
    }

    // Closes the connection for good; pending commands complete with a null reply (503).
    void close_now() {
        closing = true;
        up = false;  // a deliberate close is not logged as a lost connection
        reconnect_timer.cancel();
        watchdog.cancel();
        rewrite_timer.cancel();
        if (ac != nullptr) {
            redisAsyncContext* c = ac;
            ac = nullptr;
            redisAsyncFree(c);  // runs the cleanup hook, which gives the socket back
        }
    }

    void shutdown() {
        if (strand.running_in_this_thread()) {
            close_now();
            return;
        }
        auto done = std::make_shared<std::promise<void>>();
        auto future = done->get_future();
        asio::post(strand, [self = shared_from_this(), done] {
            self->close_now();
            done->set_value();
        });
        // When the io_context no longer runs (the server has stopped), nothing else can touch
        // the connection: close it here rather than leak it.
        if (future.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready)
            close_now();
    }
};

RedisStore::RedisStore(std::shared_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

RedisStore::~RedisStore() {
    impl_->shutdown();
}

std::unique_ptr<RedisStore> RedisStore::create(asio::any_io_executor executor, Options options) {
    auto impl = std::make_shared<Impl>(std::move(executor), std::move(options));
    asio::dispatch(impl->strand, [impl] { impl->connect(); });
    return std::unique_ptr<RedisStore>(new RedisStore(std::move(impl)));
}

bool RedisStore::connected() const {
    return impl_->connected.load();
}

namespace {

// The MGET of load(): session, pending call and, when asked for, a message id's response.
std::string load_command(const std::string& user, const std::string& message_id) {
    // The key builds before 2026-12 wrote is read too (still there within message_ttl of an
    // upgrade, or written by an older instance beside this one), but only where it is
    // unambiguous: with no '}' in the user or the message id it has a single '}', so no other
    // (user, id) pair made it.
    const bool old_key = !message_id.empty() && user.find('}') == std::string::npos &&
                         message_id.find('}') == std::string::npos;
    Command cmd(message_id.empty() ? 3 : old_key ? 5 : 4);
    cmd.arg("MGET").arg(key("s", user)).arg(key("p", user));
    if (!message_id.empty())
        cmd.arg(message_key_prefix(user) + message_id);
    if (old_key)
        cmd.arg(key("m", user) + ":" + message_id);
    return cmd.take();
}

engine::Result<CitizenState> decode_load(engine::Result<Reply> reply) {
    if (!reply)
        return reply.error();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements.size() < 2)
        return engine::Error{"store", "redis: unexpected reply to MGET"};
    CitizenState out;
    if (!reply->elements[0].nil())
        out.session = std::move(reply->elements[0].str);
    if (!reply->elements[1].nil()) {
        auto pending = decode_pending_call(reply->elements[1].str);
        if (pending)
            out.pending = std::move(*pending);
    }
    if (reply->elements.size() > 2 && !reply->elements[2].nil())
        out.response = std::move(reply->elements[2].str);
    else if (reply->elements.size() > 3 && !reply->elements[3].nil())
        out.response = std::move(reply->elements[3].str);
    return out;
}

}  // namespace

asio::awaitable<engine::Result<CitizenState>> RedisStore::load(
    const std::string& user, const std::string& message_id
) {
    co_return decode_load(co_await impl_->command(load_command(user, message_id)));
}

asio::awaitable<engine::Result<engine::Ok>> RedisStore::write(TurnWrite w) {
    if (w.session && w.message_id.empty() && !w.consent && !w.clear_pending && !w.pending &&
        w.release_lease.empty() && w.hold_lease.empty()) {
        // Only the session changes: one SET is atomic by itself and costs Redis a fraction of
        // a script run.
        auto reply = co_await impl_->command(Command(5, w.session->size() + w.user.size() + 32)
                                                 .arg("SET")
                                                 .arg(key("s", w.user))
                                                 .arg(*w.session)
                                                 .arg("PX")
                                                 .arg(std::max<std::int64_t>(1, w.session_ttl_ms))
                                                 .take());
        if (!reply)
            co_return reply.error();
        co_return engine::Ok{};
    }
    if (w.session && w.message_id.empty() && !w.consent && !w.clear_pending && !w.pending &&
        w.hold_lease.empty()) {
        const std::string session_ttl = std::to_string(std::max<std::int64_t>(1, w.session_ttl_ms));
        std::string call = script_call(
            impl_->session_release_script,
            {key("s", w.user), key("l", w.user)},
            {*w.session, session_ttl, w.release_lease}
        );
        auto reply = co_await impl_->command(std::move(call), &impl_->session_release_script);
        if (!reply)
            co_return reply.error();
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
            co_return kLeaseLost;
        co_return engine::Ok{};
    }
    const std::string ttl = std::to_string(impl_->options.message_ttl.count());
    const std::string session_ttl = std::to_string(std::max<std::int64_t>(1, w.session_ttl_ms));
    const std::string consent = w.consent ? encode_consent(*w.consent) : std::string();
    const std::string pending = w.pending ? encode_pending_call(*w.pending) : std::string();
    // Built in its own statement: g++ 12 cannot keep an initializer_list alive across a
    // co_await in the same expression.
    std::string call = script_call(
        impl_->write_script,
        {key("s", w.user),
         message_key_prefix(w.user) + w.message_id,
         key("k", w.user),
         key("c", w.user),
         key("p", w.user),
         key("l", w.user)},
        {w.session ? "1" : "0",
         w.session ? std::string_view(*w.session) : std::string_view(),
         session_ttl,
         w.message_id.empty() ? "0" : "1",
         w.message_id,
         w.response,
         ttl,
         consent,
         w.clear_pending ? "1" : "0",
         pending,
         w.release_lease,
         w.hold_lease,
         std::to_string(impl_->options.lease_ttl.count())}
    );
    auto reply = co_await impl_->command(std::move(call), &impl_->write_script);
    if (!reply)
        co_return reply.error();
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        co_return kLeaseLost;
    co_return engine::Ok{};
}

asio::awaitable<engine::Result<std::optional<Consent>>> RedisStore::load_consent(
    const std::string& user
) {
    auto reply = co_await impl_->command(Command(2).arg("GET").arg(key("c", user)).take());
    if (!reply)
        co_return reply.error();
    if (reply->nil())
        co_return std::optional<Consent>{};
    co_return decode_consent(reply->str);
}

asio::awaitable<engine::Result<engine::Ok>> RedisStore::erase_citizen(const std::string& user) {
    std::string call = script_call(
        impl_->erase_script,
        {key("s", user), key("k", user), key("c", user), key("p", user)},
        {message_key_prefix(user), key("m", user) + ":"}
    );
    auto reply = co_await impl_->command(std::move(call), &impl_->erase_script);
    if (!reply)
        co_return reply.error();
    impl_->erased();
    co_return engine::Ok{};
}

asio::awaitable<engine::Result<engine::Ok>> RedisStore::ping() {
    auto reply = co_await impl_->ping_command();
    if (!reply)
        co_return reply.error();
    co_return engine::Ok{};
}

std::string RedisStore::lease_command(const Lease& lease) const {
    return Command(6)
        .arg("SET")
        .arg(key("l", lease.user))
        .arg(lease.token)
        .arg("NX")
        .arg("PX")
        .arg(impl_->options.lease_ttl.count())
        .take();
}

std::string RedisStore::take_over_call(const Lease& lease) const {
    const std::string ttl = std::to_string(impl_->options.lease_ttl.count());
    return script_call(
        impl_->take_over_script, {key("l", lease.user)}, {impl_->lease_prefix, lease.token, ttl}
    );
}

Lease RedisStore::new_lease(const std::string& user) const {
    return Lease{user, impl_->lease_prefix + std::to_string(impl_->lease_seq.fetch_add(1))};
}

asio::awaitable<engine::Result<LeasedState>> RedisStore::acquire_and_load(
    const std::string& user, const std::string& message_id
) {
    Lease lease = new_lease(user);
    std::vector<std::string> cmds;
    cmds.reserve(2);
    cmds.push_back(lease_command(lease));
    cmds.push_back(load_command(user, message_id));
    auto replies = co_await impl_->pipelined(std::move(cmds));
    if (!replies[0])
        co_return replies[0].error();
    if (replies[0]->nil()) {
        // Another instance runs a turn for this citizen: what the MGET read may be overtaken
        // by that turn's write. Wait for the lease, then read again.
        co_return co_await Store::acquire_and_load(user, message_id);
    }
    auto state = decode_load(std::move(replies[1]));
    if (!state) {
        co_await release_lease(std::move(lease));
        co_return state.error();
    }
    co_return LeasedState{std::move(lease), std::move(*state)};
}

asio::awaitable<engine::Result<Lease>> RedisStore::acquire_lease(const std::string& user) {
    Lease lease = new_lease(user);
    const auto deadline = std::chrono::steady_clock::now() + impl_->options.lease_wait;
    std::chrono::milliseconds pause{2};
    std::optional<asio::steady_timer> timer;
    for (;;) {
        auto reply = co_await impl_->command(lease_command(lease));
        if (!reply)
            co_return reply.error();
        if (!reply->nil())
            co_return lease;
        // Held: by a lease this process left behind (taken over at once), or by another
        // instance's turn for this citizen (waited for, briefly and boundedly).
        // Built outside the co_await: g++ 12 cannot keep an initializer list across one.
        std::string take_over = take_over_call(lease);
        auto taken = co_await impl_->command(std::move(take_over), &impl_->take_over_script);
        if (!taken)
            co_return taken.error();
        if (taken->type == REDIS_REPLY_INTEGER && taken->integer == 1)
            co_return lease;
        if (std::chrono::steady_clock::now() + pause > deadline)
            co_return kLeaseTimeout;
        if (!timer)
            timer.emplace(co_await asio::this_coro::executor);
        timer->expires_after(pause);
        co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
}

asio::awaitable<void> RedisStore::release_lease(Lease lease) {
    // Not awaited: a failure leaves the lease to expire by itself (lease_ttl).
    std::string call = script_call(impl_->release_script, {key("l", lease.user)}, {lease.token});
    impl_->send(std::move(call), &impl_->release_script, [](engine::Result<Reply>) {});
    co_return;
}

}  // namespace civicflow::server
