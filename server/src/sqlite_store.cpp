#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <civicflow/server/logger.hpp>
#include <civicflow/server/sqlite_store.hpp>

#include <sqlite3.h>

namespace civicflow::server {

namespace asio = boost::asio;

struct Job;  // one queued operation (below)

namespace {

// Numbered migrations: entry i takes the schema from version i to i + 1. Never edit a shipped
// entry; append a new one.
const char* const kMigrations[] = {
    // 0 -> 1
    "CREATE TABLE sessions(user TEXT PRIMARY KEY, session TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX sessions_expiry ON sessions(expires_at);"
    "CREATE TABLE messages(user TEXT NOT NULL, message_id TEXT NOT NULL,"
    " response TEXT NOT NULL, expires_at INTEGER NOT NULL,"
    " PRIMARY KEY(user, message_id)) WITHOUT ROWID;"
    "CREATE INDEX messages_expiry ON messages(expires_at);"
    "CREATE TABLE consent(user TEXT PRIMARY KEY, opted_in INTEGER NOT NULL,"
    " at INTEGER NOT NULL, channel TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE pending_calls(user TEXT PRIMARY KEY, call TEXT NOT NULL,"
    " started_at INTEGER NOT NULL) WITHOUT ROWID;",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion);

constexpr int kSweepRows = 2000;  // per table per sweep: bounds the pause of the writer

engine::Error db_error(sqlite3* db, const char* what) {
    // SQLite's messages name tables and constraints, never bound values.
    return engine::Error{"store", std::string(what) + ": " + sqlite3_errmsg(db)};
}

// A prepared statement, reset after each use.
class Statement {
public:
    Statement() = default;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    ~Statement() { sqlite3_finalize(stmt_); }

    bool prepare(sqlite3* db, const char* sql) {
        return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) ==
               SQLITE_OK;
    }

    Statement& bind(int i, const std::string& s) {
        sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
        return *this;
    }

    Statement& bind(int i, std::int64_t v) {
        sqlite3_bind_int64(stmt_, i, v);
        return *this;
    }

    // Runs to completion (writes); returns the last result code.
    int exec() {
        int rc = 0;
        while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) {
        }
        reset();
        return rc;
    }

    int step() { return sqlite3_step(stmt_); }

    std::string text(int col) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
        return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
    }

    std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }

    bool null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

    void reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

private:
    sqlite3_stmt* stmt_ = nullptr;
};

struct Statements {
    Statement begin, commit, rollback, savepoint, release, rollback_to;
    Statement get_state, get_response, get_consent;
    Statement put_session, put_response, put_consent, put_pending, del_pending;
    Statement del_sessions, del_messages, del_consent, del_pending_user;
    Statement sweep_sessions, sweep_messages, sweep_pending;
    Statement ping;
};

// One connection and the statements prepared on it.
struct Conn {
    Conn() = default;
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    ~Conn() {
        // close_v2: the statements (members, finalized after this body) close it for good.
        if (db != nullptr)
            sqlite3_close_v2(db);
    }

    sqlite3* db = nullptr;
    Statements st;
};

// Which thread and connection runs a job. Reads have their own connection and thread, so a
// load never waits behind a commit's fsync (WAL lets a reader run beside the writer); writes
// are batched into one transaction per commit; maintenance (sweep, checkpoint) runs on the
// writer's connection outside the transaction.
enum class Lane { kRead, kWrite, kMaintain };

// A thread and its queue.
struct Worker {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::unique_ptr<Job>> queue;
    bool stopping = false;
    std::thread thread;

    void stop() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        wake.notify_one();
        if (thread.joinable())
            thread.join();
    }
};

}  // namespace

// One queued operation: runs on its lane's thread, completes on its caller's executor.
struct Job {
    virtual ~Job() = default;
    // Runs the operation; false when it failed (its result is then already the error).
    virtual bool run(SqliteStore::Impl& impl, Conn& conn) = 0;
    virtual void fail(const engine::Error& error) = 0;
    virtual void complete() = 0;
    Lane lane = Lane::kRead;
    bool checkpoint_after = false;  // erasure: leave no old page image in the WAL
};

