// Catch2's runner for the tests in this directory, alone in its file: GCC 12
// with -fsanitize=address reports -Wmaybe-uninitialized inside <regex>, which
// only Catch2's implementation instantiates, so only this file relaxes it.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
