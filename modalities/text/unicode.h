// UTF-8 helpers for the tokenizers: validation, code point decoding, Unicode normalisation
// (utf8proc), White_Space, and GPT-2's byte <-> printable-character table used by byte-level BPE.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace omni::text {

// Offset of the first invalid UTF-8 byte, or npos if `s` is valid UTF-8.
size_t find_invalid_utf8(std::string_view s);
// Replaces each maximal invalid subsequence with one U+FFFD (Unicode's "maximal subpart" practice:
// Rust's String::from_utf8_lossy, Python's bytes.decode("utf-8", errors="replace")). A truncated
// but well-begun sequence ("\xE4\xB8") is one U+FFFD; each byte that cannot begin or continue a
// sequence ("\x80", "\xC0", "\xFF", the "\xA0" after "\xED") is one U+FFFD of its own.
std::string utf8_lossy(std::string_view s);
// Decodes the code point at s[i] (which must be valid UTF-8); sets `len` to its byte length.
char32_t decode_utf8(std::string_view s, size_t i, int& len);
void append_utf8(std::string& out, char32_t cp);
// Unicode White_Space (Rust's char::is_whitespace).
bool is_unicode_whitespace(char32_t cp);
// A word character as Unicode regexes define \w (UTS #18: Alphabetic, marks, decimal digits,
// connector punctuation, joiners), which Hugging Face tokenizers' single_word tokens test their
// neighbours with. From utf8proc's general categories (Unicode 15) plus the Other_Alphabetic
// symbols (circled and squared Latin letters).
bool is_word_char(char32_t cp);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
// Normalises valid UTF-8 text (utf8proc); ASCII input is returned unchanged without a round trip.
std::string normalize(std::string_view s, NormalForm form);

// GPT-2 bytes_to_unicode: every byte maps to one printable code point (as UTF-8, 1-2 bytes).
const std::string& byte_to_unicode(uint8_t b);
// Inverse: the byte for a code point of that table, or -1.
int unicode_to_byte(char32_t cp);

// Reads a whole file; throws InputError ("<what> '<path>' ...") when it is missing, not a regular
// file, unreadable or larger than max_bytes (checked before anything is allocated).
std::string read_limited_file(const std::string& path, std::uintmax_t max_bytes,
                              const std::string& what);

}  // namespace omni::text
