#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/sqlite_store.hpp>

#include "store_test_support.hpp"

#include <sqlite3.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace civicflow;
using civicflow::testing::run;
using namespace std::chrono_literals;

namespace {

struct Db {
    explicit Db(std::string p = testing::temp_dir("civicflow-sqlite") + "/civicflow.db")
        : path(std::move(p)) {}

    std::unique_ptr<server::SqliteStore> open() {
        server::SqliteStore::Options options;
        options.path = path;
        options.message_ttl = 1h;
        auto store = server::SqliteStore::open(options, [this] { return now; });
        REQUIRE_MESSAGE(store, store.error().message);
        return std::move(*store);
    }

    std::string path;
    std::int64_t now = 1'700'000'000'000;
};

server::TurnWrite turn(const std::string& user, const std::string& session) {
    server::TurnWrite w;
    w.user = user;
    w.session = session;
    w.session_ttl_ms = 3'600'000;
    return w;
}

// A SQLite VFS over the default one, for a disk failing under a transaction: while `armed`,
// a write to a WAL file whose bytes contain "HOLD-MARK" waits until `release` is set (so
// tests can queue work behind the writer), and one containing "FAIL-MARK" fails with
// SQLITE_IOERR_WRITE. Registered once, as "civicflow-faulty"; Options::vfs selects it.
namespace faulty {

std::atomic<bool> armed{false};
std::atomic<bool> holding{false};
std::atomic<bool> release{false};
std::atomic<int> failed_writes{0};
sqlite3_vfs* real = nullptr;

struct File {
    sqlite3_file base;
    sqlite3_file* inner;
    bool wal;
};

sqlite3_file* inner(sqlite3_file* f) {
    return reinterpret_cast<File*>(f)->inner;
}

bool holds(const void* p, int n, std::string_view marker) {
    return std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n))
               .find(marker) != std::string_view::npos;
}

int close(sqlite3_file* f) {
    return inner(f)->pMethods->xClose(inner(f));
}

int read(sqlite3_file* f, void* p, int n, sqlite3_int64 at) {
    return inner(f)->pMethods->xRead(inner(f), p, n, at);
}

int write(sqlite3_file* f, const void* p, int n, sqlite3_int64 at) {
    if (reinterpret_cast<File*>(f)->wal && armed.load()) {
        if (holds(p, n, "HOLD-MARK")) {
            holding = true;
            while (!release.load())
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (holds(p, n, "FAIL-MARK")) {
            ++failed_writes;
            return SQLITE_IOERR_WRITE;
        }
    }
    return inner(f)->pMethods->xWrite(inner(f), p, n, at);
}

int truncate(sqlite3_file* f, sqlite3_int64 size) {
    return inner(f)->pMethods->xTruncate(inner(f), size);
}

int sync(sqlite3_file* f, int flags) {
    return inner(f)->pMethods->xSync(inner(f), flags);
}

int file_size(sqlite3_file* f, sqlite3_int64* size) {
    return inner(f)->pMethods->xFileSize(inner(f), size);
}

int lock(sqlite3_file* f, int level) {
    return inner(f)->pMethods->xLock(inner(f), level);
}

int unlock(sqlite3_file* f, int level) {
    return inner(f)->pMethods->xUnlock(inner(f), level);
}

int check_reserved(sqlite3_file* f, int* out) {
    return inner(f)->pMethods->xCheckReservedLock(inner(f), out);
}

int file_control(sqlite3_file* f, int op, void* arg) {
    return inner(f)->pMethods->xFileControl(inner(f), op, arg);
}

int sector_size(sqlite3_file* f) {
    return inner(f)->pMethods->xSectorSize(inner(f));
}

int device(sqlite3_file* f) {
    return inner(f)->pMethods->xDeviceCharacteristics(inner(f));
}

int shm_map(sqlite3_file* f, int region, int size, int extend, volatile void** out) {
    return inner(f)->pMethods->xShmMap(inner(f), region, size, extend, out);
}

int shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    return inner(f)->pMethods->xShmLock(inner(f), offset, n, flags);
}

void shm_barrier(sqlite3_file* f) {
    inner(f)->pMethods->xShmBarrier(inner(f));
}

int shm_unmap(sqlite3_file* f, int remove) {
    return inner(f)->pMethods->xShmUnmap(inner(f), remove);
}

int fetch(sqlite3_file* f, sqlite3_int64 at, int n, void** out) {
    return inner(f)->pMethods->xFetch(inner(f), at, n, out);
}

