// What the two SQLite stores (sessions: sqlite_store.cpp; the WhatsApp channel:
// channel_sqlite_store.cpp) share: prepared statements, errors, schema migrations.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <civicflow/engine/result.hpp>

#include <sqlite3.h>

namespace civicflow::server::sqlite {

/// A store error naming what failed and SQLite's message (which names tables and
/// constraints, never bound values).
inline engine::Error db_error(sqlite3* db, const char* what) {
    return engine::Error{"store", std::string(what) + ": " + sqlite3_errmsg(db)};
}

/// A prepared statement, reset after each use. Text is bound without a copy: it must outlive
/// the step.
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

    /// NULL for an empty string.
    Statement& bind_or_null(int i, const std::string& s) {
        if (s.empty()) {
            sqlite3_bind_null(stmt_, i);
            return *this;
        }
        return bind(i, s);
    }

    /// Runs to completion (writes); returns the last result code.
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

inline bool exec(sqlite3* db, const char* sql) {
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

/// Brings a schema up to date in one transaction (BEGIN IMMEDIATE: another connection may be
/// migrating the same file): `version_table` holds the version, the number of `migrations`
/// applied; those not yet applied run in order. A file of a newer version (written by a newer
/// build) is refused, not guessed at: "the database has <label> version N, newer than ...".
inline engine::Result<engine::Ok> migrate(
    sqlite3* db,
    std::string_view version_table,
    std::span<const char* const> migrations,
    std::string_view label
) {
    const std::string table(version_table);
    const auto in_transaction = [&]() -> engine::Result<engine::Ok> {
        const std::string create =
            "CREATE TABLE IF NOT EXISTS " + table + "(version INTEGER NOT NULL)";
        if (!exec(db, create.c_str()))
            return db_error(db, "cannot create the schema version table");
        const int latest = static_cast<int>(migrations.size());
        int version = 0;
        {
            Statement q;
            const std::string select = "SELECT version FROM " + table;
            if (!q.prepare(db, select.c_str()))
                return db_error(db, "cannot read the schema version");
            if (q.step() == SQLITE_ROW)
                version = static_cast<int>(q.int64(0));
        }
        if (version > latest) {
            return engine::Error{
                "store",
                "the database has " + std::string(label) + " version " + std::to_string(version) +
                    ", newer than this build's " + std::to_string(latest) +
                    "; refusing to open it"};
        }
        for (int v = version; v < latest; ++v) {
            if (!exec(db, migrations[static_cast<std::size_t>(v)]))
                return db_error(db, "migration failed");
        }
        if (version < latest) {
            const std::string set = "DELETE FROM " + table + "; INSERT INTO " + table + " VALUES(" +
                                    std::to_string(latest) + ")";
            if (!exec(db, set.c_str()))
                return db_error(db, "cannot record the schema version");
        }
        return engine::Ok{};
    };
    if (!exec(db, "BEGIN IMMEDIATE"))
        return db_error(db, "cannot begin a migration");
    engine::Result<engine::Ok> result = in_transaction();
    if (!result) {
        exec(db, "ROLLBACK");
        return result;
    }
    if (!exec(db, "COMMIT")) {
        engine::Error e = db_error(db, "cannot commit a migration");
        exec(db, "ROLLBACK");
        return e;
    }
    return engine::Ok{};
}

}  // namespace civicflow::server::sqlite