struct SqliteStore::Impl {
    Options options;
    Clock clock;
    Conn writer;  // the only connection that writes
    Conn reader;  // loads, consent reads, ping
    Worker write_worker;
    Worker read_worker;
    std::atomic<std::uint64_t> commits{0};
    std::atomic<std::uint64_t> writes{0};
    std::chrono::steady_clock::time_point next_sweep;

    ~Impl() {
        write_worker.stop();
        read_worker.stop();
    }

    std::int64_t now() const {
        if (clock)
            return clock();
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()
        )
            .count();
    }

    static bool exec(sqlite3* db, const char* sql) {
        return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    }

    engine::Result<engine::Ok> migrate() {
        sqlite3* db = writer.db;
        if (!exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)"))
            return db_error(db, "cannot create the schema version table");
        int version = 0;
        {
            Statement q;
            if (!q.prepare(db, "SELECT version FROM schema_version"))
                return db_error(db, "cannot read the schema version");
            if (q.step() == SQLITE_ROW)
                version = static_cast<int>(q.int64(0));
        }
        if (version > kSchemaVersion) {
            return engine::Error{
                "store",
                "the database has schema version " + std::to_string(version) +
                    ", newer than this build's " + std::to_string(kSchemaVersion) +
                    "; refusing to open it"};
        }
        for (int v = version; v < kSchemaVersion; ++v) {
            if (!exec(db, "BEGIN IMMEDIATE"))
                return db_error(db, "cannot begin a migration");
            const std::string set =
                "DELETE FROM schema_version; INSERT INTO schema_version "
                "VALUES(" +
                std::to_string(v + 1) + ")";
            if (!exec(db, kMigrations[v]) || !exec(db, set.c_str())) {
                engine::Error e = db_error(db, "migration failed");
                exec(db, "ROLLBACK");
                return e;
            }
            if (!exec(db, "COMMIT"))
                return db_error(db, "cannot commit a migration");
        }
        return engine::Ok{};
    }

    // Prepares what each connection runs: the reader only reads.
    static engine::Result<engine::Ok> prepare(Conn& c, bool for_writer) {
        Statements& st = c.st;

        struct Item {
            Statement* s;
            const char* sql;
            bool writer;
        };

        const Item items[] = {
            {&st.begin, "BEGIN IMMEDIATE", true},
            {&st.commit, "COMMIT", true},
            {&st.rollback, "ROLLBACK", true},
            {&st.savepoint, "SAVEPOINT job", true},
            {&st.release, "RELEASE job", true},
            {&st.rollback_to, "ROLLBACK TO job", true},
            // The session and any pending call in one step.
            {&st.get_state,
             "SELECT (SELECT session FROM sessions WHERE user = ?1 AND expires_at > ?2), "
             "(SELECT call FROM pending_calls WHERE user = ?1)",
             false},
            {&st.get_response,
             "SELECT response FROM messages WHERE user = ?1 AND message_id = ?2 "
             "AND expires_at > ?3",
             false},
            {&st.get_consent, "SELECT opted_in, at, channel FROM consent WHERE user = ?1", false},
            {&st.put_session,
             "INSERT INTO sessions(user, session, expires_at) VALUES(?1, ?2, ?3) "
             "ON CONFLICT(user) DO UPDATE SET session = excluded.session, "
             "expires_at = excluded.expires_at",
             true},
            {&st.put_response,
             "INSERT OR REPLACE INTO messages(user, message_id, response, expires_at) "
             "VALUES(?1, ?2, ?3, ?4)",
             true},
            {&st.put_consent,
             "INSERT OR REPLACE INTO consent(user, opted_in, at, channel) VALUES(?1, ?2, ?3, ?4)",
             true},
            {&st.put_pending,
             "INSERT OR REPLACE INTO pending_calls(user, call, started_at) VALUES(?1, ?2, ?3)",
             true},
            {&st.del_pending, "DELETE FROM pending_calls WHERE user = ?1", true},
            {&st.del_sessions, "DELETE FROM sessions WHERE user = ?1", true},
            {&st.del_messages, "DELETE FROM messages WHERE user = ?1", true},
            {&st.del_consent, "DELETE FROM consent WHERE user = ?1", true},
            {&st.del_pending_user, "DELETE FROM pending_calls WHERE user = ?1", true},
            {&st.sweep_sessions,
             "DELETE FROM sessions WHERE user IN (SELECT user FROM sessions "
             "WHERE expires_at <= ?1 LIMIT ?2)",
             true},
            {&st.sweep_messages,
             "DELETE FROM messages WHERE (user, message_id) IN (SELECT user, message_id "
             "FROM messages WHERE expires_at <= ?1 LIMIT ?2)",
             true},
            {&st.sweep_pending, "DELETE FROM pending_calls WHERE started_at <= ?1", true},
            {&st.ping, "SELECT 1", false},
        };
        for (const Item& item : items) {
            if (item.writer && !for_writer)
                continue;
            if (!item.s->prepare(c.db, item.sql))
                return db_error(c.db, "cannot prepare a statement");
        }
        if (!for_writer) {
            // The reader's batches: one read transaction each (deferred BEGIN), so one WAL
            // read lock per batch rather than one per statement.
            if (!st.begin.prepare(c.db, "BEGIN") || !st.commit.prepare(c.db, "COMMIT"))
                return db_error(c.db, "cannot prepare a statement");
        }
        return engine::Ok{};
    }

    void enqueue(std::unique_ptr<Job> job) {
        Worker& w = job->lane == Lane::kRead ? read_worker : write_worker;
        {
            std::lock_guard lock(w.mutex);
            w.queue.push_back(std::move(job));
        }
        w.wake.notify_one();
    }

    // Takes up to max_batch jobs, waiting at most `wait` for the first; false when stopping.
    bool take(Worker& w, std::vector<std::unique_ptr<Job>>& batch, std::chrono::milliseconds wait) {
        std::unique_lock lock(w.mutex);
        w.wake.wait_for(lock, wait, [&] { return w.stopping || !w.queue.empty(); });
        if (w.stopping && w.queue.empty())
            return false;
        while (!w.queue.empty() && batch.size() < options.max_batch) {
            batch.push_back(std::move(w.queue.front()));
            w.queue.pop_front();
        }
        return true;
    }

    // The reader thread: every job it has taken runs in one read transaction. A load is only
    // queued once the citizen's previous write has committed (the server runs one message of a
    // citizen at a time and acknowledges a write after its commit), and the transaction's
    // snapshot is taken after the jobs were taken, so it never misses that write.
    void read_loop() {
        std::vector<std::unique_ptr<Job>> batch;
        while (take(read_worker, batch, std::chrono::milliseconds(60'000))) {
            const bool tx = reader.st.begin.exec() == SQLITE_DONE;
            for (auto& job : batch) {
                job->run(*this, reader);
                job->complete();
            }
            if (tx)
                reader.st.commit.exec();
            batch.clear();
        }
    }

    // The writer thread: drain the queue in batches, one transaction per batch of writes.
    void write_loop() {
        std::vector<std::unique_ptr<Job>> batch;
        while (take(write_worker, batch, options.sweep_interval)) {
            run_batch(batch);
            batch.clear();
            if (std::chrono::steady_clock::now() >= next_sweep) {
                sweep_once();
                next_sweep = std::chrono::steady_clock::now() + options.sweep_interval;
            }
        }
    }

    void run_batch(std::vector<std::unique_ptr<Job>>& batch) {
        Statements& st = writer.st;
        bool in_tx = false;
        bool checkpoint = false;
        std::vector<Job*> written;
        // Maintenance first, outside the transaction (sweeps and checkpoints need none open).
        for (auto& job : batch) {
            if (job->lane == Lane::kMaintain) {
                job->run(*this, writer);
                job->complete();
            }
        }
        for (auto& job : batch) {
            if (job->lane != Lane::kWrite)
                continue;
            if (!in_tx) {
                if (st.begin.exec() != SQLITE_DONE) {
                    job->fail(db_error(writer.db, "cannot begin a transaction"));
                    job->complete();
                    continue;
                }
                in_tx = true;
            }
            st.savepoint.exec();
            if (job->run(*this, writer)) {
                st.release.exec();
                written.push_back(job.get());
                checkpoint = checkpoint || job->checkpoint_after;
            } else {
                st.rollback_to.exec();
                st.release.exec();
                job->complete();
            }
        }
        if (!in_tx)
            return;
        if (st.commit.exec() != SQLITE_DONE) {
            const engine::Error e = db_error(writer.db, "commit failed");
            Logger::log(LogLevel::kError, {}, "store_commit_failed", "store=sqlite");
            st.rollback.exec();
            for (Job* job : written)
                job->fail(e);
        } else {
            commits.fetch_add(1);
            writes.fetch_add(written.size());
            if (checkpoint)
                truncate_wal();
        }
        for (Job* job : written)
            job->complete();
    }

    bool truncate_wal() {
        int log = 0;
        int done = 0;
        return sqlite3_wal_checkpoint_v2(
                   writer.db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done
               ) == SQLITE_OK;
    }

    std::int64_t sweep_once() {
        Statements& st = writer.st;
        const std::int64_t t = now();
        if (st.begin.exec() != SQLITE_DONE)
            return -1;
        std::int64_t deleted = 0;
        st.sweep_sessions.bind(1, t).bind(2, std::int64_t{kSweepRows}).exec();
        deleted += sqlite3_changes(writer.db);
        st.sweep_messages.bind(1, t).bind(2, std::int64_t{kSweepRows}).exec();
        deleted += sqlite3_changes(writer.db);
        // A pending call nobody came back for within the message retention is dropped too.
        st.sweep_pending.bind(1, t - options.message_ttl.count()).exec();
        deleted += sqlite3_changes(writer.db);
        if (st.commit.exec() != SQLITE_DONE) {
            st.rollback.exec();
            return -1;
        }
        return deleted;
    }
};

namespace {

// A Job whose operation returns Result<T>; the handler gets it on its own executor, and the
// executor counts as busy meanwhile (an io_context waiting on us must not run out of work).
template <typename T, typename Op, typename Handler>
struct OpJob final : Job {
    using Executor = decltype(asio::prefer(
        std::declval<asio::associated_executor_t<Handler, asio::any_io_executor>>(),
        asio::execution::outstanding_work.tracked
    ));

    OpJob(Op o, Handler h, const asio::any_io_executor& fallback)
        : op(std::move(o))
        , handler(std::move(h))
        , work(asio::prefer(
              asio::get_associated_executor(handler, fallback),
              asio::execution::outstanding_work.tracked
          )) {}

    bool run(SqliteStore::Impl& impl, Conn& conn) override {
        result.emplace(op(impl, conn));
        return result->has_value();
    }

    void fail(const engine::Error& error) override { result.emplace(error); }

    void complete() override {
        asio::post(work, [h = std::move(handler), r = std::move(*result)]() mutable {
            std::move(h)(std::move(r));
        });
    }

    Op op;
    Handler handler;
    Executor work;
    std::optional<engine::Result<T>> result;
};

// Not a coroutine itself: async_initiate's awaitable owns the operation until it is queued
// (g++ 12 mishandles lambdas moved through an extra coroutine frame).
template <typename T, typename Op>
asio::awaitable<engine::Result<T>> submit(
    SqliteStore::Impl& impl, Lane lane, bool checkpoint_after, Op op
) {
    return asio::async_initiate<decltype(asio::use_awaitable), void(engine::Result<T>)>(
        [&impl, lane, checkpoint_after](auto handler, Op o) {
            const asio::any_io_executor fallback = asio::system_executor();
            auto job = std::make_unique<OpJob<T, Op, decltype(handler)>>(
                std::move(o), std::move(handler), fallback
            );
            job->lane = lane;
            job->checkpoint_after = checkpoint_after;
            impl.enqueue(std::move(job));
        },
        asio::use_awaitable,
        std::move(op)
    );
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

SqliteStore::~SqliteStore() = default;

engine::Result<std::unique_ptr<SqliteStore>> SqliteStore::open(Options options, Clock clock) {
    auto impl = std::make_unique<Impl>();
    impl->options = std::move(options);
    impl->clock = std::move(clock);
    const std::string& path = impl->options.path;
    sqlite3*& db = impl->writer.db;
    const int rc = sqlite3_open_v2(
        path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr
    );
    if (rc != SQLITE_OK) {
        return engine::Error{
            "store",
            "cannot open the SQLite database '" + path +
                "': " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory")};
    }
    sqlite3_busy_timeout(db, 5000);
    // WAL: readers never block the writer and a commit is one append (plus one fsync with
    // synchronous=FULL). secure_delete: deleted rows are overwritten, so erasure leaves nothing.
    const std::string pragmas =
        std::string("PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON; PRAGMA synchronous=") +
        (impl->options.durable ? "FULL" : "NORMAL") + "; PRAGMA foreign_keys=OFF;";
    if (!Impl::exec(db, pragmas.c_str())) {
        return engine::Error{
            "store", "cannot configure the SQLite database '" + path + "': " + sqlite3_errmsg(db)};
    }
    {
        Statement mode;
        if (!mode.prepare(db, "PRAGMA journal_mode") || mode.step() != SQLITE_ROW ||
            mode.text(0) != "wal") {
            return engine::Error{
                "store",
                "the SQLite database '" + path + "' cannot use WAL mode (a network file system?)"};
        }
    }
    if (auto m = impl->migrate(); !m)
        return engine::Error{"store", "cannot migrate '" + path + "': " + m.error().message};
    if (auto p = Impl::prepare(impl->writer, true); !p)
        return p.error();
    // The reader: a second connection to the same file, opened once the schema exists, and
    // refusing writes (query_only) so that every write goes through the writer's batches.
    sqlite3*& rdb = impl->reader.db;
    if (sqlite3_open_v2(path.c_str(), &rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
            SQLITE_OK ||
        !Impl::exec(rdb, "PRAGMA query_only=ON")) {
        return engine::Error{
            "store",
            "cannot open a reading connection to '" + path +
                "': " + (rdb != nullptr ? sqlite3_errmsg(rdb) : "out of memory")};
    }
    sqlite3_busy_timeout(rdb, 5000);
    if (auto p = Impl::prepare(impl->reader, false); !p)
        return p.error();
    impl->next_sweep = std::chrono::steady_clock::now();
    Impl* raw = impl.get();
    impl->write_worker.thread = std::thread([raw] { raw->write_loop(); });
    impl->read_worker.thread = std::thread([raw] { raw->read_loop(); });
    return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

asio::awaitable<engine::Result<CitizenState>> SqliteStore::load(
    const std::string& user, const std::string& message_id
) {
    return submit<CitizenState>(
        *impl_,
        Lane::kRead,
        false,
        [&user, &message_id](Impl& d, Conn& c) -> engine::Result<CitizenState> {
            CitizenState out;
            const std::int64_t t = d.now();
            Statement& s = c.st.get_state;
            s.bind(1, user).bind(2, t);
            int rc = s.step();
            std::string pending;
            if (rc == SQLITE_ROW) {
                if (!s.null(0))
                    out.session = s.text(0);
                pending = s.text(1);
            }
            s.reset();
            if (rc != SQLITE_ROW)
                return db_error(c.db, "cannot read a session");
            if (!message_id.empty()) {
                Statement& r = c.st.get_response;
                r.bind(1, user).bind(2, message_id).bind(3, t);
                rc = r.step();
                if (rc == SQLITE_ROW)
                    out.response = r.text(0);
                r.reset();
                if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                    return db_error(c.db, "cannot read a message id");
            }
            if (!pending.empty()) {
                auto decoded = decode_pending_call(pending);
                // A malformed record is dropped on the next write rather than blocking the
                // citizen; it can only come from outside tampering.
                if (decoded)
                    out.pending = std::move(*decoded);
            }
            return out;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::write(TurnWrite w) {
    return submit<engine::Ok>(
        *impl_,
        Lane::kWrite,
        false,
        [w = std::move(w)](Impl& d, Conn& c) -> engine::Result<engine::Ok> {
            const std::int64_t t = d.now();
            Statements& st = c.st;
            if (w.session) {
                if (st.put_session.bind(1, w.user)
                        .bind(2, *w.session)
                        .bind(3, t + w.session_ttl_ms)
                        .exec() != SQLITE_DONE) {
                    return db_error(c.db, "cannot store a session");
                }
            }
            if (!w.message_id.empty()) {
                if (st.put_response.bind(1, w.user)
                        .bind(2, w.message_id)
                        .bind(3, w.response)
                        .bind(4, t + d.options.message_ttl.count())
                        .exec() != SQLITE_DONE) {
                    return db_error(c.db, "cannot store a message id");
                }
            }
            if (w.consent) {
                if (st.put_consent.bind(1, w.user)
                        .bind(2, std::int64_t{w.consent->opted_in ? 1 : 0})
                        .bind(3, w.consent->at)
                        .bind(4, w.consent->channel)
                        .exec() != SQLITE_DONE) {
                    return db_error(c.db, "cannot store consent");
                }
            }
            if (w.clear_pending && st.del_pending.bind(1, w.user).exec() != SQLITE_DONE)
                return db_error(c.db, "cannot clear a pending call");
            if (w.pending) {
                if (st.put_pending.bind(1, w.user)
                        .bind(2, encode_pending_call(*w.pending))
                        .bind(3, w.pending->started_at)
                        .exec() != SQLITE_DONE) {
                    return db_error(c.db, "cannot store a pending call");
                }
            }
            return engine::Ok{};
        }
    );
}

asio::awaitable<engine::Result<std::optional<Consent>>> SqliteStore::load_consent(
    const std::string& user
) {
    return submit<std::optional<Consent>>(
        *impl_,
        Lane::kRead,
        false,
        [&user](Impl&, Conn& c) -> engine::Result<std::optional<Consent>> {
            Statement& s = c.st.get_consent;
            s.bind(1, user);
            const int rc = s.step();
            std::optional<Consent> out;
            if (rc == SQLITE_ROW)
                out = Consent{s.int64(0) != 0, s.int64(1), s.text(2)};
            s.reset();
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_error(c.db, "cannot read consent");
            return out;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::erase_citizen(const std::string& user) {
    return submit<engine::Ok>(
        *impl_,
        Lane::kWrite,
        true,
        [&user](Impl&, Conn& c) -> engine::Result<engine::Ok> {
            for (Statement* s :
                 {&c.st.del_sessions,
                  &c.st.del_messages,
                  &c.st.del_consent,
                  &c.st.del_pending_user}) {
                if (s->bind(1, user).exec() != SQLITE_DONE)
                    return db_error(c.db, "cannot erase a citizen");
            }
            return engine::Ok{};
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::ping() {
    // On the reader: /readyz answers quickly even while a commit waits for the disk.
    return submit<engine::Ok>(
        *impl_,
        Lane::kRead,
        false,
        [](Impl&, Conn& c) -> engine::Result<engine::Ok> {
            Statement& s = c.st.ping;
            const int rc = s.step();
            s.reset();
            if (rc != SQLITE_ROW)
                return db_error(c.db, "ping failed");
            return engine::Ok{};
        }
    );
}

asio::awaitable<engine::Result<std::int64_t>> SqliteStore::sweep() {
    return submit<std::int64_t>(
        *impl_,
        Lane::kMaintain,
        false,
        [](Impl& d, Conn& c) -> engine::Result<std::int64_t> {
            const std::int64_t n = d.sweep_once();
            if (n < 0)
                return db_error(c.db, "sweep failed");
            return n;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::checkpoint() {
    return submit<engine::Ok>(
        *impl_,
        Lane::kMaintain,
        false,
        [](Impl& d, Conn& c) -> engine::Result<engine::Ok> {
            if (!d.truncate_wal())
                return db_error(c.db, "checkpoint failed");
            return engine::Ok{};
        }
    );
}

std::uint64_t SqliteStore::commits() const {
    return impl_->commits.load();
}

std::uint64_t SqliteStore::writes() const {
    return impl_->writes.load();
}

}  // namespace civicflow::server