int unfetch(sqlite3_file* f, sqlite3_int64 at, void* p) {
    return inner(f)->pMethods->xUnfetch(inner(f), at, p);
}

const sqlite3_io_methods methods{
    3,
    close,
    read,
    write,
    truncate,
    sync,
    file_size,
    lock,
    unlock,
    check_reserved,
    file_control,
    sector_size,
    device,
    shm_map,
    shm_lock,
    shm_barrier,
    shm_unmap,
    fetch,
    unfetch};

int open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
    auto* file = reinterpret_cast<File*>(f);
    file->inner = reinterpret_cast<sqlite3_file*>(file + 1);
    file->wal = (flags & SQLITE_OPEN_WAL) != 0;
    const int rc = real->xOpen(real, name, file->inner, flags, out_flags);
    // SQLite calls xClose when pMethods is set, even after a failed open.
    file->base.pMethods = file->inner->pMethods != nullptr ? &methods : nullptr;
    return rc;
}

const char* name() {
    static sqlite3_vfs vfs = [] {
        real = sqlite3_vfs_find(nullptr);
        sqlite3_vfs v = *real;
        v.pNext = nullptr;
        v.zName = "civicflow-faulty";
        v.szOsFile = static_cast<int>(sizeof(File)) + real->szOsFile;
        v.xOpen = open;
        return v;
    }();
    static const bool registered = sqlite3_vfs_register(&vfs, 0) == SQLITE_OK;
    REQUIRE(registered);
    return vfs.zName;
}

}  // namespace faulty

}  // namespace

