/// The SQLite Store: one file in WAL mode, written by a dedicated thread with group commit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <civicflow/server/store.hpp>

namespace civicflow::server {

/// The embedded default store of `civicflow serve`. One SQLite connection owned by one writer
/// thread, fed by a queue: I/O threads never touch the database. The writer takes everything
/// queued (up to `max_batch` operations; once woken it yields the core a few times while the
/// queue still grows, so that a burst becomes one batch, not many batches of one) and runs them
/// in one transaction: the reads first, then the writes, each in its own savepoint so one
/// failing write does not undo the others, and commits once. When `durable`,
/// a second thread then fsyncs the WAL, once for every commit made since its last fsync (group
/// commit), and a write's completion is posted to its caller's executor only after that, so an
/// acknowledged message is on disk; the writer does not wait for the disk meanwhile. Reads
/// complete as soon as they have run. A third thread, on its own connection, copies the WAL
/// into the database whenever it has grown past `checkpoint_pages` (PASSIVE checkpoints, never
/// waiting for the writer), in place of SQLite's automatic checkpoint, which would stall the
/// writer inside a commit.
///
/// The writer also keeps a cache of the sessions and pending calls it last read or wrote
/// (`cache_entries` citizens at most): a load without a message id for a cached citizen is
/// answered on the caller's thread, with no trip to the writer. The cache changes only on the
/// writer thread, with the transactions, so it holds what the file holds (the store must be the
/// file's only writer, as `civicflow serve` is); a failed commit empties it.
///
/// Erasure deletes the citizen's rows with `secure_delete` on (freed space is zeroed) and then
/// checkpoints and truncates the WAL, so no old page image with the citizen's data is left in
/// either file. Expired sessions, message ids and stale pending calls are swept every
/// `sweep_interval`, a bounded number of rows at a time. The schema has a version table and
/// numbered migrations applied at open. Thread-safe.
class SqliteStore final : public Store {
public:
    using Clock = std::function<std::int64_t()>;

    struct Options {
        std::string path;
        std::chrono::milliseconds message_ttl{8LL * 24 * 3600 * 1000};
        std::chrono::milliseconds sweep_interval{60'000};
        bool durable = true;  // fsync before acknowledging (else a power cut may lose the last
                              // commits; a crash of the process alone loses nothing)
        std::size_t max_batch = 4096;
        int checkpoint_pages = 1000;  // WAL size (pages) that wakes the checkpoint thread
        // Citizens whose session and pending call are kept in memory after a read or write,
        // so that their next message (without a message id) is loaded without a trip to the
        // writer thread; 0: none. About 0.4 KiB each (with a 230-byte session).
        std::size_t cache_entries = 50'000;
        // How the WAL file is put on disk (durable stores): ::fdatasync unless set. Tests set
        // it to fail, as a disk does; after a failure every write is refused (see open()).
        std::function<int(int fd)> sync_file;
        // The SQLite VFS both connections open the file through (sqlite3_vfs_register);
        // empty: the default. Tests register one that fails writes, as a failing disk does.
        std::string vfs;
    };

    /// Opens (creating if needed) and migrates the database, then starts the writer thread.
    /// Blocking: call at startup. Error code "store" with SQLite's reason.
    ///
    /// A failed sync of the WAL (a disk error) fails the writes it was to make durable, and
    /// every write, load and ping() after it, until the store is reopened: after such an error
    /// Linux may have dropped the unsynced pages and report the next sync as a success, so no
    /// later write could be acknowledged as durable, and what the store holds (a stored
    /// response answering a retry, say) may not be on disk.
    static engine::Result<std::unique_ptr<SqliteStore>> open(Options options, Clock clock = {});

    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    boost::asio::awaitable<engine::Result<CitizenState>> load(
        const std::string& user, const std::string& message_id
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> write(TurnWrite write) override;
    boost::asio::awaitable<engine::Result<std::optional<Consent>>> load_consent(
        const std::string& user
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(const std::string& user
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> ping() override;
    /// civicflow_store_commits_total, _writes_total, _syncs_total, _checkpoints_total,
    /// _cache_hits_total, _cache_misses_total and civicflow_store_cache_sessions.
    std::string metrics() const override;

    /// Runs a sweep of expired rows now (tests); returns the rows deleted.
    boost::asio::awaitable<engine::Result<std::int64_t>> sweep();
    /// Checkpoints and truncates the WAL now (tests, backups).
    boost::asio::awaitable<engine::Result<engine::Ok>> checkpoint();

    /// Committed transactions and the write operations they carried (group commit: with many
    /// writers at once, commits < writes).
    std::uint64_t commits() const;
    std::uint64_t writes() const;
    /// Checkpoints made by the checkpoint thread (the WAL copied into the database).
    std::uint64_t checkpoints() const;
    /// Loads without a message id answered from the cache, and those that went to the database.
    std::uint64_t cache_hits() const;
    std::uint64_t cache_misses() const;

    /// The schema version this build writes.
    static constexpr int kSchemaVersion = 1;

    struct Impl;

private:
    explicit SqliteStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace civicflow::server
