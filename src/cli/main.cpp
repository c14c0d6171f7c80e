#include "context.hpp"

int main(int argc, char** argv) { return hv::cli::run(argc, argv); }
