#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include <civicflow/server/channel_sqlite_store.hpp>
#include <civicflow/server/logger.hpp>

#include "job_queue.hpp"
#include "sqlite_util.hpp"
#include "store_job.hpp"

#include <sqlite3.h>

namespace civicflow::server {

namespace asio = boost::asio;
using sqlite::db_error;
using sqlite::Statement;

namespace {

using State = OutboxItem::State;

// Numbered migrations of the wa_* tables: entry i takes them from version i to i + 1. Never
// edit a shipped entry; append a new one.
const char* const kMigrations[] = {
    // 0 -> 1
    // The inbox: seq is the arrival order; processed rows keep only their wamid (dedup).
    "CREATE TABLE wa_inbox(seq INTEGER PRIMARY KEY, wamid TEXT NOT NULL UNIQUE,"
    " key TEXT NOT NULL, payload TEXT NOT NULL, received_at INTEGER NOT NULL,"
    " processed INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX wa_inbox_due ON wa_inbox(seq) WHERE processed = 0;"
    "CREATE INDEX wa_inbox_expiry ON wa_inbox(received_at) WHERE processed = 1;"
    "CREATE INDEX wa_inbox_key ON wa_inbox(key);"
    // The outbox: state 0 queued, 1 sent, 2 delivered, 3 read, 4 failed (OutboxItem::State);
    // times are 0 until seen; finished_at is when the row left the queue (retention).
    "CREATE TABLE wa_outbox(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " key TEXT NOT NULL, phone_number_id TEXT NOT NULL, recipient TEXT NOT NULL,"
    " body TEXT NOT NULL, kind TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0, wamid TEXT,"
    " sent_at INTEGER NOT NULL DEFAULT 0, delivered_at INTEGER NOT NULL DEFAULT 0,"
    " read_at INTEGER NOT NULL DEFAULT 0, failed_at INTEGER NOT NULL DEFAULT 0,"
    " error_code INTEGER NOT NULL DEFAULT 0, error_title TEXT NOT NULL DEFAULT '',"
    " last_error TEXT NOT NULL DEFAULT '', finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX wa_outbox_wamid ON wa_outbox(wamid) WHERE wamid IS NOT NULL;"
    "CREATE INDEX wa_outbox_due ON wa_outbox(seq) WHERE state = 0;"
    "CREATE INDEX wa_outbox_conversation ON wa_outbox(phone_number_id, recipient, seq)"
    " WHERE state = 0;"
    "CREATE INDEX wa_outbox_expiry ON wa_outbox(finished_at) WHERE state <> 0;"
    "CREATE INDEX wa_outbox_key ON wa_outbox(key);"
    // Statuses that arrived before their message was marked sent.
    "CREATE TABLE wa_status(wamid TEXT NOT NULL, state INTEGER NOT NULL, at INTEGER NOT NULL,"
    " error_code INTEGER NOT NULL, error_title TEXT NOT NULL, recorded_at INTEGER NOT NULL,"
    " PRIMARY KEY(wamid, state)) WITHOUT ROWID;"
    "CREATE INDEX wa_status_expiry ON wa_status(recorded_at);"
    "CREATE TABLE wa_window(key TEXT PRIMARY KEY, last_inbound INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX wa_window_expiry ON wa_window(last_inbound);"
    "CREATE TABLE wa_idempotency(idempotency_key TEXT PRIMARY KEY, outbox_id TEXT NOT NULL,"
    " key TEXT NOT NULL, claimed_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX wa_idempotency_key ON wa_idempotency(key);"
    "CREATE INDEX wa_idempotency_expiry ON wa_idempotency(claimed_at);"
    // DeliveryCounts, kept by triggers inside the transactions that change the outbox, so
    // they are exact without scanning 30 days of rows on every metrics scrape.
    "CREATE TABLE wa_counts(name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO wa_counts(name, n) VALUES"
    " ('queued', 0), ('sent', 0), ('delivered', 0), ('read', 0), ('failed', 0);"
    "CREATE TRIGGER wa_outbox_queued AFTER INSERT ON wa_outbox WHEN new.state = 0"
    " BEGIN UPDATE wa_counts SET n = n + 1 WHERE name = 'queued'; END;"
    "CREATE TRIGGER wa_outbox_dequeued AFTER UPDATE OF state ON wa_outbox"
    " WHEN old.state = 0 AND new.state <> 0"
    " BEGIN UPDATE wa_counts SET n = n - 1 WHERE name = 'queued'; END;"
    "CREATE TRIGGER wa_outbox_dropped AFTER DELETE ON wa_outbox WHEN old.state = 0"
    " BEGIN UPDATE wa_counts SET n = n - 1 WHERE name = 'queued'; END;"
    "CREATE TRIGGER wa_outbox_sent AFTER UPDATE OF sent_at ON wa_outbox"
    " WHEN old.sent_at = 0 AND new.sent_at <> 0"
    " BEGIN UPDATE wa_counts SET n = n + 1 WHERE name = 'sent'; END;"
    "CREATE TRIGGER wa_outbox_delivered AFTER UPDATE OF delivered_at ON wa_outbox"
    " WHEN old.delivered_at = 0 AND new.delivered_at <> 0"
    " BEGIN UPDATE wa_counts SET n = n + 1 WHERE name = 'delivered'; END;"
    "CREATE TRIGGER wa_outbox_read AFTER UPDATE OF read_at ON wa_outbox"
    " WHEN old.read_at = 0 AND new.read_at <> 0"
    " BEGIN UPDATE wa_counts SET n = n + 1 WHERE name = 'read'; END;"
    "CREATE TRIGGER wa_outbox_failed AFTER UPDATE OF failed_at ON wa_outbox"
    " WHEN old.failed_at = 0 AND new.failed_at <> 0"
    " BEGIN UPDATE wa_counts SET n = n + 1 WHERE name = 'failed'; END;",
};
static_assert(std::size(kMigrations) == ChannelSqliteStore::kSchemaVersion);

constexpr std::int64_t kSweepRows = 2000;  // per table per periodic sweep: bounds the pause

#define CF_RECORD_COLUMNS                                                                    \
    "seq, id, key, phone_number_id, recipient, body, kind, created_at, attempts,"            \
    " next_attempt_at, state, wamid, sent_at, delivered_at, read_at, failed_at, error_code," \
    " error_title, last_error, finished_at"

engine::Error closed_error() {
    return engine::Error{"store", "the channel store is closed"};
}

engine::Error missing_ids() {
    return engine::Error{"store", "an outbox item needs an id and a citizen key"};
}

engine::Error missing_wamid() {
    return engine::Error{"store", "an inbox item needs a wamid and a citizen key"};
}

struct Statements {
    Statement begin, commit, rollback, savepoint, release, rollback_to;
    Statement inbox_insert, inbox_due, inbox_processed;
    Statement outbox_insert, outbox_due, outbox_by_id, outbox_by_wamid, outbox_update;
    Statement outbox_reschedule, outbox_fail;
    Statement status_insert, status_for, status_delete, counts;
    Statement window_touch, window_get, claim_get, claim_put;
    Statement erase_inbox, erase_outbox, erase_window, erase_claims;
    Statement sweep_inbox, sweep_status, sweep_window, sweep_outbox, sweep_claims;
    Statement ping;
};

// An outbox row: the record and when it left the queue.
struct Row {
    OutboundRecord record;
    std::int64_t finished_at = 0;
};

Row read_row(const Statement& s) {
    Row row;
    OutboundRecord& r = row.record;
    r.item.seq = s.int64(0);
    r.item.id = s.text(1);
    r.item.key = s.text(2);
    r.item.phone_number_id = s.text(3);
    r.item.recipient = s.text(4);
    r.item.body = s.text(5);
    r.item.kind = s.text(6);
    r.item.created_at = s.int64(7);
    r.item.attempts = static_cast<int>(s.int64(8));
    r.item.next_attempt_at = s.int64(9);
    r.item.state = static_cast<State>(s.int64(10));
    r.wamid = s.text(11);
    r.sent_at = s.int64(12);
    r.delivered_at = s.int64(13);
    r.read_at = s.int64(14);
    r.failed_at = s.int64(15);
    r.error_code = static_cast<int>(s.int64(16));
    r.error_title = s.text(17);
    r.last_error = s.text(18);
    row.finished_at = s.int64(19);
    return row;
}

// A read runs outside any transaction, a write in the batch's; an erasure is a write followed by
// a truncating checkpoint.
enum class Kind { kRead, kWrite, kErase };

}  // namespace

struct ChannelSqliteStore::Impl {
    using Job = detail::StoreJob<Impl, Kind>;

