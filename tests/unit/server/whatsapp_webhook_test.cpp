#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/server/whatsapp/webhook.hpp>

using namespace civicflow;
using server::whatsapp::InboundMessage;
using server::whatsapp::parse_webhook;
using server::whatsapp::StatusUpdate;
using server::whatsapp::WebhookBatch;
using Type = InboundMessage::Type;
using Kind = StatusUpdate::Kind;

namespace {

constexpr const char* kPnid = "106540352242922";
constexpr const char* kPnid2 = "106540352242923";
constexpr const char* kUser = "16505551234";
constexpr const char* kUser2 = "919812345678";
constexpr const char* kBsuid = "US.13491208655302741918";
constexpr const char* kContextWamid =
    "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=";

std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(CIVICFLOW_WA_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << name);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const char* type_name(Type t) {
    switch (t) {
        case Type::kText:
            return "text";
        case Type::kInteractiveButton:
            return "interactive_button";
        case Type::kInteractiveList:
            return "interactive_list";
        case Type::kButton:
            return "button";
        case Type::kImage:
            return "image";
        case Type::kDocument:
            return "document";
        case Type::kAudio:
            return "audio";
        case Type::kVideo:
            return "video";
        case Type::kSticker:
            return "sticker";
        case Type::kLocation:
            return "location";
        case Type::kReaction:
            return "reaction";
        case Type::kUnsupported:
            return "unsupported";
    }
    return "?";
}

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::kSent:
            return "sent";
        case Kind::kDelivered:
            return "delivered";
        case Kind::kRead:
            return "read";
        case Kind::kFailed:
            return "failed";
        case Kind::kOther:
            return "other";
    }
    return "?";
}

// Every field, one per line: a failed CHECK shows both structs in full.
std::string describe(const InboundMessage& m) {
    return "phone_number_id=" + m.phone_number_id + "\ncitizen=" + m.citizen +
           "\nuser_id=" + m.user_id + "\nprofile_name=" + m.profile_name + "\nid=" + m.id +
           "\ntimestamp=" + std::to_string(m.timestamp) + "\ntype=" + type_name(m.type) +
           "\nraw_type=" + m.raw_type + "\ntext=" + m.text + "\nreply_id=" + m.reply_id +
           "\nreply_title=" + m.reply_title + "\nmedia.id=" + m.media.id +
           "\nmedia.mime_type=" + m.media.mime_type + "\nmedia.caption=" + m.media.caption;
}

std::string describe(const StatusUpdate& s) {
    return "phone_number_id=" + s.phone_number_id + "\nid=" + s.id + "\nrecipient=" + s.recipient +
           "\nkind=" + kind_name(s.kind) + "\ntimestamp=" + std::to_string(s.timestamp) +
           "\nerror_code=" + std::to_string(s.error_code) + "\nerror_title=" + s.error_title +
           "\ncallback_data=" + s.callback_data;
}

// A message from kUser ("Sheena Nelson") to kPnid, the common case of the fixtures.
InboundMessage from_user(std::string id, std::int64_t ts, Type type, std::string raw_type) {
    InboundMessage m;
    m.phone_number_id = kPnid;
    m.citizen = kUser;
    m.profile_name = "Sheena Nelson";
    m.id = std::move(id);
    m.timestamp = ts;
    m.type = type;
    m.raw_type = std::move(raw_type);
    return m;
}

InboundMessage media_message(
    std::string wamid,
    std::int64_t ts,
    Type type,
    std::string raw_type,
    std::string media_id,
    std::string mime,
    std::string caption
) {
    InboundMessage m = from_user(std::move(wamid), ts, type, std::move(raw_type));
    m.media = engine::InboundMedia{std::move(media_id), std::move(mime), std::move(caption)};
    return m;
}

StatusUpdate status(std::string pnid, std::string id, Kind kind, std::int64_t ts) {
    StatusUpdate s;
    s.phone_number_id = std::move(pnid);
    s.id = std::move(id);
    s.recipient = kUser;
    s.kind = kind;
    s.timestamp = ts;
    return s;
}

