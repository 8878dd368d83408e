# Third-party libraries, each wrapped so its headers are SYSTEM (their warnings are not ours).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(yaml-cpp 0.7 REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
find_package(Boost 1.81 REQUIRED CONFIG)
find_package(OpenSSL REQUIRED)
find_package(SQLite3 REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

# RapidJSON 1.1 has no imported target; wrap it (SYSTEM: it warns under g++ 12).
find_path(RAPIDJSON_INCLUDE_DIR rapidjson/document.h REQUIRED)
add_library(civicflow_rapidjson INTERFACE)
add_library(civicflow::rapidjson ALIAS civicflow_rapidjson)
target_include_directories(civicflow_rapidjson SYSTEM INTERFACE ${RAPIDJSON_INCLUDE_DIR})
target_compile_definitions(civicflow_rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)
# SSE2 is part of the x86-64 baseline: RapidJSON then scans strings and whitespace 16 bytes at a
# time (replies are mostly long texts). Its parser's aligned loads may touch the bytes after a
# string's terminator within the same 16-byte block, harmless in hardware but reported by
# AddressSanitizer, so sanitizer builds keep the scalar code.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND NOT CIVICFLOW_SANITIZE)
    target_compile_definitions(civicflow_rapidjson INTERFACE RAPIDJSON_SSE2)
endif()

find_path(DOCTEST_INCLUDE_DIR doctest/doctest.h REQUIRED)
add_library(civicflow_doctest INTERFACE)
add_library(civicflow::doctest ALIAS civicflow_doctest)
target_include_directories(civicflow_doctest SYSTEM INTERFACE ${DOCTEST_INCLUDE_DIR})

# yaml-cpp 0.7's exported target carries its include dir as non-SYSTEM; re-wrap it.
add_library(civicflow_yaml INTERFACE)
target_link_libraries(civicflow_yaml INTERFACE yaml-cpp)
get_target_property(_yaml_inc yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
if(_yaml_inc)
    target_include_directories(civicflow_yaml SYSTEM INTERFACE ${_yaml_inc})
endif()
