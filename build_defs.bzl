"""Shared compiler options for hsmactor's own code."""

# Warnings are errors for our code only; system headers (CAF, Catch2) are
# included as -isystem and stay out of it.
HSMACTOR_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    # GCC 12 reports false positives inside std::variant (Result<T>) at -O2.
    "-Wno-maybe-uninitialized",
]
