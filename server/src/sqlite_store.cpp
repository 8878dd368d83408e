#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <civicflow/server/logger.hpp>
#include <civicflow/server/sqlite_store.hpp>

#include "job_queue.hpp"
#include "metrics_text.hpp"
#include "sqlite_util.hpp"
#include "state_cache.hpp"
#include "store_job.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

namespace civicflow::server {

namespace asio = boost::asio;
using sqlite::db_error;
using sqlite::Statement;

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

constexpr int kSweepRows = 2000;      // per table per sweep: bounds the pause of the writer
constexpr int kBusyTimeoutMs = 5000;  // how long a statement waits for a lock held elsewhere

const engine::Error kSyncFailed{
    "store",
    "the disk failed to sync the database (see the log event store_sync_failed); writes are "
    "refused until civicflow is restarted"};

struct Statements {
    Statement begin, begin_read, commit, rollback, savepoint, release, rollback_to;
    Statement get_state, get_response, get_consent;
    Statement put_session, put_response, put_consent, put_pending, del_pending;
    Statement del_sessions, del_messages, del_consent, del_pending_user;
    Statement sweep_sessions, sweep_messages, sweep_pending;
    Statement ping;
};

}  // namespace

// What a job needs around it: reads share one read transaction per batch, writes one write
// transaction (each in its own savepoint); maintenance (sweep, checkpoint) needs none open.
enum class Lane { kRead, kWrite, kMaintain };

using Job = detail::StoreJob<SqliteStore::Impl, Lane>;

struct SqliteStore::Impl {
    Options options;
    Clock clock;
    sqlite3* db = nullptr;
    Statements st;

    // Sessions and pending calls of recent citizens, changed only by this writer thread.
    std::unique_ptr<detail::StateCache> cache;

    detail::JobQueue<std::unique_ptr<Job>> queue;  // to the writer thread
    std::thread thread;
    std::atomic<std::uint64_t> commits{0};
    std::atomic<std::uint64_t> writes{0};
    std::chrono::steady_clock::time_point next_sweep;
    // An erasure's WAL truncation that could not run yet (a reader, such as a backup, holds an
    // older snapshot): retried after later batches (at most once a second, at least once per
    // sweep interval) and at close.
    bool truncate_pending = false;
    std::chrono::steady_clock::time_point next_truncate{};

    // Durable commits. The connection runs with synchronous=NORMAL: a commit appends to the WAL
    // without waiting for the disk, and SQLite itself syncs the WAL before every checkpoint and
    // the database after it, so that a checkpoint never loses committed data. What NORMAL
    // leaves out, the fsync of the WAL at each commit, the syncer thread does: it takes the
    // writes of every commit made since its last round, calls fdatasync on the WAL file once
    // (through its own descriptor: fsync applies to the file, whichever descriptor asks) and
    // only then completes them. The writer meanwhile goes on with reads and the next batch, so
    // a load never waits behind the disk, and one fsync covers every commit made while the
    // previous one ran.
    detail::JobQueue<std::unique_ptr<Job>> sync_queue;  // committed, not yet synced
    std::thread sync_thread;
    int wal_fd = -1;
    std::atomic<std::uint64_t> syncs{0};
    // Set for good by the first failed sync (see SqliteStore::open()).
    std::atomic<bool> sync_failed{false};

    // Checkpoints. SQLite's automatic checkpoint runs inside the commit that crosses its
    // threshold, on the writer thread, holding every queued read and write behind it (tens of
    // milliseconds of tail latency). Instead the writer's WAL hook only notes the WAL's size,
    // and a checkpoint thread with its own connection copies the WAL into the database
    // (PASSIVE: it never waits for, nor blocks, the writer). ckpt_mutex keeps it and the
    // erasure's truncating checkpoint from running at once.
    sqlite3* ckpt_db = nullptr;
    std::mutex ckpt_mutex;  // held while checkpointing (either connection)
    std::mutex ckpt_wait_mutex;
    std::condition_variable ckpt_wake;
    bool ckpt_wanted = false;
    bool ckpt_idle = false;
    bool ckpt_stopping = false;
    std::thread ckpt_thread;
    std::atomic<std::uint64_t> checkpoints{0};

