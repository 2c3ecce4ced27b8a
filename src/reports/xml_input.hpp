// Safe loading of report XML written by someone else's tool. Reports come from test processes we do not
// trust to be well-formed (a killed group leaves half a file) nor benign (a test can write anything), so a
// file is refused, never repaired: a DOCTYPE is refused outright (so nothing declared in it, internal or
// external, can be expanded: no billion laughs, no file or network fetches), and only the five predefined
// entities and character references are decoded. Every refusal names the file and line:column; pugixml
// only knows byte offsets, so the position is counted from the file on disk when an error is reported,
// which costs nothing on the good path.
#pragma once

#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <pugixml.hpp>
#include <string>
#include <string_view>

namespace testfleet::reports {

// Files larger than this are refused before being read: no report of ours comes near it, and reading one
// would take the memory of every other group.
inline constexpr std::uintmax_t kMaxXmlInputBytes = std::uintmax_t{1} << 30;

// Whether a DOCTYPE naming an external DTD only (Cobertura's `<!DOCTYPE coverage SYSTEM "...dtd">`, which
// gcovr and Java tools write) is accepted. The DTD is never fetched either way; a DOCTYPE with an internal
// subset (where entities are declared) is always refused.
enum class Doctype { kRefuse, kAllowExternal };

class XmlInput {
 public:
  // Parses `path`; throws UsageError "path:line:column: what" when it cannot be read, is larger than
  // kMaxXmlInputBytes, is empty, malformed or truncated, has a DOCTYPE `doctype` refuses, two root
  // elements, an attribute given twice (pugixml accepts those; no consumer does), or its root element is
  // none of `roots`.
  XmlInput(const std::filesystem::path& path, std::initializer_list<std::string_view> roots,
           Doctype doctype = Doctype::kRefuse);
  XmlInput(const XmlInput&) = delete;
  XmlInput& operator=(const XmlInput&) = delete;

  pugi::xml_node root() const { return doc_.document_element(); }
  const std::filesystem::path& path() const { return path_; }

  // "path:line:column" of a node of this document ("path" alone when pugixml lost its offset).
  std::string position(pugi::xml_node node) const;
  // Throws UsageError "path:line:column: message".
  [[noreturn]] void fail(pugi::xml_node node, std::string_view message) const;

 private:
  void check_attributes(pugi::xml_node root) const;

  std::filesystem::path path_;
  std::unique_ptr<char[]> buffer_;  // parsed in place: the document points into it
  std::size_t size_ = 0;
  pugi::xml_document doc_;
};

// "path:line:column" for a byte offset of a file, counted by reading the file again (1-based both).
std::string file_position(const std::filesystem::path& path, std::ptrdiff_t offset);

// Appends `text` escaped for XML character data or (`attribute`) a double-quoted attribute value. Characters
// that XML 1.0 forbids (control characters a test printed) are written as the literal text "#xNN", as pytest
// does, and bytes that are not UTF-8 as U+FFFD, so that every consumer can parse the result: pugixml itself
// would write "&#27;", which expat and lxml refuse.
void append_escaped(std::string& out, std::string_view text, bool attribute);
// The same for a NUL-terminated string (pugixml's), without measuring it first.
void append_escaped(std::string& out, const char* text, bool attribute);

// Appends an element and everything under it as XML (no indentation), escaped by append_escaped. Walks
// iteratively: a hostile file nested a million deep must not overflow the stack.
void append_element(std::string& out, pugi::xml_node element);

// A merged report written as it is produced, through a 1 MiB buffer, into a temporary file beside `path`
// that commit() renames over it: a reader (or a run killed half-way) never sees half a report, and the
// result never needs to be in memory whole. Destroyed without commit(), it removes the temporary file.
// Throws InfrastructureError naming the path when it cannot write.
class ReportWriter {
 public:
  explicit ReportWriter(const std::filesystem::path& path);
  ~ReportWriter();
  ReportWriter(const ReportWriter&) = delete;
  ReportWriter& operator=(const ReportWriter&) = delete;

  // The buffer to append to; call maybe_flush() after each piece.
  std::string& buffer() { return buffer_; }
  void maybe_flush() {
    if (buffer_.size() >= kBufferBytes) flush();
  }
  void commit();

 private:
  static constexpr std::size_t kBufferBytes = std::size_t{1} << 20;
  void flush();

  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace testfleet::reports
