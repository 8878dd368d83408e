#include <array>
#include <cstddef>
#include <optional>
#include <string>

#include <civicflow/server/whatsapp/signature.hpp>

#include "../hex.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

namespace civicflow::server::whatsapp {
namespace {

constexpr std::string_view kPrefix = "sha256=";
constexpr std::size_t kMacBytes = 32;

using Mac = std::array<unsigned char, kMacBytes>;

// One HMAC-SHA256 context per thread, keyed once: OpenSSL 3's one-shot HMAC() fetches the
// algorithm and allocates a context on every call, which costs more than hashing a typical
// webhook body. The key is re-set only when the secret changes (rotation, tests).
class ThreadHmac {
public:
    ThreadHmac() = default;
    ThreadHmac(const ThreadHmac&) = delete;
    ThreadHmac& operator=(const ThreadHmac&) = delete;

    ~ThreadHmac() {
        EVP_MAC_CTX_free(ctx_);
        EVP_MAC_free(mac_);
        if (!key_.empty()) {
            OPENSSL_cleanse(key_.data(), key_.size());
        }
    }

    // nullopt only when OpenSSL fails.
    std::optional<Mac> compute(std::string_view body, std::string_view key) {
        if (ctx_ == nullptr) {
            mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
            ctx_ = mac_ != nullptr ? EVP_MAC_CTX_new(mac_) : nullptr;
            if (ctx_ == nullptr) {
                return std::nullopt;
            }
        }
        bool ok = false;
        if (keyed_ && key == key_) {
            // Same key: a null key restarts the MAC with the key already set.
            ok = EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1;
        } else {
            static char digest[] = "SHA256";
            const OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                OSSL_PARAM_construct_end(),
            };
            // A non-null key pointer even for an empty key: a null one means "keep the key".
            static const unsigned char kEmpty = 0;
            const auto* key_data =
                key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
            if (!key_.empty()) {
                OPENSSL_cleanse(key_.data(), key_.size());
            }
            key_.assign(key);
            ok = EVP_MAC_init(ctx_, key_data, key.size(), params) == 1;
            keyed_ = ok;
        }
        Mac mac{};
        std::size_t length = 0;
        ok = ok &&
             EVP_MAC_update(
                 ctx_, reinterpret_cast<const unsigned char*>(body.data()), body.size()
             ) == 1 &&
             EVP_MAC_final(ctx_, mac.data(), &length, mac.size()) == 1 && length == kMacBytes;
        if (!ok) {
            keyed_ = false;
            return std::nullopt;
        }
        return mac;
    }

private:
    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* ctx_ = nullptr;
    std::string key_;
    bool keyed_ = false;
};

std::optional<Mac> hmac_sha256(std::string_view body, std::string_view key) {
    thread_local ThreadHmac hmac;
    return hmac.compute(body, key);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

}  // namespace

bool signature_matches(
    std::string_view header_value, std::string_view raw_body, std::string_view app_secret
) {
    if (app_secret.empty()) {
        return false;
    }
    std::string_view value = trim_ows(header_value);
    if (value.substr(0, kPrefix.size()) != kPrefix) {
        return false;
    }
    value.remove_prefix(kPrefix.size());
    if (value.size() != 2 * kMacBytes) {
        return false;
    }
    // Decoding depends only on the (public) header, not on the secret MAC: no timing leak.
    Mac claimed{};
    for (std::size_t i = 0; i < kMacBytes; ++i) {
        const int hi = hex_value(value[2 * i]);
        const int lo = hex_value(value[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        claimed[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    const std::optional<Mac> expected = hmac_sha256(raw_body, app_secret);
    if (!expected) {
        return false;
    }
    return CRYPTO_memcmp(claimed.data(), expected->data(), kMacBytes) == 0;
}

std::string sign_body(std::string_view raw_body, std::string_view app_secret) {
    const std::optional<Mac> mac = hmac_sha256(raw_body, app_secret);
    std::string out(kPrefix);
    if (!mac) {
        // Unreachable with a working OpenSSL; an empty digest never matches anything.
        return out;
    }
    out.reserve(kPrefix.size() + 2 * kMacBytes);
    append_hex(out, *mac);
    return out;
}

}  // namespace civicflow::server::whatsapp