    Options options;
    Clock clock;
    sqlite3* db = nullptr;
    std::unique_ptr<Statements> st = std::make_unique<Statements>();

    detail::JobQueue<std::unique_ptr<Job>> queue;  // to the writer thread
    std::thread thread;
    std::atomic<std::uint64_t> commits{0};
    std::atomic<std::uint64_t> writes{0};
    std::chrono::steady_clock::time_point next_sweep;
    bool truncate_pending = false;  // an erasure's WAL truncation still to do

    ~Impl() { close(); }

    void close() {
        queue.close();
        if (thread.joinable())
            thread.join();
        // Whatever else happens, leave no erased data behind in the WAL.
        if (db != nullptr && truncate_pending)
            truncate_wal();
        st.reset();
        if (db != nullptr)
            sqlite3_close_v2(db);
        db = nullptr;
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
        return sqlite::migrate(db, "wa_schema_version", kMigrations, "channel schema");
    }

    engine::Result<engine::Ok> prepare() {
        struct Item {
            Statement* s;
            const char* sql;
        };

        Statements& s = *st;
        const Item items[] = {
            {&s.begin, "BEGIN IMMEDIATE"},
            {&s.commit, "COMMIT"},
            {&s.rollback, "ROLLBACK"},
            {&s.savepoint, "SAVEPOINT job"},
            {&s.release, "RELEASE job"},
            {&s.rollback_to, "ROLLBACK TO job"},
            {&s.inbox_insert,
             "INSERT INTO wa_inbox(wamid, key, payload, received_at) VALUES(?1, ?2, ?3, ?4) "
             "ON CONFLICT(wamid) DO NOTHING"},
            {&s.inbox_due,
             "SELECT wamid, key, payload, received_at FROM wa_inbox WHERE processed = 0 "
             "ORDER BY seq LIMIT ?1"},
            {&s.inbox_processed,
             "UPDATE wa_inbox SET processed = 1, payload = '' WHERE wamid = ?1 "
             "AND processed = 0"},
            {&s.outbox_insert,
             "INSERT INTO wa_outbox(id, key, phone_number_id, recipient, body, kind, "
             "created_at, attempts, next_attempt_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
             "ON CONFLICT(id) DO NOTHING"},
            // Due: queued, its time has come, and no earlier queued message of the same
            // conversation is still waiting for its retry.
            {&s.outbox_due,
             "SELECT " CF_RECORD_COLUMNS " FROM wa_outbox AS o "
             "WHERE o.state = 0 AND o.next_attempt_at <= ?1 AND NOT EXISTS ("
             "SELECT 1 FROM wa_outbox AS p WHERE p.state = 0 "
             "AND p.phone_number_id = o.phone_number_id AND p.recipient = o.recipient "
             "AND p.seq < o.seq AND p.next_attempt_at > ?1) "
             "ORDER BY o.seq LIMIT ?2"},
            {&s.outbox_by_id, "SELECT " CF_RECORD_COLUMNS " FROM wa_outbox WHERE id = ?1"},
            {&s.outbox_by_wamid, "SELECT " CF_RECORD_COLUMNS " FROM wa_outbox WHERE wamid = ?1"},
            {&s.outbox_update,
             "UPDATE wa_outbox SET state = ?2, wamid = ?3, sent_at = ?4, delivered_at = ?5, "
             "read_at = ?6, failed_at = ?7, error_code = ?8, error_title = ?9, "
             "finished_at = ?10 WHERE seq = ?1"},
            {&s.outbox_reschedule,
             "UPDATE wa_outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 "
             "WHERE id = ?1 AND state = 0"},
            {&s.outbox_fail,
             "UPDATE wa_outbox SET state = 4, failed_at = ?2, finished_at = ?2, "
             "error_code = ?3, error_title = ?4 WHERE id = ?1 AND state = 0"},
            {&s.status_insert,
             "INSERT INTO wa_status(wamid, state, at, error_code, error_title, recorded_at) "
             "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(wamid, state) DO NOTHING"},
            {&s.status_for,
             "SELECT state, at, error_code, error_title FROM wa_status WHERE wamid = ?1 "
             "ORDER BY at, state"},
            {&s.status_delete, "DELETE FROM wa_status WHERE wamid = ?1"},
            {&s.counts, "SELECT name, n FROM wa_counts"},
            {&s.window_touch,
             "INSERT INTO wa_window(key, last_inbound) VALUES(?1, ?2) ON CONFLICT(key) "
             "DO UPDATE SET last_inbound = max(last_inbound, excluded.last_inbound)"},
            {&s.window_get, "SELECT last_inbound FROM wa_window WHERE key = ?1"},
            {&s.claim_get, "SELECT outbox_id FROM wa_idempotency WHERE idempotency_key = ?1"},
            {&s.claim_put,
             "INSERT INTO wa_idempotency(idempotency_key, outbox_id, key, claimed_at) "
             "VALUES(?1, ?2, ?3, ?4)"},
            {&s.erase_inbox, "DELETE FROM wa_inbox WHERE key = ?1"},
            {&s.erase_outbox, "DELETE FROM wa_outbox WHERE key = ?1"},
            {&s.erase_window, "DELETE FROM wa_window WHERE key = ?1"},
            {&s.erase_claims, "DELETE FROM wa_idempotency WHERE key = ?1"},
            // ?1: the cutoff time, ?2: the row limit (-1: none).
            {&s.sweep_inbox,
             "DELETE FROM wa_inbox WHERE seq IN (SELECT seq FROM wa_inbox "
             "WHERE processed = 1 AND received_at <= ?1 LIMIT ?2)"},
            {&s.sweep_status,
             "DELETE FROM wa_status WHERE (wamid, state) IN (SELECT wamid, state "
             "FROM wa_status WHERE recorded_at <= ?1 LIMIT ?2)"},
            {&s.sweep_window,
             "DELETE FROM wa_window WHERE key IN (SELECT key FROM wa_window "
             "WHERE last_inbound <= ?1 LIMIT ?2)"},
            {&s.sweep_outbox,
             "DELETE FROM wa_outbox WHERE seq IN (SELECT seq FROM wa_outbox "
             "WHERE state <> 0 AND finished_at <= ?1 LIMIT ?2)"},
            {&s.sweep_claims,
             "DELETE FROM wa_idempotency WHERE idempotency_key IN (SELECT idempotency_key "
             "FROM wa_idempotency WHERE claimed_at <= ?1 LIMIT ?2)"},
            {&s.ping, "SELECT 1 FROM wa_counts LIMIT 1"},
        };
        for (const Item& item : items) {
            if (!item.s->prepare(db, item.sql))
                return db_error(db, "cannot prepare a statement");
        }
        return engine::Ok{};
    }