    ~Impl() {
        queue.close();
        if (thread.joinable())
            thread.join();
        // Whatever else happens, leave no erased data behind in the WAL.
        if (db != nullptr && truncate_pending)
            truncate_wal(5000);
        // The writer has handed over its last commits: sync them, then stop.
        sync_queue.close();
        if (sync_thread.joinable())
            sync_thread.join();
        {
            std::lock_guard lock(ckpt_wait_mutex);
            ckpt_stopping = true;
        }
        ckpt_wake.notify_one();
        if (ckpt_thread.joinable())
            ckpt_thread.join();
        if (ckpt_db != nullptr)
            sqlite3_close_v2(ckpt_db);
        if (wal_fd >= 0)
            ::close(wal_fd);
        // close_v2: the statements (members, finalized after this body) close it for good.
        if (db != nullptr)
            sqlite3_close_v2(db);
    }

    std::int64_t now() const {
        if (clock)
            return clock();
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()
        )
            .count();
    }

    bool exec(const char* sql) { return sqlite::exec(db, sql); }

    engine::Result<engine::Ok> migrate() {
        return sqlite::migrate(db, "schema_version", kMigrations, "schema");
    }

    engine::Result<engine::Ok> prepare() {
        struct Item {
            Statement* s;
            const char* sql;
        };

        const Item items[] = {
            {&st.begin, "BEGIN IMMEDIATE"},
            {&st.begin_read, "BEGIN"},
            {&st.commit, "COMMIT"},
            {&st.rollback, "ROLLBACK"},
            {&st.savepoint, "SAVEPOINT job"},
            {&st.release, "RELEASE job"},
            {&st.rollback_to, "ROLLBACK TO job"},
            // The session and any pending call in one step.
            {&st.get_state,
             "SELECT s.session, s.expires_at, (SELECT call FROM pending_calls WHERE user = ?1) "
             "FROM (SELECT 1) LEFT JOIN sessions s ON s.user = ?1 AND s.expires_at > ?2"},
            {&st.get_response,
             "SELECT response FROM messages WHERE user = ?1 AND message_id = ?2 "
             "AND expires_at > ?3"},
            {&st.get_consent, "SELECT opted_in, at, channel FROM consent WHERE user = ?1"},
            {&st.put_session,
             "INSERT INTO sessions(user, session, expires_at) VALUES(?1, ?2, ?3) "
             "ON CONFLICT(user) DO UPDATE SET session = excluded.session, "
             "expires_at = excluded.expires_at"},
            {&st.put_response,
             "INSERT OR REPLACE INTO messages(user, message_id, response, expires_at) "
             "VALUES(?1, ?2, ?3, ?4)"},
            {&st.put_consent,
             "INSERT OR REPLACE INTO consent(user, opted_in, at, channel) VALUES(?1, ?2, ?3, ?4)"},
            {&st.put_pending,
             "INSERT OR REPLACE INTO pending_calls(user, call, started_at) VALUES(?1, ?2, ?3)"},
            {&st.del_pending, "DELETE FROM pending_calls WHERE user = ?1"},
            {&st.del_sessions, "DELETE FROM sessions WHERE user = ?1"},
            {&st.del_messages, "DELETE FROM messages WHERE user = ?1"},
            {&st.del_consent, "DELETE FROM consent WHERE user = ?1"},
            {&st.del_pending_user, "DELETE FROM pending_calls WHERE user = ?1"},
            {&st.sweep_sessions,
             "DELETE FROM sessions WHERE user IN (SELECT user FROM sessions "
             "WHERE expires_at <= ?1 LIMIT ?2)"},
            {&st.sweep_messages,
             "DELETE FROM messages WHERE (user, message_id) IN (SELECT user, message_id "
             "FROM messages WHERE expires_at <= ?1 LIMIT ?2)"},
            {&st.sweep_pending, "DELETE FROM pending_calls WHERE started_at <= ?1"},
            {&st.ping, "SELECT 1"},
        };
        for (const Item& item : items) {
            if (!item.s->prepare(db, item.sql))
                return db_error(db, "cannot prepare a statement");
        }
        return engine::Ok{};
    }

    // The writer thread: drain the queue in batches, one transaction per batch.
    void run() {
        std::vector<std::unique_ptr<Job>> batch;
        while (queue.take(batch, options.max_batch, options.sweep_interval, true)) {
            run_batch(batch);
            batch.clear();
            if (truncate_pending && std::chrono::steady_clock::now() >= next_truncate)
                retry_truncate();
            if (std::chrono::steady_clock::now() >= next_sweep) {
                sweep_once();
                next_sweep = std::chrono::steady_clock::now() + options.sweep_interval;
            }
        }
    }

    // The syncer thread (durable stores): see sync_queue.
    void sync_loop() {
        std::vector<std::unique_ptr<Job>> jobs;
        constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
        while (sync_queue.take(jobs, kAll, std::chrono::hours(1), false)) {
            if (jobs.empty())
                continue;
            const Synced synced = sync_failed.load() ? Synced::kFailed : sync_wal();
            if (synced == Synced::kNotYet) {
                Logger::log(LogLevel::kError, {}, "store_sync_unavailable", "store=sqlite");
                for (auto& job : jobs)
                    job->fail(engine::Error{"store", "cannot open the write-ahead log to sync it"});
            } else if (synced == Synced::kFailed) {
                if (!sync_failed.exchange(true)) {
                    Logger::log(
                        LogLevel::kError,
                        {},
                        "store_sync_failed",
                        "store=sqlite writes_refused=until_restart"
                    );
                }
                for (auto& job : jobs)
                    job->fail(kSyncFailed);
            }
            detail::complete_all(jobs);
        }
    }

    enum class Synced { kYes, kNotYet, kFailed };

    // fdatasync of the WAL file. The first time, the descriptor is opened and the directory
    // synced too, so that the WAL file's own entry survives a power cut. kNotYet: that first
    // step failed (no descriptor left, say) and is tried again next time; kFailed: the data
    // sync itself failed, which is final (see SqliteStore::open()).
    Synced sync_wal() {
        if (wal_fd < 0) {
            const std::string wal = options.path + "-wal";
            const int fd = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return Synced::kNotYet;
            const auto slash = options.path.rfind('/');
            const std::string dir =
                slash == std::string::npos ? "." : options.path.substr(0, slash + 1);
            const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            const bool ok = dir_fd >= 0 && ::fsync(dir_fd) == 0;
            if (dir_fd >= 0)
                ::close(dir_fd);
            if (!ok) {
                ::close(fd);
                return Synced::kNotYet;
            }
            wal_fd = fd;
        }
        syncs.fetch_add(1);
        const int rc = options.sync_file ? options.sync_file(wal_fd) : ::fdatasync(wal_fd);
        return rc == 0 ? Synced::kYes : Synced::kFailed;
    }

    void run_batch(std::vector<std::unique_ptr<Job>>& batch) {
        bool checkpoint = false;
        bool any_read = false;
        bool any_write = false;
        std::vector<std::unique_ptr<Job>> finished;  // completed at the end, together
        // Maintenance first, outside any transaction (sweeps and checkpoints need none open).
        for (auto& job : batch) {
            any_read = any_read || job->kind == Lane::kRead;
            any_write = any_write || job->kind == Lane::kWrite;
            if (job->kind == Lane::kMaintain) {
                job->run(*this);
                finished.push_back(std::move(job));
            }
        }
        if (!any_read && !any_write) {
            detail::complete_all(finished);
            return;
        }
        // One transaction for the whole batch: SQLite takes and drops its file locks (fcntl
        // calls) once per transaction, so reads outside one would pay them each. A batch with
        // writes takes the write lock at once (BEGIN IMMEDIATE); reads only, a read snapshot.
        const bool in_tx = (any_write ? st.begin : st.begin_read).exec() == SQLITE_DONE;
        const bool refuse_writes = sync_failed.load();  // read once: the syncer may set it
        engine::Error no_tx = in_tx ? engine::Error{} : db_error(db, "cannot begin a transaction");
        if (refuse_writes)
            no_tx = kSyncFailed;
        // Reads before writes: the server never has a read and a write of one citizen in
        // flight together, so this order cannot change an answer, and every read sees only
        // committed data. They complete at once, before the writes run.
        for (auto& job : batch) {
            if (job && job->kind == Lane::kRead) {
                job->run(*this);  // without a transaction it still runs, as its own
                finished.push_back(std::move(job));
            }
        }
        detail::complete_all(finished);
        std::vector<std::unique_ptr<Job>> written;
        bool writable = in_tx && !refuse_writes;
        // An error (disk full, I/O, memory) can make SQLite roll the whole transaction back:
        // the batch's writes so far went with it, and later ones would each commit on their
        // own, outside the batch and its sync. Then every write of the batch fails.
        const auto transaction_lost = [&] {
            if (!writable || sqlite3_get_autocommit(db) == 0)
                return false;
            no_tx = db_error(db, "the transaction was rolled back");
            writable = false;
            for (auto& done : written) {
                done->fail(no_tx);
                finished.push_back(std::move(done));
            }
            written.clear();
            cache->clear();
            return true;
        };
        transaction_lost();  // by a read's error
        for (auto& job : batch) {
            if (!job)
                continue;
            if (!writable) {
                job->fail(no_tx);
                finished.push_back(std::move(job));
                continue;
            }
            st.savepoint.exec();
            if (job->run(*this)) {
                st.release.exec();
                checkpoint = checkpoint || job->checkpoint_after;
                written.push_back(std::move(job));
            } else {
                finished.push_back(std::move(job));
                if (!transaction_lost()) {
                    st.rollback_to.exec();
                    st.release.exec();
                }
            }
        }
        if (!in_tx) {
            detail::complete_all(finished);
            return;
        }
        if (!writable && sqlite3_get_autocommit(db) != 0) {
            detail::complete_all(finished);
            return;
        }
        if (!any_write) {
            st.commit.exec();  // ends the read snapshot
            return;
        }
        if (st.commit.exec() != SQLITE_DONE) {
            const engine::Error e = db_error(db, "commit failed");
            Logger::log(LogLevel::kError, {}, "store_commit_failed", "store=sqlite");
            st.rollback.exec();
            // The batch's writes changed the cache as they ran; none of them happened.
            cache->clear();
            for (auto& job : written) {
                job->fail(e);
                finished.push_back(std::move(job));
            }
        } else {
            commits.fetch_add(1);
            writes.fetch_add(written.size());
            if (checkpoint) {
                truncate_pending = true;
                retry_truncate();
            }
            if (options.durable) {
                // Acknowledged once the syncer has the WAL on disk (its queue is closed only
                // after this thread has stopped).
                sync_queue.push_all(written);
            } else {
                for (auto& job : written)
                    finished.push_back(std::move(job));
            }
        }
        detail::complete_all(finished);
    }

    // Copies the WAL into the database and truncates it, so that an erased citizen's rows,
    // overwritten in the database (secure_delete), leave no copy in the WAL either. Waits at
    // most `busy_ms` for readers: the writer (and every message queued behind it) waits too.
    bool truncate_wal(int busy_ms) {
        std::lock_guard lock(ckpt_mutex);
        sqlite3_busy_timeout(db, busy_ms);
        int log = 0;
        int done = 0;
        const bool ok =
            sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done) ==
            SQLITE_OK;
        sqlite3_busy_timeout(db, kBusyTimeoutMs);
        return ok;
    }

    void retry_truncate() {
        const bool first = next_truncate == std::chrono::steady_clock::time_point{};
        if (truncate_wal(100)) {
            if (!first)
                Logger::log(LogLevel::kInfo, {}, "erasure_wal_truncated", "store=sqlite");
            truncate_pending = false;
            next_truncate = {};
            return;
        }
        if (first) {
            // The erasure is answered: its rows are gone from the database, and the copies in
            // the WAL go as soon as the reader that holds them back lets go.
            Logger::log(
                LogLevel::kWarn,
                {},
                "erasure_wal_pending",
                "store=sqlite reason=reader_holds_wal retry_ms=1000"
            );
        }
        next_truncate = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }

    // The writer connection's WAL hook (after each commit, on the writer thread).
    static int on_wal_commit(void* arg, sqlite3*, const char*, int pages) {
        auto* self = static_cast<Impl*>(arg);
        if (pages < self->options.checkpoint_pages)
            return SQLITE_OK;
        bool wake = false;
        {
            std::lock_guard lock(self->ckpt_wait_mutex);
            self->ckpt_wanted = true;
            wake = self->ckpt_idle;
            self->ckpt_idle = false;
        }
        if (wake)
            self->ckpt_wake.notify_one();
        return SQLITE_OK;
    }

    // The checkpoint thread: one PASSIVE checkpoint each time the WAL has grown past the
    // threshold. What it cannot copy yet (frames a reader still needs) waits for the next one.
    void checkpoint_loop() {
        for (;;) {
            {
                std::unique_lock lock(ckpt_wait_mutex);
                if (!ckpt_wanted && !ckpt_stopping) {
                    ckpt_idle = true;
                    ckpt_wake.wait(lock, [&] { return ckpt_wanted || ckpt_stopping; });
                    ckpt_idle = false;
                }
                if (ckpt_stopping)
                    return;
                ckpt_wanted = false;
            }
            std::lock_guard lock(ckpt_mutex);
            int log = 0;
            int done = 0;
            const int rc =
                sqlite3_wal_checkpoint_v2(ckpt_db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
            if (rc == SQLITE_OK) {
                checkpoints.fetch_add(1);
            } else if (rc != SQLITE_BUSY) {
                Logger::log(LogLevel::kWarn, {}, "store_checkpoint_failed", "store=sqlite");
            }
        }
    }

    std::int64_t sweep_once() {
        const std::int64_t t = now();
        if (st.begin.exec() != SQLITE_DONE)
            return -1;
        std::int64_t deleted = 0;
        st.sweep_sessions.bind(1, t).bind(2, std::int64_t{kSweepRows}).exec();
        deleted += sqlite3_changes(db);
        st.sweep_messages.bind(1, t).bind(2, std::int64_t{kSweepRows}).exec();
        deleted += sqlite3_changes(db);
        // A pending call nobody came back for within the message retention is dropped too.
        st.sweep_pending.bind(1, t - options.message_ttl.count()).exec();
        const int pending_deleted = sqlite3_changes(db);
        deleted += pending_deleted;
        if (st.commit.exec() != SQLITE_DONE) {
            st.rollback.exec();
            return -1;
        }
        if (pending_deleted > 0)
            cache->drop_pending(t - options.message_ttl.count());
        return deleted;
    }
};

