#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <civicflow/server/whatsapp/signature.hpp>

using civicflow::server::whatsapp::sign_body;
using civicflow::server::whatsapp::signature_matches;

namespace {

constexpr const char* kSecret = "test-app-secret";

std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(CIVICFLOW_WA_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << name);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What a framework does when it hands the handler a parsed body: parse and write it back.
std::string reserialize(const std::string& body) {
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    REQUIRE_FALSE(doc.HasParseError());
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    doc.Accept(writer);
    return {buffer.GetString(), buffer.GetSize()};
}

std::string upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'f') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

}  // namespace

TEST_SUITE("server/whatsapp/signature") {
    TEST_CASE("sign_body matches the RFC 4231 HMAC-SHA256 test vector") {
        CHECK(
            sign_body("what do ya want for nothing?", "Jefe") ==
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    TEST_CASE("fixture bodies are signed over their raw bytes, as openssl computes it") {
        // Expected values from `openssl dgst -sha256 -hmac test-app-secret FILE`.
        CHECK(
            sign_body(read_fixture("text_escaped_hindi.json"), kSecret) ==
            "sha256=5f5472a436526d9306b35aff9489300d892af6bedf3840a55a9a35c488a88de3"
        );
        CHECK(
            sign_body(read_fixture("text_utf8_hindi.json"), kSecret) ==
            "sha256=e442a8fca4996305a7aedf8c2e6ad1f6d8aec6819640042b45df6e44199a761a"
        );
    }

    TEST_CASE("a literal UTF-8 body is accepted with the signature of its bytes") {
        const std::string body = read_fixture("text_utf8_hindi.json");
        CHECK(body.find("मेरा राशन कार्ड") != std::string::npos);
        CHECK(signature_matches(sign_body(body, kSecret), body, kSecret));
    }

    TEST_CASE("a \\u-escaped body is verified as received, never re-serialized") {
        const std::string body = read_fixture("text_escaped_hindi.json");
        REQUIRE(body.find("\\u092a\\u0947") != std::string::npos);
        REQUIRE(body.find("12\\/2024") != std::string::npos);
        const std::string header = sign_body(body, kSecret);
        CHECK(signature_matches(header, body, kSecret));

        // The same JSON value written back (literal UTF-8, '/' unescaped) is other bytes: a
        // server that hashed its re-serialized body would reject every real Meta webhook.
        const std::string rewritten = reserialize(body);
        REQUIRE(rewritten != body);
        CHECK(rewritten.find("पेंशन की स्थिति 12/2024") != std::string::npos);
        CHECK_FALSE(signature_matches(header, rewritten, kSecret));
        CHECK(sign_body(rewritten, kSecret) != header);
    }

    TEST_CASE("upper-case hex and surrounding white space are accepted") {
        const std::string body = read_fixture("text.json");
        const std::string header = sign_body(body, kSecret);
        const std::string upper_hex = "sha256=" + upper(header.substr(7));
        REQUIRE(upper_hex != header);
        CHECK(signature_matches(upper_hex, body, kSecret));
        CHECK(signature_matches("  " + header + "\t", body, kSecret));
    }

    TEST_CASE("a wrong signature, secret or body is rejected") {
        const std::string body = read_fixture("text.json");
        const std::string header = sign_body(body, kSecret);
        CHECK_FALSE(signature_matches(header, body, "another-secret"));
        CHECK_FALSE(signature_matches(sign_body(body, "another-secret"), body, kSecret));

        std::string flipped = header;
        flipped.back() = flipped.back() == '0' ? '1' : '0';
        CHECK_FALSE(signature_matches(flipped, body, kSecret));

        std::string tampered = body;
        tampered[tampered.find("renew")] = 'R';
        CHECK_FALSE(signature_matches(header, tampered, kSecret));
        CHECK_FALSE(signature_matches(header, body + " ", kSecret));
    }

    TEST_CASE("missing and malformed headers are rejected") {
        const std::string body = read_fixture("text.json");
        const std::string hex = sign_body(body, kSecret).substr(7);
        REQUIRE(hex.size() == 64);
        const std::string cases[] = {
            "",                                                    // missing
            "sha256=",                                             // no digest
            hex,                                                   // no algorithm
            "sha256:" + hex,                                       // wrong separator
            "SHA256=" + hex,                                       // the algorithm is lower-case
            "sha1=" + hex.substr(0, 40),                           // the old SHA-1 header's format
            "sha256=" + hex.substr(0, 63),                         // one digit short
            "sha256=" + hex + "0",                                 // one digit more
            "sha256=" + hex.substr(0, 63) + "g",                   // not hex
            "sha256=" + hex.substr(0, 32) + " " + hex.substr(33),  // a space inside
            "sha256=" + hex + ",sha256=" + hex,                    // two values
        };
        for (const std::string& header : cases) {
            CAPTURE(header);
            CHECK_FALSE(signature_matches(header, body, kSecret));
        }
    }

    TEST_CASE("an empty app secret never verifies, even a matching empty-key signature") {
        const std::string body = read_fixture("text.json");
        const std::string header = sign_body(body, "");
        REQUIRE(header.size() == 71);
        CHECK_FALSE(signature_matches(header, body, ""));
    }

    TEST_CASE("an empty body has a signature too") {
        const std::string header = sign_body("", kSecret);
        CHECK(signature_matches(header, "", kSecret));
        CHECK_FALSE(signature_matches(header, "{}", kSecret));
    }
}