    // The writer thread: drain the queue in batches, one transaction per batch of writes.
    void run() {
        std::vector<std::unique_ptr<Job>> batch;
        while (queue.take(batch, options.max_batch, options.sweep_interval, true)) {
            run_batch(batch);
            batch.clear();
            if (truncate_pending)
                truncate_pending = !truncate_wal();
            if (std::chrono::steady_clock::now() >= next_sweep) {
                sweep_once(kSweepRows);
                next_sweep = std::chrono::steady_clock::now() + options.sweep_interval;
            }
        }
    }

    void run_batch(std::vector<std::unique_ptr<Job>>& batch) {
        Statements& s = *st;
        bool in_tx = false;
        bool checkpoint = false;
        std::vector<std::unique_ptr<Job>> finished;  // completed together
        // Reads first, outside the transaction. A read runs before writes queued ahead of it
        // only when both were in flight together, so either order is a correct answer.
        for (auto& job : batch) {
            if (job->kind == Kind::kRead) {
                job->run(*this);
                finished.push_back(std::move(job));
            }
        }
        detail::complete_all(finished);
        std::vector<std::unique_ptr<Job>> written;
        for (auto& job : batch) {
            if (!job)
                continue;
            if (!in_tx) {
                if (s.begin.exec() != SQLITE_DONE) {
                    job->fail(db_error(db, "cannot begin a transaction"));
                    finished.push_back(std::move(job));
                    continue;
                }
                in_tx = true;
            }
            s.savepoint.exec();
            if (job->run(*this)) {
                s.release.exec();
                checkpoint = checkpoint || job->checkpoint_after;
                written.push_back(std::move(job));
            } else {
                s.rollback_to.exec();
                s.release.exec();
                finished.push_back(std::move(job));
            }
        }
        detail::complete_all(finished);
        if (!in_tx)
            return;
        if (s.commit.exec() != SQLITE_DONE) {
            const engine::Error e = db_error(db, "commit failed");
            Logger::log(LogLevel::kError, {}, "store_commit_failed", "store=sqlite_channel");
            s.rollback.exec();
            for (auto& job : written)
                job->fail(e);
        } else {
            commits.fetch_add(1);
            writes.fetch_add(written.size());
            if (checkpoint && !truncate_wal()) {
                // Another connection (the session store) is reading: try again after the
                // next batches; close() tries once more.
                truncate_pending = true;
                Logger::log(
                    LogLevel::kWarn, {}, "store_wal_truncate_deferred", "store=sqlite_channel"
                );
            }
        }
        detail::complete_all(written);
    }

