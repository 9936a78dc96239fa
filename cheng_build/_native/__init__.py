"""cffi binding to the C library built by CMake (filled in by the native kernels work)."""
