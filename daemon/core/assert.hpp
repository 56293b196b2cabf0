// Always-on assertion for core invariants: a confused master is worse than a crashed one.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FAILOVERD_ASSERT(cond)                                                                \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                     \
        }                                                                                     \
    } while (0)
