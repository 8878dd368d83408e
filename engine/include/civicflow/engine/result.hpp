/// Result<T>: a value or an Error, shaped like std::expected (not in g++ 12's C++20).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace civicflow::engine {

/// An expected failure on a request path: a stable machine code and a human message.
/// Messages never contain personal data (message text, phone numbers).
struct Error {
    std::string code;
    std::string message;
};

/// Holds either a T or an Error. Accessing the wrong alternative is a programming error
/// (std::get throws std::bad_variant_access); callers test has_value() first.
template <typename T>
class Result {
public:
    Result(T value)
        : data_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit like expected

    Result(Error error)
        : data_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    bool has_value() const { return data_.index() == 0; }

    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(data_); }

    const T& value() const& { return std::get<0>(data_); }

    T&& value() && { return std::get<0>(std::move(data_)); }

    T& operator*() & { return value(); }

    const T& operator*() const& { return value(); }

    T* operator->() { return &value(); }

    const T* operator->() const { return &value(); }

    const Error& error() const { return std::get<1>(data_); }

private:
    std::variant<T, Error> data_;
};

/// Convenience for Result<void>-like uses.
struct Ok {};

}  // namespace civicflow::engine