    bool truncate_wal() {
        int log = 0;
        int done = 0;
        return sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done) ==
               SQLITE_OK;
    }

    // Deletes up to `limit` rows per table past their retention (-1: all); -1 on failure.
    std::int64_t sweep_once(std::int64_t limit) {
        Statements& s = *st;
        const std::int64_t t = now();
        const std::int64_t inbox_cutoff = t - options.retention.inbox.count();
        const std::int64_t outbox_cutoff = t - options.retention.outbox.count();
        if (s.begin.exec() != SQLITE_DONE)
            return -1;
        std::int64_t deleted = 0;
        const std::pair<Statement*, std::int64_t> sweeps[] = {
            {&s.sweep_inbox, inbox_cutoff},
            {&s.sweep_status, inbox_cutoff},
            {&s.sweep_window, inbox_cutoff},
            {&s.sweep_outbox, outbox_cutoff},
            {&s.sweep_claims, outbox_cutoff},
        };
        for (const auto& [statement, cutoff] : sweeps) {
            if (statement->bind(1, cutoff).bind(2, limit).exec() != SQLITE_DONE) {
                s.rollback.exec();
                return -1;
            }
            deleted += sqlite3_changes(db);
        }
        if (s.commit.exec() != SQLITE_DONE) {
            s.rollback.exec();
            return -1;
        }
        return deleted;
    }

