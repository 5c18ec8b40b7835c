// Whitespace-separated decimal numbers to doubles (for text formats such as
// BVH and AMC, whose bulk is a long table of numbers).
#pragma once
#include <cstdint>

namespace fastkin {

struct ParseResult {
  int64_t count;      // numbers written to out
  int64_t error_at;   // byte offset of the first malformed token, or -1
};

// Parses every token of [text, text + size) into out (room for `capacity`
// values; size / 2 + 1 always suffices). Tokens are separated by any ASCII
// whitespace; a leading '+' is accepted.
ParseResult parse_numbers(const char* text, int64_t size, double* out, int64_t capacity);

}  // namespace fastkin
