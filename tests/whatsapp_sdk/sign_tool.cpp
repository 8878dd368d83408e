// Test-only CLI over the WhatsApp signature functions, for the SDK cross-check
// (tests/whatsapp_sdk/sign_check.mjs):
//   whatsapp_sign_tool sign FILE SECRET           prints sign_body(FILE's bytes, SECRET)
//   whatsapp_sign_tool verify FILE SECRET HEADER  exits 0 when signature_matches, 1 when not
// Exits 2 on a usage or file error.
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include <civicflow/server/whatsapp/signature.hpp>

namespace {

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int usage() {
    std::cerr << "usage: whatsapp_sign_tool sign FILE SECRET\n"
                 "       whatsapp_sign_tool verify FILE SECRET HEADER\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        return usage();
    }
    const std::string command = argv[1];
    if (!((command == "sign" && argc == 4) || (command == "verify" && argc == 5))) {
        return usage();
    }
    const std::optional<std::string> body = read_file(argv[2]);
    if (!body) {
        std::cerr << "whatsapp_sign_tool: cannot read " << argv[2] << "\n";
        return 2;
    }
    namespace wa = civicflow::server::whatsapp;
    if (command == "sign") {
        std::cout << wa::sign_body(*body, argv[3]) << "\n";
        return 0;
    }
    return wa::signature_matches(argv[4], *body, argv[3]) ? 0 : 1;
}