    // The outbox row selected by `q` (bound by the caller), nullopt when none; Error on failure.
    engine::Result<std::optional<Row>> select_row(Statement& q) {
        const int rc = q.step();
        std::optional<Row> row;
        if (rc == SQLITE_ROW)
            row = read_row(q);
        q.reset();
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return db_error(db, "cannot read an outbound message");
        return row;
    }

    bool update_row(const Row& row) {
        const OutboundRecord& r = row.record;
        return st->outbox_update.bind(1, r.item.seq)
                   .bind(2, static_cast<std::int64_t>(r.item.state))
                   .bind_or_null(3, r.wamid)
                   .bind(4, r.sent_at)
                   .bind(5, r.delivered_at)
                   .bind(6, r.read_at)
                   .bind(7, r.failed_at)
                   .bind(8, std::int64_t{r.error_code})
                   .bind(9, r.error_title)
                   .bind(10, row.finished_at)
                   .exec() == SQLITE_DONE;
    }

    // Stores an inbox item unless its wamid is known; true when it was new.
    engine::Result<bool> insert_inbox(const InboxItem& item) {
        if (st->inbox_insert.bind(1, item.wamid)
                .bind(2, item.key)
                .bind(3, item.payload)
                .bind(4, item.received_at)
                .exec() != SQLITE_DONE) {
            return db_error(db, "cannot store an inbound message");
        }
        return sqlite3_changes(db) > 0;
    }

    // Moves a citizen's 24-hour window to `at` unless a later time is known.
    engine::Result<engine::Ok> touch_window(const std::string& key, std::int64_t at) {
        if (st->window_touch.bind(1, key).bind(2, at).exec() != SQLITE_DONE)
            return db_error(db, "cannot record an inbound time");
        return engine::Ok{};
    }

    bool insert_outbox(const OutboxItem& item) {
        return st->outbox_insert.bind(1, item.id)
                   .bind(2, item.key)
                   .bind(3, item.phone_number_id)
                   .bind(4, item.recipient)
                   .bind(5, item.body)
                   .bind(6, item.kind)
                   .bind(7, item.created_at)
                   .bind(8, std::int64_t{item.attempts})
                   .bind(9, item.next_attempt_at)
                   .exec() == SQLITE_DONE;
    }
};

namespace {

using Impl = ChannelSqliteStore::Impl;

template <typename T, typename Op>
asio::awaitable<engine::Result<T>> submit(Impl& impl, Kind kind, Op op) {
    return detail::submit<T>(impl.queue, kind, kind == Kind::kErase, closed_error(), std::move(op));
}

}  // namespace

ChannelSqliteStore::ChannelSqliteStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

ChannelSqliteStore::~ChannelSqliteStore() = default;

void ChannelSqliteStore::close() {
    impl_->close();
}