TEST_SUITE("server/sqlite_store") {
    TEST_CASE("the sqlite store passes the store conformance checks") {
        Db db;
        testing::StoreUnderTest s{db.open(), &db.now};
        testing::check_store_conformance(s, "");
    }

    TEST_CASE("what was written is there after the store is reopened") {
        Db db;
        {
            auto store = db.open();
            auto w = turn("u1", "session-1");
            w.message_id = "m1";
            w.response = "response-1";
            w.consent = server::Consent{false, 5, "api"};
            REQUIRE(run(store->write(w)));
        }
        auto store = db.open();
        auto loaded = run(store->load("u1", "m1"));
        REQUIRE(loaded);
        CHECK(loaded->session == "session-1");
        CHECK(loaded->response == "response-1");
        CHECK(*run(store->load_consent("u1")) == server::Consent{false, 5, "api"});
    }

    TEST_CASE("concurrent writes share commits (group commit)") {
        Db db;
        auto store = db.open();
        // Another connection holds the write lock while the writes are queued, so that the
        // writer's first transaction waits for it and the others queue behind it, whatever
        // the scheduling of the machine (left to chance, a loaded machine woke the writer for
        // every few writes: 128 commits for 400 once).
        sqlite3* holder = nullptr;
        REQUIRE(sqlite3_open(db.path.c_str(), &holder) == SQLITE_OK);
        REQUIRE(sqlite3_exec(holder, "BEGIN IMMEDIATE;", nullptr, nullptr, nullptr) == SQLITE_OK);
        asio::io_context ioc;
        constexpr int kWrites = 400;
        std::atomic<int> ok{0};
        for (int i = 0; i < kWrites; ++i) {
            asio::co_spawn(
                ioc,
                [&, i]() -> asio::awaitable<void> {
                    auto r = co_await store->write(turn("u" + std::to_string(i), "s"));
                    if (r)
                        ++ok;
                },
                asio::detached
            );
        }
        std::thread writes([&] { ioc.run(); });
        std::this_thread::sleep_for(200ms);  // every write submitted, the writer waiting
        REQUIRE(sqlite3_exec(holder, "COMMIT;", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(holder);
        writes.join();
        CHECK(ok.load() == kWrites);
        CHECK(store->writes() == kWrites);
        // Every write was queued before the writer woke up for most of them: far fewer commits.
        CHECK(store->commits() < kWrites / 4);
        for (int i = 0; i < kWrites; i += 97)
            CHECK(run(store->load("u" + std::to_string(i), {}))->session == "s");
    }

    // SQLite's automatic checkpoint would run inside a commit on the writer thread; the store
    // checkpoints on its own thread and connection instead, once the WAL passes a threshold.
    TEST_CASE("the WAL is copied into the database by the checkpoint thread") {
        Db db;
        server::SqliteStore::Options options;
        options.path = db.path;
        options.checkpoint_pages = 8;
        auto opened = server::SqliteStore::open(options);
        REQUIRE(opened);
        auto store = std::move(*opened);
        const std::string big(2000, 'x');  // a page of its own, about
        const auto db_size = [&] {
            return std::filesystem::file_size(db.path);
        };
        const auto before = db_size();
        for (int i = 0; i < 64; ++i)
            REQUIRE(run(store->write(turn("u" + std::to_string(i), big + std::to_string(i)))));
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (store->checkpoints() == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(5ms);
        CHECK(store->checkpoints() > 0);
        CHECK(db_size() > before + 8 * 4096);  // pages reached the database file itself
        // And nothing was lost or mixed up on the way, in this process or after a reopen.
        for (int i = 0; i < 64; i += 9)
            CHECK(
                run(store->load("u" + std::to_string(i), {}))->session == big + std::to_string(i)
            );
        store.reset();
        auto again = db.open();
        for (int i = 0; i < 64; i += 7)
            CHECK(
                run(again->load("u" + std::to_string(i), {}))->session == big + std::to_string(i)
            );
    }

    TEST_CASE("erasure leaves no trace of the citizen in the database file or its wal") {
        Db db;
        auto store = db.open();
        const std::string user = "919812345678";
        const std::string secret = "DL7777777777777";
        for (int i = 0; i < 20; ++i) {
            auto w = turn(
                user, R"({"v":1,"slots":{"ref":")" + secret + "-" + std::to_string(i) + "\"}}"
            );
            w.message_id = "wamid." + std::to_string(i);
            w.response = "Your reference " + secret + " is being processed";
            w.consent = server::Consent{i % 2 == 0, i, "api"};
            if (i == 19) {
                w.pending = server::PendingCall{
                    "wamid.19", {"c", "status", "GET", "/applications/" + secret, ""}, 1, {}};
            }
            REQUIRE(run(store->write(w)));
            REQUIRE(run(store->write(turn("9198000000" + std::to_string(i), "other"))));
        }
        // The scans below can fail: before the erasure the data is there.
        const bool stored = testing::file_bytes(db.path).find(secret) != std::string::npos ||
                            testing::file_bytes(db.path + "-wal").find(secret) != std::string::npos;
        CHECK(stored);
        REQUIRE(run(store->erase_citizen(user)));
        // Nor is anything left in the store's memory.
        const auto after = run(store->load(user, ""));
        REQUIRE(after);
        CHECK_FALSE(after->session);
        CHECK_FALSE(after->pending);
        // Other citizens keep writing after the erasure.
        REQUIRE(run(store->write(turn("919800000099", "later"))));
        for (const std::string& file : {db.path, db.path + "-wal"}) {
            const std::string bytes = testing::file_bytes(file);
            CHECK_MESSAGE(bytes.find(user) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find(secret) == std::string::npos, file);
        }
        store.reset();
        for (const std::string& file : {db.path, db.path + "-wal"}) {
            const std::string bytes = testing::file_bytes(file);
            CHECK_MESSAGE(bytes.find(user) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find(secret) == std::string::npos, file);
        }
        CHECK(testing::file_bytes(db.path).find("919800000099") != std::string::npos);
    }

    // A backup reading the file holds the WAL: the erasure is answered at once (not after the
    // writer waited out the busy timeout), and the WAL loses the citizen as soon as the reader
    // lets go and the writer commits again.
    TEST_CASE("erasure while a reader holds the wal truncates it once the reader is done") {
        Db db;
        auto store = db.open();
        const std::string user = "919812340000";
        const std::string secret = "DL5555555555555";
        REQUIRE(run(store->write(turn(user, R"({"v":1,"slots":{"ref":")" + secret + "\"}})"))));
        sqlite3* reader = nullptr;
        REQUIRE(sqlite3_open(db.path.c_str(), &reader) == SQLITE_OK);
        REQUIRE(
            sqlite3_exec(
                reader, "BEGIN; SELECT count(*) FROM sqlite_master;", nullptr, nullptr, nullptr
            ) == SQLITE_OK
        );
        const auto start = std::chrono::steady_clock::now();
        REQUIRE(run(store->erase_citizen(user)));
        CHECK(std::chrono::steady_clock::now() - start < 2s);
        CHECK_FALSE(run(store->load(user, ""))->session);
        REQUIRE(sqlite3_exec(reader, "COMMIT;", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(reader);
        std::this_thread::sleep_for(1100ms);  // the retry waits a second
        // The retry runs on the writer thread after a later batch, which may be answered
        // before the retry is done: look again for a while (a loaded machine took longer).
        const auto clean = [&] {
            for (const std::string& file : {db.path, db.path + "-wal"}) {
                const std::string bytes = testing::file_bytes(file);
                if (bytes.find(user) != std::string::npos ||
                    bytes.find(secret) != std::string::npos)
                    return false;
            }
            return true;
        };
        bool erased = false;
        for (int i = 0; i < 50 && !erased; ++i) {
            REQUIRE(run(store->write(turn("919800000098", "later" + std::to_string(i)))));
            erased = clean();
            if (!erased)
                std::this_thread::sleep_for(100ms);
        }
        CHECK(erased);
    }

    TEST_CASE("loads without a message id are answered from the cache once a citizen is read") {
        Db db;
        auto store = db.open();
        auto first = run(store->load("u1", ""));
        REQUIRE(first);
        CHECK_FALSE(first->session);
        CHECK(store->cache_misses() == 1);
        auto w = turn("u1", "s1");
        w.pending = server::PendingCall{"m1", {"c", "status", "GET", "/x", ""}, db.now, {}};
        REQUIRE(run(store->write(w)));
        auto second = run(store->load("u1", ""));
        REQUIRE(second);
        CHECK(second->session == "s1");
        CHECK(second->pending == w.pending);
        CHECK(store->cache_hits() == 1);
        // With a message id the database answers (the stored response is not cached).
        auto done = turn("u1", "s2");
        done.clear_pending = true;
        done.message_id = "m2";
        done.response = "r2";
        REQUIRE(run(store->write(done)));
        auto by_id = run(store->load("u1", "m2"));
        REQUIRE(by_id);
        CHECK(by_id->response == "r2");
        CHECK(by_id->session == "s2");
        CHECK_FALSE(by_id->pending);
        CHECK(store->cache_hits() == 1);
        // The session expires in the cache as in the database.
        db.now += 3'600'000;
        auto expired = run(store->load("u1", ""));
        REQUIRE(expired);
        CHECK_FALSE(expired->session);
        CHECK(store->cache_hits() == 2);
        // A reopened store starts empty and reads the file.
        store.reset();
        db.now -= 3'600'000;
        store = db.open();
        auto reopened = run(store->load("u1", ""));
        REQUIRE(reopened);
        CHECK(reopened->session == "s2");
        CHECK(store->cache_misses() == 1);
    }

    TEST_CASE("a pending call the sweep drops is gone from the cache too") {
        Db db;
        auto store = db.open();
        REQUIRE(run(store->load("u1", "")));  // now cached
        auto w = turn("u1", "s");
        w.session_ttl_ms = 10 * 3'600'000;
        w.pending = server::PendingCall{"m1", {"c", "status", "GET", "/x", ""}, db.now, {}};
        REQUIRE(run(store->write(w)));
        CHECK(run(store->load("u1", ""))->pending);
        db.now += 3'600'000;  // the message retention: the sweep drops the call
        CHECK(*run(store->sweep()) == 1);
        const auto after = run(store->load("u1", ""));
        REQUIRE(after);
        CHECK(after->session == "s");
        CHECK_FALSE(after->pending);
        CHECK(store->cache_hits() == 2);
    }

    TEST_CASE("the sqlite store without a cache passes the store conformance checks") {
        Db db;
        server::SqliteStore::Options options;
        options.path = db.path;
        options.message_ttl = 1h;
        options.cache_entries = 0;
        auto opened = server::SqliteStore::open(options, [&db] { return db.now; });
        REQUIRE(opened);
        const server::SqliteStore* store = opened->get();
        testing::StoreUnderTest s{std::move(*opened), &db.now};
        testing::check_store_conformance(s, "");
        CHECK(store->cache_hits() == 0);
    }

    TEST_CASE("the sweep deletes expired sessions and message ids") {
        Db db;
        auto store = db.open();
        auto w = turn("u1", "s");
        w.session_ttl_ms = 1000;
        w.message_id = "m";
        w.response = "r";
        REQUIRE(run(store->write(w)));
        REQUIRE(run(store->write(turn("u2", "s"))));
        CHECK(*run(store->sweep()) == 0);
        db.now += 1000;
        CHECK(*run(store->sweep()) == 1);
        db.now += 3'600'000;
        // u2's session (1h) and the message id (1h) are both past their ttl now.
        CHECK(*run(store->sweep()) == 2);
    }

    TEST_CASE("a database from a newer build is refused, not guessed at") {
        Db db;
        db.open().reset();
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(db.path.c_str(), &raw) == SQLITE_OK);
        REQUIRE(
            sqlite3_exec(raw, "UPDATE schema_version SET version = 7", nullptr, nullptr, nullptr) ==
            SQLITE_OK
        );
        sqlite3_close(raw);
        server::SqliteStore::Options options;
        options.path = db.path;
        auto opened = server::SqliteStore::open(options);
        REQUIRE_FALSE(opened);
        CHECK(
            opened.error().message == "cannot migrate '" + db.path +
                                          "': the database has schema version 7, newer than "
                                          "this build's 1; refusing to open it"
        );
    }

    // After a failed fsync Linux may drop the unsynced pages and report the next fsync as a
    // success: no write after it may be acknowledged as durable until the store is reopened.
    TEST_CASE("a failed sync fails its writes and refuses every later write until reopened") {
        Db db;
        std::atomic<bool> disk_fails{false};
        server::SqliteStore::Options options;
        options.path = db.path;
        options.sync_file = [&](int fd) {
            if (disk_fails.load()) {
                errno = EIO;
                return -1;
            }
            return ::fdatasync(fd);
        };
        {
            auto opened = server::SqliteStore::open(options);
            REQUIRE(opened);
            auto& store = **opened;
            REQUIRE(run(store.write(turn("u1", "s1"))));
            REQUIRE(run(store.ping()));

            disk_fails = true;
            auto failed = run(store.write(turn("u2", "s2")));
            REQUIRE_FALSE(failed);
            CHECK(failed.error().code == "store");
            CHECK(failed.error().message.find("the disk failed to sync") != std::string::npos);

            disk_fails = false;  // the next fsync would succeed: writes are still refused
            auto refused = run(store.write(turn("u3", "s3")));
            REQUIRE_FALSE(refused);
            CHECK(
                refused.error().message.find("until civicflow is restarted") != std::string::npos
            );
            CHECK_FALSE(run(store.ping()));
            // Reads are refused too: what the store holds may not be on disk (a stored
            // response would answer a retried message with 200).
            CHECK_FALSE(run(store.load("u1", {})));
            CHECK_FALSE(run(store.load("u1", "m1")));
        }
        auto reopened = server::SqliteStore::open(options);
        REQUIRE(reopened);
        CHECK(run((*reopened)->ping()));
        CHECK(run((*reopened)->write(turn("u4", "s4"))));
        CHECK(run((*reopened)->load("u1", {}))->session == "s1");
        CHECK_FALSE(run((*reopened)->load("u3", {}))->session.has_value());
    }

    // A real full disk: a small tmpfs, filled by another file. Needs the right to mount (root
    // with CAP_SYS_ADMIN, as on the CI machine); elsewhere the case says so and checks nothing.
    TEST_CASE("a full disk fails a batch's writes whole, and writing resumes once space returns") {
        const std::string dir = testing::temp_dir("civicflow-sqlite");
        if (::system(("mount -t tmpfs -o size=1m tmpfs '" + dir + "' 2>/dev/null").c_str()) != 0) {
            MESSAGE("cannot mount a tmpfs here (not root?): the full-disk case did not run");
            std::filesystem::remove(dir);
            return;
        }

        struct Unmount {
            std::string dir;

            ~Unmount() {
                if (::system(("umount '" + dir + "'").c_str()) == 0)
                    std::filesystem::remove(dir);
            }
        } unmount{dir};

        Db db(dir + "/civicflow.db");
        {
            auto store = db.open();
            REQUIRE(run(store->write(turn("before", "s0"))));
            // Fill what is left of the disk.
            const std::string filler = dir + "/filler";
            {
                std::ofstream out(filler, std::ios::binary);
                const std::string block(4096, 'x');
                while (out.write(block.data(), static_cast<std::streamsize>(block.size())))
                    out.flush();
            }
            // Several writes queued together: one batch, one commit that cannot be written.
            const std::string big(64 * 1024, 's');
            asio::io_context ioc;
            std::atomic<int> failed{0};
            std::atomic<int> stored{0};
            for (int i = 0; i < 8; ++i) {
                asio::co_spawn(
                    ioc,
                    [&, i]() -> asio::awaitable<void> {
                        auto r = co_await store->write(turn("full" + std::to_string(i), big));
                        if (r) {
                            ++stored;
                        } else {
                            CHECK(r.error().code == "store");
                            ++failed;
                        }
                    },
                    asio::detached
                );
            }
            ioc.run();
            CHECK(failed.load() == 8);
            CHECK(stored.load() == 0);
            // Nothing of the failed batch is there, half or whole; what was there stays.
            for (int i = 0; i < 8; ++i)
                CHECK_FALSE(run(store->load("full" + std::to_string(i), {}))->session.has_value());
            CHECK(run(store->load("before", {}))->session == "s0");

            std::filesystem::remove(filler);
            REQUIRE(run(store->write(turn("after", big))));
            CHECK(run(store->load("after", {}))->session == big);
        }
        // And all of it is there after a reopen.
        auto store = db.open();
        CHECK(run(store->load("before", {}))->session == "s0");
        CHECK(run(store->load("after", {}))->session.has_value());
        CHECK_FALSE(run(store->load("full0", {}))->session.has_value());
    }

    // A disk error under a cache spill (a write larger than SQLite's page cache puts pages in
    // the WAL before its commit) makes SQLite roll the whole transaction back mid-batch: the
    // batch's writes before it went with it, and the ones after must not run on their own
    // (each would commit by itself, outside the batch and its sync). None is acknowledged,
    // none is stored.
    TEST_CASE("a transaction SQLite rolls back mid-batch fails every write of the batch") {
        Db db;
        server::SqliteStore::Options options;
        options.path = db.path;
        options.vfs = faulty::name();
        {
            auto opened = server::SqliteStore::open(options);
            REQUIRE(opened);
            auto& store = **opened;
            REQUIRE(run(store.write(turn("before", "s0"))));
            faulty::failed_writes = 0;
            faulty::holding = false;
            faulty::release = false;
            faulty::armed = true;
            // The writer commits this one and waits inside it, until the batch is queued.
            std::thread first([&] { CHECK(run(store.write(turn("first", "HOLD-MARK")))); });
            while (!faulty::holding.load())
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            // Queued together behind it: one batch, its fourth write 3 MiB (more than the
            // page cache, so it spills), each of the others a page.
            std::string big;
            while (big.size() < 3 * 1024 * 1024)
                big += "FAIL-MARK ";
            asio::io_context ioc;
            std::atomic<int> stored{0};
            std::vector<std::string> errors;
            for (int i = 0; i < 8; ++i) {
                asio::co_spawn(
                    ioc,
                    [&, i]() -> asio::awaitable<void> {
                        // Built before the co_await: g++ 12 destroys the temporary of a
                        // conditional inside one twice.
                        server::TurnWrite w = turn(
                            "batch" + std::to_string(i), i == 3 ? big : "s" + std::to_string(i)
                        );
                        auto r = co_await store.write(std::move(w));
                        if (r)
                            ++stored;
                        else
                            errors.push_back(r.error().message);
                    },
                    asio::detached
                );
            }
            ioc.poll();  // every write has handed its job to the store
            faulty::release = true;
            first.join();
            ioc.run();
            faulty::armed = false;
            CHECK(faulty::failed_writes.load() > 0);
            CHECK(stored.load() == 0);
            REQUIRE(errors.size() == 8);
            CHECK(std::count_if(errors.begin(), errors.end(), [](const std::string& e) {
                      return e.find("the transaction was rolled back") != std::string::npos;
                  }) == 7);
            for (int i = 0; i < 8; ++i)
                CHECK_FALSE(run(store.load("batch" + std::to_string(i), {}))->session.has_value());
            CHECK(run(store.load("before", {}))->session == "s0");
            CHECK(run(store.load("first", {}))->session == "HOLD-MARK");
            // The disk works again: so does the store.
            REQUIRE(run(store.write(turn("after", "s1"))));
            CHECK(run(store.load("after", {}))->session == "s1");
        }
        auto reopened = server::SqliteStore::open(options);
        REQUIRE(reopened);
        for (int i = 0; i < 8; ++i) {
            CHECK_FALSE(run((*reopened)->load("batch" + std::to_string(i), {}))->session.has_value()
            );
        }
        CHECK(run((*reopened)->load("before", {}))->session == "s0");
        CHECK(run((*reopened)->load("first", {}))->session == "HOLD-MARK");
        CHECK(run((*reopened)->load("after", {}))->session == "s1");
    }

    TEST_CASE("an unopenable path is a clear error") {
        server::SqliteStore::Options options;
        options.path = "/nonexistent-dir/x/civicflow.db";
        auto opened = server::SqliteStore::open(options);
        REQUIRE_FALSE(opened);
        CHECK(
            opened.error().message ==
            "cannot open the SQLite database '/nonexistent-dir/x/civicflow.db': unable to open "
            "database file"
        );
    }
}