namespace {

template <typename T, typename Op>
asio::awaitable<engine::Result<T>> submit(
    SqliteStore::Impl& impl, Lane lane, bool checkpoint_after, Op op
) {
    return detail::submit<T>(
        impl.queue,
        lane,
        checkpoint_after,
        engine::Error{"store", "the session store is closed"},
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
    impl->cache = std::make_unique<detail::StateCache>(impl->options.cache_entries);
    impl->clock = std::move(clock);
    const char* vfs = impl->options.vfs.empty() ? nullptr : impl->options.vfs.c_str();
    const int rc = sqlite3_open_v2(
        impl->options.path.c_str(),
        &impl->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        vfs
    );
    if (rc != SQLITE_OK) {
        return engine::Error{
            "store",
            "cannot open the SQLite database '" + impl->options.path +
                "': " + (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory")};
    }
    sqlite3_busy_timeout(impl->db, kBusyTimeoutMs);
    // WAL: readers never block the writer and a commit is one append; durable stores have the
    // syncer thread fsync the WAL before a write is acknowledged (see Impl::sync_queue), which
    // with synchronous=NORMAL gives what FULL gives without stalling the writer on the disk.
    // secure_delete: deleted rows are overwritten, so erasure leaves nothing.
    const std::string pragmas =
        "PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON; PRAGMA synchronous=NORMAL; "
        "PRAGMA foreign_keys=OFF;";
    if (!impl->exec(pragmas.c_str())) {
        return engine::Error{
            "store",
            "cannot configure the SQLite database '" + impl->options.path +
                "': " + sqlite3_errmsg(impl->db)};
    }
    {
        Statement mode;
        if (!mode.prepare(impl->db, "PRAGMA journal_mode") || mode.step() != SQLITE_ROW ||
            mode.text(0) != "wal") {
            return engine::Error{
                "store",
                "the SQLite database '" + impl->options.path +
                    "' cannot use WAL mode (a network file system?)"};
        }
    }
    if (auto m = impl->migrate(); !m) {
        return engine::Error{
            "store", "cannot migrate '" + impl->options.path + "': " + m.error().message};
    }
    if (auto p = impl->prepare(); !p)
        return p.error();
    // The checkpoint thread's connection (see Impl::ckpt_db); synchronous=NORMAL still syncs
    // the WAL before a checkpoint and the database after it.
    if (sqlite3_open_v2(
            impl->options.path.c_str(),
            &impl->ckpt_db,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
            vfs
        ) != SQLITE_OK ||
        sqlite3_exec(impl->ckpt_db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr) !=
            SQLITE_OK) {
        return engine::Error{
            "store",
            "cannot open a checkpoint connection to '" + impl->options.path + "': " +
                (impl->ckpt_db != nullptr ? sqlite3_errmsg(impl->ckpt_db) : "out of memory")};
    }
    sqlite3_busy_timeout(impl->ckpt_db, kBusyTimeoutMs);
    impl->next_sweep = std::chrono::steady_clock::now();
    Impl* raw = impl.get();
    // Replaces SQLite's automatic checkpoint on the writer connection.
    sqlite3_wal_hook(impl->db, &Impl::on_wal_commit, raw);
    impl->ckpt_thread = std::thread([raw] { raw->checkpoint_loop(); });
    impl->thread = std::thread([raw] { raw->run(); });
    if (impl->options.durable)
        impl->sync_thread = std::thread([raw] { raw->sync_loop(); });
    return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

asio::awaitable<engine::Result<CitizenState>> SqliteStore::load(
    const std::string& user, const std::string& message_id
) {
    // A message without an id needs only the session and pending call: from the cache when
    // the citizen is in it, without a trip to the writer thread.
    // After a failed sync nothing is read either: what the store holds may not be on disk,
    // and a stored response would answer a retry with 200 for a turn a power cut can lose.
    if (impl_->sync_failed.load())
        co_return kSyncFailed;
    if (message_id.empty()) {
        if (auto cached = impl_->cache->find(user, impl_->now()))
            co_return std::move(*cached);
    }
    co_return co_await submit<CitizenState>(
        *impl_,
        Lane::kRead,
        false,
        [&user, &message_id](Impl& d) -> engine::Result<CitizenState> {
            if (d.sync_failed.load())
                return kSyncFailed;
            CitizenState out;
            const std::int64_t t = d.now();
            Statement& s = d.st.get_state;
            s.bind(1, user).bind(2, t);
            int rc = s.step();
            std::string pending;
            std::int64_t expires_at = 0;
            if (rc == SQLITE_ROW) {
                if (!s.null(0)) {
                    out.session = s.text(0);
                    expires_at = s.int64(1);
                }
                pending = s.text(2);
            }
            s.reset();
            if (rc != SQLITE_ROW)
                return db_error(d.db, "cannot read a session");
            if (!message_id.empty()) {
                Statement& r = d.st.get_response;
                r.bind(1, user).bind(2, message_id).bind(3, t);
                rc = r.step();
                if (rc == SQLITE_ROW)
                    out.response = r.text(0);
                r.reset();
                if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                    return db_error(d.db, "cannot read a message id");
            }
            if (!pending.empty()) {
                auto decoded = decode_pending_call(pending);
                // A malformed record is dropped on the next write rather than blocking the
                // citizen; it can only come from outside tampering.
                if (decoded)
                    out.pending = std::move(*decoded);
            }
            d.cache->fill(user, out.session, expires_at, out.pending);
            return out;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::write(TurnWrite w) {
    return submit<engine::Ok>(
        *impl_,
        Lane::kWrite,
        false,
        [w = std::move(w)](Impl& d) -> engine::Result<engine::Ok> {
            const std::int64_t t = d.now();
            if (w.session) {
                if (d.st.put_session.bind(1, w.user)
                        .bind(2, *w.session)
                        .bind(3, t + w.session_ttl_ms)
                        .exec() != SQLITE_DONE) {
                    return db_error(d.db, "cannot store a session");
                }
            }
            if (!w.message_id.empty()) {
                if (d.st.put_response.bind(1, w.user)
                        .bind(2, w.message_id)
                        .bind(3, w.response)
                        .bind(4, t + d.options.message_ttl.count())
                        .exec() != SQLITE_DONE) {
                    return db_error(d.db, "cannot store a message id");
                }
            }
            if (w.consent) {
                if (d.st.put_consent.bind(1, w.user)
                        .bind(2, std::int64_t{w.consent->opted_in ? 1 : 0})
                        .bind(3, w.consent->at)
                        .bind(4, w.consent->channel)
                        .exec() != SQLITE_DONE) {
                    return db_error(d.db, "cannot store consent");
                }
            }
            if (w.clear_pending && d.st.del_pending.bind(1, w.user).exec() != SQLITE_DONE)
                return db_error(d.db, "cannot clear a pending call");
            if (w.pending) {
                if (d.st.put_pending.bind(1, w.user)
                        .bind(2, encode_pending_call(*w.pending))
                        .bind(3, w.pending->started_at)
                        .exec() != SQLITE_DONE) {
                    return db_error(d.db, "cannot store a pending call");
                }
            }
            d.cache->apply(w, t);
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
        [&user](Impl& d) -> engine::Result<std::optional<Consent>> {
            Statement& s = d.st.get_consent;
            s.bind(1, user);
            const int rc = s.step();
            std::optional<Consent> out;
            if (rc == SQLITE_ROW)
                out = Consent{s.int64(0) != 0, s.int64(1), s.text(2)};
            s.reset();
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_error(d.db, "cannot read consent");
            return out;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::erase_citizen(const std::string& user) {
    return submit<
        engine::Ok>(*impl_, Lane::kWrite, true, [&user](Impl& d) -> engine::Result<engine::Ok> {
        d.cache->erase(user);
        for (Statement* s :
             {&d.st.del_sessions, &d.st.del_messages, &d.st.del_consent, &d.st.del_pending_user}) {
            if (s->bind(1, user).exec() != SQLITE_DONE)
                return db_error(d.db, "cannot erase a citizen");
        }
        return engine::Ok{};
    });
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::ping() {
    return submit<engine::Ok>(
        *impl_,
        Lane::kRead,
        false,
        [](Impl& d) -> engine::Result<engine::Ok> {
            if (d.sync_failed.load())
                return kSyncFailed;
            Statement& s = d.st.ping;
            const int rc = s.step();
            s.reset();
            if (rc != SQLITE_ROW)
                return db_error(d.db, "ping failed");
            return engine::Ok{};
        }
    );
}

asio::awaitable<engine::Result<std::int64_t>> SqliteStore::sweep() {
    return submit<std::int64_t>(
        *impl_,
        Lane::kMaintain,
        false,
        [](Impl& d) -> engine::Result<std::int64_t> {
            const std::int64_t n = d.sweep_once();
            if (n < 0)
                return db_error(d.db, "sweep failed");
            return n;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> SqliteStore::checkpoint() {
    return submit<engine::Ok>(
        *impl_,
        Lane::kMaintain,
        false,
        [](Impl& d) -> engine::Result<engine::Ok> {
            if (!d.truncate_wal(kBusyTimeoutMs))
                return db_error(d.db, "checkpoint failed");
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

std::string SqliteStore::metrics() const {
    using detail::append_metric;
    std::string out;
    append_metric(
        out,
        "civicflow_store_commits_total",
        "counter",
        "SQLite transactions committed (one per batch).",
        impl_->commits.load()
    );
    append_metric(
        out,
        "civicflow_store_writes_total",
        "counter",
        "Turn writes committed (group commit: more than commits under load).",
        impl_->writes.load()
    );
    append_metric(
        out,
        "civicflow_store_syncs_total",
        "counter",
        "fdatasync calls on the WAL.",
        impl_->syncs.load()
    );
    append_metric(
        out,
        "civicflow_store_checkpoints_total",
        "counter",
        "WAL checkpoints by the checkpoint thread.",
        impl_->checkpoints.load()
    );
    append_metric(
        out,
        "civicflow_store_cache_hits_total",
        "counter",
        "Loads answered from the session cache.",
        impl_->cache->hits()
    );
    append_metric(
        out,
        "civicflow_store_cache_misses_total",
        "counter",
        "Loads without a message id that read the database.",
        impl_->cache->misses()
    );
    append_metric(
        out,
        "civicflow_store_cache_sessions",
        "gauge",
        "Citizens in the session cache.",
        impl_->cache->size()
    );
    return out;
}

std::uint64_t SqliteStore::cache_hits() const {
    return impl_->cache->hits();
}

std::uint64_t SqliteStore::cache_misses() const {
    return impl_->cache->misses();
}

std::uint64_t SqliteStore::checkpoints() const {
    return impl_->checkpoints.load();
}

}  // namespace civicflow::server