engine::Result<std::unique_ptr<ChannelSqliteStore>> ChannelSqliteStore::open(
    Options options, Clock clock
) {
    auto impl = std::make_unique<Impl>();
    impl->options = std::move(options);
    impl->clock = std::move(clock);
    const std::string& path = impl->options.path;
    const int rc = sqlite3_open_v2(
        path.c_str(),
        &impl->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        nullptr
    );
    if (rc != SQLITE_OK) {
        return engine::Error{
            "store",
            "cannot open the SQLite database '" + path +
                "': " + (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory")};
    }
    sqlite3_busy_timeout(impl->db, static_cast<int>(impl->options.busy_timeout.count()));
    // WAL: readers never block the writer and a commit is one append (plus one fsync with
    // synchronous=FULL). secure_delete: deleted rows are overwritten, so erasure leaves nothing.
    const std::string pragmas =
        std::string("PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON; PRAGMA synchronous=") +
        (impl->options.durable ? "FULL" : "NORMAL") + "; PRAGMA foreign_keys=OFF;";
    if (!impl->exec(pragmas.c_str())) {
        return engine::Error{
            "store",
            "cannot configure the SQLite database '" + path + "': " + sqlite3_errmsg(impl->db)};
    }
    {
        Statement mode;
        if (!mode.prepare(impl->db, "PRAGMA journal_mode") || mode.step() != SQLITE_ROW ||
            mode.text(0) != "wal") {
            return engine::Error{
                "store",
                "the SQLite database '" + path + "' cannot use WAL mode (a network file system?)"};
        }
    }
    if (auto m = impl->migrate(); !m)
        return engine::Error{"store", "cannot migrate '" + path + "': " + m.error().message};
    if (auto p = impl->prepare(); !p)
        return p.error();
    impl->next_sweep = std::chrono::steady_clock::now();
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<ChannelSqliteStore>(new ChannelSqliteStore(std::move(impl)));
}

asio::awaitable<engine::Result<bool>> ChannelSqliteStore::add_inbound(InboxItem item) {
    return submit<bool>(
        *impl_,
        Kind::kWrite,
        [item = std::move(item)](Impl& d) -> engine::Result<bool> {
            if (item.wamid.empty() || item.key.empty())
                return missing_wamid();
            return d.insert_inbox(item);
        }
    );
}

asio::awaitable<engine::Result<std::vector<bool>>> ChannelSqliteStore::receive(
    std::vector<Arrival> arrivals
) {
    return submit<std::vector<bool>>(
        *impl_,
        Kind::kWrite,
        [arrivals = std::move(arrivals)](Impl& d) -> engine::Result<std::vector<bool>> {
            for (const Arrival& a : arrivals) {
                if (a.item.wamid.empty() || a.item.key.empty())
                    return missing_wamid();
            }
            // One savepoint around the job: a failure undoes what it stored before.
            std::vector<bool> fresh;
            fresh.reserve(arrivals.size());
            for (const Arrival& a : arrivals) {
                if (auto touched = d.touch_window(a.item.key, a.wrote_at); !touched)
                    return touched.error();
                auto added = d.insert_inbox(a.item);
                if (!added)
                    return added.error();
                fresh.push_back(*added);
            }
            return fresh;
        }
    );
}

asio::awaitable<engine::Result<std::vector<InboxItem>>> ChannelSqliteStore::due_inbound(
    std::size_t limit
) {
    return submit<std::vector<InboxItem>>(
        *impl_,
        Kind::kRead,
        [limit](Impl& d) -> engine::Result<std::vector<InboxItem>> {
            Statement& q = d.st->inbox_due;
            q.bind(1, static_cast<std::int64_t>(limit));
            std::vector<InboxItem> out;
            int rc = 0;
            while ((rc = q.step()) == SQLITE_ROW)
                out.push_back(InboxItem{q.text(0), q.text(1), q.text(2), q.int64(3)});
            q.reset();
            if (rc != SQLITE_DONE)
                return db_error(d.db, "cannot read the inbox");
            return out;
        }
    );
}

asio::awaitable<engine::Result<bool>> ChannelSqliteStore::mark_processed(std::string wamid) {
    return submit<bool>(
        *impl_,
        Kind::kWrite,
        [wamid = std::move(wamid)](Impl& d) -> engine::Result<bool> {
            if (d.st->inbox_processed.bind(1, wamid).exec() != SQLITE_DONE)
                return db_error(d.db, "cannot mark an inbound message processed");
            return sqlite3_changes(d.db) > 0;
        }
    );
}

asio::awaitable<engine::Result<std::size_t>> ChannelSqliteStore::enqueue(
    std::vector<OutboxItem> items
) {
    return submit<std::size_t>(
        *impl_,
        Kind::kWrite,
        [items = std::move(items)](Impl& d) -> engine::Result<std::size_t> {
            for (const OutboxItem& item : items) {
                if (item.id.empty() || item.key.empty())
                    return missing_ids();
            }
            std::size_t added = 0;
            // One savepoint around the job: a failure here undoes the items already inserted.
            for (const OutboxItem& item : items) {
                if (!d.insert_outbox(item))
                    return db_error(d.db, "cannot queue an outbound message");
                added += sqlite3_changes(d.db) > 0 ? 1 : 0;
            }
            return added;
        }
    );
}

asio::awaitable<engine::Result<std::vector<OutboxItem>>> ChannelSqliteStore::due_outbound(
    std::int64_t now, std::size_t limit
) {
    return submit<std::vector<OutboxItem>>(
        *impl_,
        Kind::kRead,
        [now, limit](Impl& d) -> engine::Result<std::vector<OutboxItem>> {
            Statement& q = d.st->outbox_due;
            q.bind(1, now).bind(2, static_cast<std::int64_t>(limit));
            std::vector<OutboxItem> out;
            int rc = 0;
            while ((rc = q.step()) == SQLITE_ROW)
                out.push_back(read_row(q).record.item);
            q.reset();
            if (rc != SQLITE_DONE)
                return db_error(d.db, "cannot read the outbox");
            return out;
        }
    );
}

asio::awaitable<engine::Result<bool>> ChannelSqliteStore::mark_sent(
    std::string id, std::string wamid, std::int64_t at
) {
    return submit<bool>(
        *impl_,
        Kind::kWrite,
        [id = std::move(id), wamid = std::move(wamid), at](Impl& d) -> engine::Result<bool> {
            if (wamid.empty())
                return engine::Error{"store", "cannot mark a message sent without its wamid"};
            auto found = d.select_row(d.st->outbox_by_id.bind(1, id));
            if (!found)
                return found.error();
            if (!*found || (*found)->record.item.state != State::kQueued)
                return false;
            auto other = d.select_row(d.st->outbox_by_wamid.bind(1, wamid));
            if (!other)
                return other.error();
            if (*other) {
                return engine::Error{
                    "store", "cannot mark a message sent: its wamid belongs to another message"};
            }
            Row& row = **found;
            row.record.item.state = State::kSent;
            row.record.wamid = wamid;
            row.record.sent_at = at;
            row.finished_at = at;
            // Statuses that overtook the send, in the order Meta stamped them.
            Statement& q = d.st->status_for;
            q.bind(1, wamid);
            int rc = 0;
            while ((rc = q.step()) == SQLITE_ROW) {
                apply_delivery_status(
                    row.record,
                    DeliveryStatus{
                        wamid,
                        static_cast<State>(q.int64(0)),
                        q.int64(1),
                        static_cast<int>(q.int64(2)),
                        q.text(3)}
                );
            }
            q.reset();
            if (rc != SQLITE_DONE)
                return db_error(d.db, "cannot read early statuses");
            if (!d.update_row(row))
                return db_error(d.db, "cannot mark a message sent");
            if (d.st->status_delete.bind(1, wamid).exec() != SQLITE_DONE)
                return db_error(d.db, "cannot link early statuses");
            return true;
        }
    );
}

asio::awaitable<engine::Result<bool>> ChannelSqliteStore::reschedule(
    std::string id, int attempts, std::int64_t next_attempt_at, std::string last_error
) {
    return submit<bool>(
        *impl_,
        Kind::kWrite,
        [id = std::move(id), attempts, next_attempt_at, last_error = std::move(last_error)](Impl& d
        ) -> engine::Result<bool> {
            if (d.st->outbox_reschedule.bind(1, id)
                    .bind(2, std::int64_t{attempts})
                    .bind(3, next_attempt_at)
                    .bind(4, last_error)
                    .exec() != SQLITE_DONE) {
                return db_error(d.db, "cannot reschedule a message");
            }
            return sqlite3_changes(d.db) > 0;
        }
    );
}

asio::awaitable<engine::Result<bool>> ChannelSqliteStore::mark_failed(
    std::string id, int error_code, std::string error_title, std::int64_t at
) {
    return submit<bool>(
        *impl_,
        Kind::kWrite,
        [id = std::move(id), error_code, error_title = std::move(error_title), at](Impl& d
        ) -> engine::Result<bool> {
            if (d.st->outbox_fail.bind(1, id)
                    .bind(2, at)
                    .bind(3, std::int64_t{error_code})
                    .bind(4, error_title)
                    .exec() != SQLITE_DONE) {
                return db_error(d.db, "cannot mark a message failed");
            }
            return sqlite3_changes(d.db) > 0;
        }
    );
}

asio::awaitable<engine::Result<bool>> ChannelSqliteStore::record_status(DeliveryStatus status) {
    return submit<bool>(
        *impl_,
        Kind::kWrite,
        [status = std::move(status)](Impl& d) -> engine::Result<bool> {
            if (status.state == State::kQueued)
                return engine::Error{"store", "a delivery status cannot be 'queued'"};
            if (status.wamid.empty())
                return engine::Error{"store", "a delivery status needs a wamid"};
            auto found = d.select_row(d.st->outbox_by_wamid.bind(1, status.wamid));
            if (!found)
                return found.error();
            if (*found) {
                Row& row = **found;
                if (apply_delivery_status(row.record, status) && !d.update_row(row))
                    return db_error(d.db, "cannot record a delivery status");
                return true;
            }
            if (d.st->status_insert.bind(1, status.wamid)
                    .bind(2, static_cast<std::int64_t>(status.state))
                    .bind(3, status.at)
                    .bind(4, std::int64_t{status.error_code})
                    .bind(5, status.error_title)
                    .bind(6, d.now())
                    .exec() != SQLITE_DONE) {
                return db_error(d.db, "cannot record a delivery status");
            }
            return false;
        }
    );
}

asio::awaitable<engine::Result<DeliveryCounts>> ChannelSqliteStore::delivery_counts() {
    return submit<DeliveryCounts>(
        *impl_,
        Kind::kRead,
        [](Impl& d) -> engine::Result<DeliveryCounts> {
            Statement& q = d.st->counts;
            DeliveryCounts c;
            int rc = 0;
            while ((rc = q.step()) == SQLITE_ROW) {
                const std::string name = q.text(0);
                const std::int64_t n = q.int64(1);
                if (name == "queued")
                    c.queued = n;
                else if (name == "sent")
                    c.sent = n;
                else if (name == "delivered")
                    c.delivered = n;
                else if (name == "read")
                    c.read = n;
                else if (name == "failed")
                    c.failed = n;
            }
            q.reset();
            if (rc != SQLITE_DONE)
                return db_error(d.db, "cannot read the delivery counts");
            return c;
        }
    );
}

asio::awaitable<engine::Result<std::optional<OutboundRecord>>> ChannelSqliteStore::find_outbound(
    std::string id_or_wamid
) {
    return submit<std::optional<OutboundRecord>>(
        *impl_,
        Kind::kRead,
        [key = std::move(id_or_wamid)](Impl& d) -> engine::Result<std::optional<OutboundRecord>> {
            auto found = d.select_row(d.st->outbox_by_id.bind(1, key));
            if (found && !*found)
                found = d.select_row(d.st->outbox_by_wamid.bind(1, key));
            if (!found)
                return found.error();
            std::optional<OutboundRecord> out;
            if (*found)
                out = std::move((*found)->record);
            return out;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> ChannelSqliteStore::touch_inbound(
    std::string key, std::int64_t at
) {
    return submit<engine::Ok>(
        *impl_,
        Kind::kWrite,
        [key = std::move(key), at](Impl& d) -> engine::Result<engine::Ok> {
            return d.touch_window(key, at);
        }
    );
}

asio::awaitable<engine::Result<std::optional<std::int64_t>>> ChannelSqliteStore::last_inbound(
    std::string key
) {
    return submit<std::optional<std::int64_t>>(
        *impl_,
        Kind::kRead,
        [key = std::move(key)](Impl& d) -> engine::Result<std::optional<std::int64_t>> {
            Statement& q = d.st->window_get;
            q.bind(1, key);
            const int rc = q.step();
            std::optional<std::int64_t> out;
            if (rc == SQLITE_ROW)
                out = q.int64(0);
            q.reset();
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_error(d.db, "cannot read an inbound time");
            return out;
        }
    );
}

asio::awaitable<engine::Result<std::optional<std::string>>>
ChannelSqliteStore::claim_idempotency_key(std::string idempotency_key, OutboxItem item) {
    return submit<std::optional<std::string>>(
        *impl_,
        Kind::kWrite,
        [idempotency_key = std::move(idempotency_key),
         item = std::move(item)](Impl& d) -> engine::Result<std::optional<std::string>> {
            if (item.id.empty() || item.key.empty())
                return missing_ids();
            if (idempotency_key.empty())
                return engine::Error{"store", "an idempotency key cannot be empty"};
            Statement& q = d.st->claim_get;
            q.bind(1, idempotency_key);
            const int rc = q.step();
            std::optional<std::string> existing;
            if (rc == SQLITE_ROW)
                existing = q.text(0);
            q.reset();
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_error(d.db, "cannot read an idempotency key");
            if (existing)
                return existing;
            if (d.st->claim_put.bind(1, idempotency_key)
                    .bind(2, item.id)
                    .bind(3, item.key)
                    .bind(4, d.now())
                    .exec() != SQLITE_DONE) {
                return db_error(d.db, "cannot claim an idempotency key");
            }
            if (!d.insert_outbox(item))
                return db_error(d.db, "cannot queue an outbound message");
            return existing;
        }
    );
}

asio::awaitable<engine::Result<engine::Ok>> ChannelSqliteStore::erase_citizen(std::string key) {
    return submit<engine::Ok>(
        *impl_,
        Kind::kErase,
        [key = std::move(key)](Impl& d) -> engine::Result<engine::Ok> {
            Statements& s = *d.st;
            for (Statement* q :
                 {&s.erase_inbox, &s.erase_outbox, &s.erase_window, &s.erase_claims}) {
                if (q->bind(1, key).exec() != SQLITE_DONE)
                    return db_error(d.db, "cannot erase a citizen");
            }
            return engine::Ok{};
        }
    );
}

asio::awaitable<engine::Result<std::int64_t>> ChannelSqliteStore::sweep() {
    return submit<std::int64_t>(*impl_, Kind::kRead, [](Impl& d) -> engine::Result<std::int64_t> {
        const std::int64_t n = d.sweep_once(-1);
        if (n < 0)
            return db_error(d.db, "sweep failed");
        return n;
    });
}

asio::awaitable<engine::Result<engine::Ok>> ChannelSqliteStore::ping() {
    return submit<engine::Ok>(*impl_, Kind::kRead, [](Impl& d) -> engine::Result<engine::Ok> {
        Statement& s = d.st->ping;
        const int rc = s.step();
        s.reset();
        if (rc != SQLITE_ROW)
            return db_error(d.db, "ping failed");
        return engine::Ok{};
    });
}

asio::awaitable<engine::Result<engine::Ok>> ChannelSqliteStore::checkpoint() {
    return submit<engine::Ok>(*impl_, Kind::kRead, [](Impl& d) -> engine::Result<engine::Ok> {
        if (!d.truncate_wal())
            return db_error(d.db, "checkpoint failed");
        d.truncate_pending = false;
        return engine::Ok{};
    });
}

std::uint64_t ChannelSqliteStore::commits() const {
    return impl_->commits.load();
}

std::uint64_t ChannelSqliteStore::writes() const {
    return impl_->writes.load();
}

#undef CF_RECORD_COLUMNS

}  // namespace civicflow::server
