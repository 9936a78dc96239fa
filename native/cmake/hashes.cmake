# hashes.cmake - SHA-256 and BLAKE3 sources for the native library.
#
# Included by the top-level CMakeLists.txt. Sets:
#   CB_HASH_SOURCES       all .c files to add to the library target
#   CB_HASH_INCLUDE_DIRS  include directories (public header dir + private src dir)
# and gives each SIMD source only the instruction-set flags it needs, so the
# rest of the library stays baseline x86-64 and runs on any CPU: the dispatch
# code picks a SIMD path at run time only when cpuid says it is there.
# With CHENG_BUILD_TESTS=ON it also adds the C test `test_hashes` (add_test).

set(CB_HASH_ROOT "${CMAKE_CURRENT_LIST_DIR}/..")
set(CB_HASH_INCLUDE_DIRS "${CB_HASH_ROOT}/include" "${CB_HASH_ROOT}/src")

set(CB_HASH_SOURCES
  "${CB_HASH_ROOT}/src/cpu_features.c"
  "${CB_HASH_ROOT}/src/dispatch.c"
  "${CB_HASH_ROOT}/src/sha256.c"
  "${CB_HASH_ROOT}/src/sha256_portable.c"
  "${CB_HASH_ROOT}/src/blake3.c"
  "${CB_HASH_ROOT}/src/blake3_dispatch.c"
  "${CB_HASH_ROOT}/src/blake3_portable.c"
)

# x86 SIMD paths, for GCC/Clang on x86: each SIMD source gets only its own
# -m flags, and CB_HASH_SIMD tells the dispatch code that these backends are
# built. Elsewhere (other CPUs, other compilers) the portable code is used.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|X86_64|AMD64|amd64|x64|i[3-6]86|x86)$"
   AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  set(_cb_src "${CB_HASH_ROOT}/src")
  list(APPEND CB_HASH_SOURCES
    "${_cb_src}/sha256_shani.c" "${_cb_src}/blake3_sse41.c" "${_cb_src}/blake3_avx2.c"
    "${_cb_src}/blake3_avx512.c")
  set_source_files_properties(
    "${_cb_src}/sha256.c" "${_cb_src}/blake3_dispatch.c"
    "${_cb_src}/sha256_shani.c" "${_cb_src}/blake3_sse41.c" "${_cb_src}/blake3_avx2.c"
    "${_cb_src}/blake3_avx512.c"
    PROPERTIES COMPILE_DEFINITIONS CB_HASH_SIMD=1)
  # -O3 outside Debug builds: GCC 12 at -O2 runs these kernels ~20% slower
  # (measured), and a RelWithDebInfo build should not lose that.
  set(_cb_opt "$<$<NOT:$<CONFIG:Debug>>:-O3>")
  set_source_files_properties("${_cb_src}/sha256_shani.c"
    PROPERTIES COMPILE_OPTIONS "-msha;-mssse3;-msse4.1")
  set_source_files_properties("${_cb_src}/blake3_sse41.c"
    PROPERTIES COMPILE_OPTIONS "-mssse3;-msse4.1;${_cb_opt}")
  set_source_files_properties("${_cb_src}/blake3_avx2.c"
    PROPERTIES COMPILE_OPTIONS "-mavx2;${_cb_opt}")
  set_source_files_properties("${_cb_src}/blake3_avx512.c"
    PROPERTIES COMPILE_OPTIONS "-mavx512f;${_cb_opt}")
endif()

if(CHENG_BUILD_TESTS)
  # The test links the hash sources directly (static), so it runs without
  # the shared library and can be built with sanitizers by the caller's flags.
  find_package(Threads REQUIRED)  # the test hashes from several threads at once
  add_executable(test_hashes "${CB_HASH_ROOT}/tests/test_hashes.c" ${CB_HASH_SOURCES})
  if(_cb_src)  # the test checks that dispatch picks the best backend built
    set_source_files_properties("${CB_HASH_ROOT}/tests/test_hashes.c"
      PROPERTIES COMPILE_DEFINITIONS CB_HASH_SIMD=1)
  endif()
  target_include_directories(test_hashes PRIVATE ${CB_HASH_INCLUDE_DIRS})
  target_link_libraries(test_hashes PRIVATE Threads::Threads)
  set_target_properties(test_hashes PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON)
  add_test(NAME test_hashes
           COMMAND test_hashes "${CB_HASH_ROOT}/tests/hash_vectors.json")
endif()
