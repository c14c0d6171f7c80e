// The one Catch2 main for hv's test binaries (unit and integration).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
