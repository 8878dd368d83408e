add_library(civicflow_compile_options INTERFACE)
add_library(civicflow::compile_options ALIAS civicflow_compile_options)
target_compile_features(civicflow_compile_options INTERFACE cxx_std_20)
target_compile_options(civicflow_compile_options INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual
    -Wold-style-cast -Wcast-qual -Wconversion -Wformat=2 -Wimplicit-fallthrough
    -Wnull-dereference
    $<$<BOOL:${CIVICFLOW_WARNINGS_AS_ERRORS}>:-Werror>)
if(CIVICFLOW_SANITIZE)
    list(JOIN CIVICFLOW_SANITIZE "," _civicflow_san)
    target_compile_options(civicflow_compile_options INTERFACE
        -fsanitize=${_civicflow_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(civicflow_compile_options INTERFACE -fsanitize=${_civicflow_san})
endif()
if(CIVICFLOW_ENABLE_CLANG_TIDY)
    find_program(CIVICFLOW_CLANG_TIDY NAMES clang-tidy-14 clang-tidy REQUIRED)
    set(CMAKE_CXX_CLANG_TIDY ${CIVICFLOW_CLANG_TIDY})
endif()
function(civicflow_target_defaults target)
    target_link_libraries(${target} PRIVATE civicflow::compile_options)
endfunction()
# Under UBSan, RapidJSON trips pointer-overflow on valid input (clang); keep every other check.
if(CIVICFLOW_SANITIZE MATCHES "undefined" AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(civicflow_compile_options INTERFACE -fno-sanitize=pointer-overflow)
endif()
