#include "fastkin/parse.h"

#include <charconv>

namespace fastkin {
namespace {

inline bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v'; }

}  // namespace

ParseResult parse_numbers(const char* text, int64_t size, double* out, int64_t capacity) {
  const char* p = text;
  const char* end = text + size;
  int64_t count = 0;
  while (true) {
    while (p < end && is_space(*p)) ++p;
    if (p == end) return {count, -1};
    const char* token = p;
    if (*p == '+' && ++p < end && *p == '-') return {count, token - text};  // from_chars takes no '+'
    if (count == capacity) return {count, token - text};
    const auto [next, error] = std::from_chars(p, end, out[count]);
    if (error != std::errc() || (next < end && !is_space(*next))) return {count, token - text};
    ++count;
    p = next;
  }
}

}  // namespace fastkin