struct Expected {
    std::vector<InboundMessage> messages;
    std::vector<StatusUpdate> statuses;
};

// The exact parse of every fixture in tests/fixtures/whatsapp.
std::map<std::string, Expected> expectations() {
    std::map<std::string, Expected> e;
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            1739321024,
            Type::kText,
            "text"
        );
        m.text = "I need to renew my passport";
        e["text.json"].messages = {m};
    }
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ0QjdGRTIyMUFBMkQ0N0U1OEIyMQA=",
            1739321100,
            Type::kText,
            "text"
        );
        m.profile_name = "सीमा";
        m.text = "मेरा राशन कार्ड कहाँ है? https://example.gov.in/status";
        e["text_utf8_hindi.json"].messages = {m};
    }
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ1QzhBQjMzMkJCM0U1OEY2OUMyMgA=",
            1739321160,
            Type::kText,
            "text"
        );
        m.profile_name = "राम";
        m.text = "पेंशन की स्थिति 12/2024 देखें";  // \u escapes and \/ decoded
        e["text_escaped_hindi.json"].messages = {m};
    }
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ2RDlCQzQ0M0NDNEY2OTA3MEQzMwA=",
            1739321200,
            Type::kInteractiveButton,
            "interactive"
        );
        m.reply_id = "renew";
        m.reply_title = "Renew passport";
        e["interactive_button_reply.json"].messages = {m};
    }
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ3RTBDRDU1NERENTA3MDE4MUU0NAA=",
            1739321260,
            Type::kInteractiveList,
            "interactive"
        );
        m.reply_id = "lost_card";
        m.reply_title = "Report a lost ration…";
        e["interactive_list_reply.json"].messages = {m};
    }
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ4RjFERTY2NUVFNjE4MTI5MkY1NQA=",
            1739321320,
            Type::kButton,
            "button"
        );
        m.text = "Track my application";
        m.reply_id = "track_application";
        e["button.json"].messages = {m};
    }
    e["image.json"].messages = {media_message(
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5MDJFRjc3NkZGNzI5MjNBMzA2NgA=",
        1739321380,
        Type::kImage,
        "image",
        "1003383421387256",
        "image/jpeg",
        "Broken streetlight near the school"
    )};
    e["document.json"].messages = {media_message(
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxMTNGMDg4N0FBODNBMzRCNDE3NwA=",
        1739321440,
        Type::kDocument,
        "document",
        "1090117562574285",
        "application/pdf",
        "Income certificate"
    )};
    e["audio.json"].messages = {media_message(
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxMjQwMTk5OEJCOTRCNDVDNTI4OAA=",
        1739321500,
        Type::kAudio,
        "audio",
        "1158211655536293",
        "audio/ogg; codecs=opus",
        ""
    )};
    e["video.json"].messages = {media_message(
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxMzUxMkFBOUNDQTVDNTZENjM5OQA=",
        1739321560,
        Type::kVideo,
        "video",
        "1226305854810726",
        "video/mp4",
        "Water logging on Main Road"
    )};
    e["sticker.json"].messages = {media_message(
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxNDYyM0JCMERERTZENjdFNzQwMAA=",
        1739321620,
        Type::kSticker,
        "sticker",
        "1294400047085157",
        "image/webp",
        ""
    )};
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxNTczNENDMUVFRjdFNzhGODUxMQA=",
            1739321680,
            Type::kLocation,
            "location"
        );
        m.text = "37.44221496582,-122.16135406494";
        e["location.json"].messages = {m};
    }
    {
        auto m = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxNjg0NUREMkZGMDhGODlBOTYyMgA=",
            1739321740,
            Type::kReaction,
            "reaction"
        );
        m.text = "👍";
        m.reply_id = kContextWamid;
        e["reaction.json"].messages = {m};
    }
    e["unsupported.json"].messages = {from_user(
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxNzk1NkVFM0FBMTlBOUFCMDczMwA=",
        1739321800,
        Type::kUnsupported,
        "unsupported"
    )};
    {
        Expected& b = e["batch.json"];
        auto hello = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQyMEE2N0ZGNEJCMkFCQUJDMTg0NAA=",
            1739322000,
            Type::kText,
            "text"
        );
        hello.text = "hello";
        auto namaste = from_user(
            "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgUMjFCNzhBQTVDQzNCQ0JDRDI5NTUA",
            1739322001,
            Type::kText,
            "text"
        );
        namaste.citizen = kUser2;
        namaste.profile_name = "Priya";
        namaste.text = "नमस्ते";
        auto yes = from_user(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQyMkM4OUJCNkRENENDQ0RFMzA2NgA=",
            1739322002,
            Type::kInteractiveButton,
            "interactive"
        );
        yes.reply_id = "yes";
        yes.reply_title = "Yes";
        auto where = from_user(
            "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgUMjRFMERERDhGRjZFRUYwNTI4OAA=",
            1739322004,
            Type::kLocation,
            "location"
        );
        where.phone_number_id = kPnid2;
        where.citizen = kUser2;
        where.profile_name = "Priya";
        where.text = "28.6139,77.209";
        b.messages = {hello, namaste, yes, where};
        b.statuses = {status(
            kPnid2,
            "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBIyM0Q5MENDN0VFNURERUY0MTcA",
            Kind::kDelivered,
            1739322003
        )};
    }
    {
        const std::string out = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RkY2QzI0QTc1OEU0NjAwQUQA";
        auto sent = status(kPnid, out, Kind::kSent, 1739322100);
        sent.callback_data = "wamid.in-1#0";
        auto failed = status(
            kPnid,
            "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI2MDA3RDM1Qjg2OUY1NzExQkUA",
            Kind::kFailed,
            1739322200
        );
        failed.error_code = 131047;
        failed.error_title = "Re-engagement message";
        e["statuses.json"].statuses = {
            sent,
            status(kPnid, out, Kind::kDelivered, 1739322101),
            status(kPnid, out, Kind::kRead, 1739322160),
            failed,
        };
    }
    {
        InboundMessage m;
        m.phone_number_id = kPnid;
        m.citizen = kBsuid;
        m.user_id = kBsuid;
        m.profile_name = "Sam";
        m.id = "wamid.HBgXVVMuMTM0OTEyMDg2NTUzMDI3NDE5MTgVAgASGBQyNUYxRUVFOUEwN0ZGMDE2MzlBOQA=";
        m.timestamp = 1739322300;
        m.type = Type::kText;
        m.raw_type = "text";
        m.text = "Where is my application?";
        e["username_only.json"].messages = {m};
    }
    return e;
}

WebhookBatch parse_ok(std::string_view body) {
    auto r = parse_webhook(body);
    REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? "" : r.error().message));
    return std::move(r).value();
}

// A one-message webhook around `message` (a JSON object), with `contacts` (a JSON array).
std::string one_message(const std::string& message, const std::string& contacts = "[]") {
    return R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":)" +
           contacts + R"(,"messages":[)" + message + "]}}]}]}";
}

}  // namespace

TEST_SUITE("server/whatsapp/webhook") {
    TEST_CASE("every fixture parses into exactly the expected messages and statuses") {
        const auto expected = expectations();
        std::set<std::string> seen;
        for (const auto& file : std::filesystem::directory_iterator(CIVICFLOW_WA_FIXTURES)) {
            const std::string name = file.path().filename().string();
            if (file.path().extension() != ".json") {
                continue;
            }
            seen.insert(name);
            CAPTURE(name);
            const auto it = expected.find(name);
            REQUIRE_MESSAGE(it != expected.end(), "no expectation for fixture " << name);
            const WebhookBatch batch = parse_ok(read_fixture(name));
            CHECK(batch.skipped == 0);
            REQUIRE(batch.messages.size() == it->second.messages.size());
            for (std::size_t i = 0; i < batch.messages.size(); ++i) {
                CHECK(describe(batch.messages[i]) == describe(it->second.messages[i]));
            }
            REQUIRE(batch.statuses.size() == it->second.statuses.size());
            for (std::size_t i = 0; i < batch.statuses.size(); ++i) {
                CHECK(describe(batch.statuses[i]) == describe(it->second.statuses[i]));
            }
        }
        for (const auto& [name, unused] : expected) {
            CHECK_MESSAGE(seen.count(name) == 1, "expected fixture " << name << " is missing");
        }
    }

    TEST_CASE("a batch is iterated across entries and changes in body order") {
        const WebhookBatch batch = parse_ok(read_fixture("batch.json"));
        std::vector<std::string> order;
        for (const auto& m : batch.messages) {
            order.push_back(m.phone_number_id + "/" + m.citizen + "/" + m.raw_type);
        }
        CHECK(
            order ==
            std::vector<std::string>{
                "106540352242922/16505551234/text",
                "106540352242922/919812345678/text",
                "106540352242922/16505551234/interactive",
                "106540352242923/919812345678/location",
            }
        );
        REQUIRE(batch.statuses.size() == 1);
        CHECK(batch.statuses[0].phone_number_id == kPnid2);
    }

    TEST_CASE("each message type becomes the engine input the flow expects") {
        const auto expected = expectations();
        const auto input = [&](const char* fixture) {
            return expected.at(fixture).messages.at(0).to_input();
        };
        auto text = input("text.json");
        CHECK(text.kind == engine::Input::Kind::kText);
        CHECK(text.text == "I need to renew my passport");
        CHECK(text.profile_name == "Sheena Nelson");

        auto button = input("interactive_button_reply.json");
        CHECK(button.kind == engine::Input::Kind::kChoice);
        CHECK(button.choice_id == "renew");
        auto list = input("interactive_list_reply.json");
        CHECK(list.kind == engine::Input::Kind::kChoice);
        CHECK(list.choice_id == "lost_card");
        auto quick = input("button.json");
        CHECK(quick.kind == engine::Input::Kind::kChoice);
        CHECK(quick.choice_id == "track_application");

        for (const char* media : {"image.json", "document.json", "audio.json", "video.json"}) {
            CAPTURE(media);
            auto in = input(media);
            CHECK(in.kind == engine::Input::Kind::kMedia);
            CHECK(in.media.id == expected.at(media).messages[0].media.id);
            CHECK(in.media.mime_type == expected.at(media).messages[0].media.mime_type);
            CHECK(in.media.caption == expected.at(media).messages[0].media.caption);
        }
        auto photo = input("image.json");
        CHECK(photo.media.caption == "Broken streetlight near the school");

        auto location = input("location.json");
        CHECK(location.kind == engine::Input::Kind::kLocation);
        CHECK(location.text == "37.44221496582,-122.16135406494");

        CHECK(expected.at("text.json").messages[0].is_input());
        CHECK(expected.at("sticker.json").messages[0].is_input());
        CHECK_FALSE(expected.at("reaction.json").messages[0].is_input());
        CHECK_FALSE(expected.at("unsupported.json").messages[0].is_input());
    }

    TEST_CASE("a template button without a payload is read as the words on it") {
        const WebhookBatch batch = parse_ok(one_message(
            R"({"from":"1","id":"w1","timestamp":"1","type":"button","button":{"payload":"","text":"Stop promotions"}})"
        ));
        REQUIRE(batch.messages.size() == 1);
        const auto in = batch.messages[0].to_input();
        CHECK(in.kind == engine::Input::Kind::kText);
        CHECK(in.text == "Stop promotions");
    }

    TEST_CASE("a username-only citizen is keyed by the business-scoped user id") {
        const WebhookBatch batch = parse_ok(read_fixture("username_only.json"));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].citizen == kBsuid);
        CHECK(batch.messages[0].profile_name == "Sam");
    }

    TEST_CASE("the user id is found in contacts when the message carries no sender at all") {
        const WebhookBatch batch = parse_ok(one_message(
            R"({"id":"w1","timestamp":"5","type":"text","text":{"body":"hi"}})",
            R"([{"profile":{"name":"Sam"},"user_id":"IN.5551234"}])"
        ));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].citizen == "IN.5551234");
        CHECK(batch.messages[0].user_id == "IN.5551234");
        CHECK(batch.messages[0].profile_name == "Sam");
        CHECK(batch.skipped == 0);
    }

    TEST_CASE("a citizen with both ids is keyed by phone number and keeps the user id") {
        WebhookBatch batch = parse_ok(one_message(
            R"({"from":"16505551234","id":"w1","timestamp":"5","type":"text","text":{"body":"hi"}})",
            R"([{"profile":{"name":"Sheena"},"wa_id":"16505551234","user_id":"US.42"}])"
        ));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].citizen == "16505551234");
        CHECK(batch.messages[0].user_id == "US.42");
        CHECK(batch.messages[0].profile_name == "Sheena");

        batch = parse_ok(one_message(
            R"({"from_user_id":"US.42","id":"w2","timestamp":"5","type":"text","text":{"body":"hi"}})",
            R"([{"profile":{"name":"Sheena"},"wa_id":"16505551234","user_id":"US.42"}])"
        ));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].citizen == "16505551234");
        CHECK(batch.messages[0].user_id == "US.42");
    }

    TEST_CASE("the profile name comes from the sender's own contact entry") {
        const WebhookBatch batch = parse_ok(one_message(
            R"({"from":"222","id":"w1","timestamp":"5","type":"text","text":{"body":"hi"}})",
            R"([{"profile":{"name":"Asha"},"wa_id":"111"},{"profile":{"name":"Ravi"},"wa_id":"222"}])"
        ));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].profile_name == "Ravi");

        const WebhookBatch unknown = parse_ok(one_message(
            R"({"from":"333","id":"w2","timestamp":"5","type":"text","text":{"body":"hi"}})",
            R"([{"profile":{"name":"Asha"},"wa_id":"111"}])"
        ));
        REQUIRE(unknown.messages.size() == 1);
        CHECK(unknown.messages[0].citizen == "333");
        CHECK(unknown.messages[0].profile_name.empty());
    }

    TEST_CASE("messages without an id, a sender or a phone number id are skipped and counted") {
        WebhookBatch batch = parse_ok(one_message(
            R"({"from":"1","timestamp":"5","type":"text","text":{"body":"no id"}},)"
            R"({"id":"w2","timestamp":"5","type":"text","text":{"body":"no sender"}},)"
            R"("not an object",)"
            R"({"from":"1","id":"w4","timestamp":"5","type":"text","text":{"body":"kept"}})"
        ));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].id == "w4");
        CHECK(batch.skipped == 3);

        batch = parse_ok(
            R"({"entry":[{"changes":[{"field":"messages","value":{"metadata":{},"messages":[{"from":"1","id":"w1","type":"text","text":{"body":"x"}}],"statuses":[{"id":"s1","status":"sent"}]}}]}]})"
        );
        CHECK(batch.messages.empty());
        CHECK(batch.statuses.empty());
        CHECK(batch.skipped == 2);
    }

    TEST_CASE("statuses without an id are skipped; a BSUID recipient is kept") {
        const WebhookBatch batch = parse_ok(
            R"({"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"statuses":[)"
            R"({"status":"sent","timestamp":"1","recipient_id":"1"},)"
            R"({"id":"s2","status":"deleted","timestamp":"x","recipient_user_id":"US.7"}]}}]}]})"
        );
        CHECK(batch.skipped == 1);
        REQUIRE(batch.statuses.size() == 1);
        CHECK(batch.statuses[0].id == "s2");
        CHECK(batch.statuses[0].recipient == "US.7");
        CHECK(batch.statuses[0].kind == Kind::kOther);
        CHECK(batch.statuses[0].timestamp == 0);
    }

    TEST_CASE("other webhook fields and unknown or mistyped members are ignored") {
        WebhookBatch batch = parse_ok(
            R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"account_update","value":{"metadata":{"phone_number_id":"9"},"messages":[{"from":"1","id":"w1","type":"text","text":{"body":"x"}}]}}]}]})"
        );
        CHECK(batch.messages.empty());
        CHECK(batch.skipped == 0);

        batch = parse_ok(R"({"entry":{"changes":[]},"future":[1,2,3]})");
        CHECK(batch.messages.empty());
        batch =
            parse_ok(R"({"entry":[{"changes":[{"field":"messages","value":{"messages":7}}]}]})");
        CHECK(batch.messages.empty());
        batch = parse_ok(R"({})");
        CHECK(batch.messages.empty());

        batch = parse_ok(one_message(
            R"({"from":1234,"id":"w1","timestamp":1739321024,"type":"text","text":{"body":42},"new_field":{"a":1}})",
            R"([{"wa_id":1234}])"
        ));
        CHECK(batch.messages.empty());  // a numeric `from` is no sender
        CHECK(batch.skipped == 1);

        batch = parse_ok(one_message(
            R"({"from":"1","id":"w1","timestamp":1739321024,"type":"text","text":{"body":42}})"
        ));
        REQUIRE(batch.messages.size() == 1);
        CHECK(batch.messages[0].timestamp == 1739321024);  // a numeric timestamp is accepted
        CHECK(batch.messages[0].text.empty());
    }

    TEST_CASE("replies without an option id and unknown types are unsupported") {
        const WebhookBatch batch = parse_ok(one_message(
            R"({"from":"1","id":"w1","timestamp":"1","type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{"response_json":"{}"}}},)"
            R"({"from":"1","id":"w2","timestamp":"1","type":"interactive","interactive":{"type":"button_reply","button_reply":{"title":"Yes"}}},)"
            R"({"from":"1","id":"w3","timestamp":"1","type":"system","system":{"body":"changed number"}},)"
            R"({"from":"1","id":"w4","timestamp":"1","type":"reaction","reaction":{"message_id":"wamid.X"}})"
        ));
        REQUIRE(batch.messages.size() == 4);
        CHECK(batch.messages[0].type == Type::kUnsupported);
        CHECK(batch.messages[0].raw_type == "interactive");
        CHECK(batch.messages[1].type == Type::kUnsupported);
        CHECK(batch.messages[1].reply_title.empty());
        CHECK(batch.messages[2].type == Type::kUnsupported);
        CHECK(batch.messages[2].raw_type == "system");
        CHECK(batch.messages[3].type == Type::kReaction);  // a removed reaction: no emoji
        CHECK(batch.messages[3].text.empty());
        CHECK(batch.messages[3].reply_id == "wamid.X");
    }

    TEST_CASE("a body that is not a JSON object is invalid_json naming only the offset") {
        struct Case {
            std::string body, message;
        };

        const Case cases[] = {
            {"", "the webhook body is not valid JSON: The document is empty. at offset 0"},
            {R"({"entry":[)", "the webhook body is not valid JSON: Invalid value. at offset 10"},
            {R"({"a":1} trailing)",
             "the webhook body is not valid JSON: The document root must not be followed by "
             "other values. at offset 8"},
            {"{\"a\":\"\xff\"}",
             "the webhook body is not valid JSON: Invalid encoding in string. at offset 6"},
            {R"({"a":"\ud800"})",
             "the webhook body is not valid JSON: The surrogate pair in string is invalid. at "
             "offset 6"},
            {R"([{"entry":[]}])", "the webhook body must be a JSON object"},
            {R"("text")", "the webhook body must be a JSON object"},
        };
        for (const Case& c : cases) {
            CAPTURE(c.body);
            const auto r = parse_webhook(c.body);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error().code == "invalid_json");
            CHECK(r.error().message == c.message);
        }
    }
}
