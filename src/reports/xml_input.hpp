// Safe loading of report XML written by someone else's tool. Reports come from test processes we do not
// trust to be well-formed (a killed group leaves half a file) nor benign (a test can write anything), so a
// file is refused, never repaired: a DOCTYPE is refused outright (so nothing declared in it, internal or
// external, can be expanded: no billion laughs, no file or network fetches), and only the five predefined
// entities and character references are decoded. Every refusal names the file and line:column; pugixml
// only knows byte offsets, so the position is counted from the file on disk when an error is reported,
// which costs nothing on the good path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
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

// Whether the file's text is kept beside the parsed document, for verbatim(), and the file kept open, for
// release_file(). It costs a second copy of the file while the XmlInput lives.
enum class SourceText { kDrop, kKeep };

// What a file was when it was read: reading it again later (a merge copies testcases from their files when it
// writes) checks that it is still the same file, unchanged.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t modified_ns = 0;

  bool operator==(const FileIdentity&) const = default;
};

// The identity of an open file; nullopt when fstat fails.
std::optional<FileIdentity> identity_of(int fd);

class XmlInput {
 public:
  // Parses `path`; throws UsageError "path:line:column: what" when it cannot be read, is larger than
  // kMaxXmlInputBytes, is empty, malformed or truncated, has a DOCTYPE `doctype` refuses, two root
  // elements, an attribute given twice (pugixml accepts those; no consumer does), or its root element is
  // none of `roots`.
  XmlInput(const std::filesystem::path& path, std::initializer_list<std::string_view> roots,
           Doctype doctype = Doctype::kRefuse, SourceText source = SourceText::kDrop);
  ~XmlInput();
  XmlInput(const XmlInput&) = delete;
  XmlInput& operator=(const XmlInput&) = delete;

  pugi::xml_node root() const { return doc_.document_element(); }
  const std::filesystem::path& path() const { return path_; }
  const FileIdentity& identity() const { return identity_; }
  // The file, still open (SourceText::kKeep), now the caller's to close; -1 otherwise. Read through it, a
  // file replaced since (a merge written over one of its inputs) is still the file that was read.
  int release_file();
  // Where an element's text starts in the file, as verbatim() returned it.
  std::size_t offset_of(std::string_view verbatim_text) const {
    return static_cast<std::size_t>(verbatim_text.data() - source_.get());
  }

  // "path:line:column" of a node of this document ("path" alone when pugixml lost its offset).
  std::string position(pugi::xml_node node) const;
  // Throws UsageError "path:line:column: message".
  [[noreturn]] void fail(pugi::xml_node node, std::string_view message) const;

  // The element's text exactly as the file has it, when copying that text into another UTF-8 document
  // gives what serialising the parsed element would (see verbatim_element_length); nullopt when it does not,
  // or when the file was not UTF-8 or was read with SourceText::kDrop. Copying is several times faster than
  // serialising: a merge of 200,000 testcases is mostly this.
  std::optional<std::string_view> verbatim(pugi::xml_node element) const;

 private:
  void check_attributes(pugi::xml_node root) const;

  std::filesystem::path path_;
  FileIdentity identity_;
  int file_ = -1;
  std::unique_ptr<char[]> buffer_;  // parsed in place: the document points into it
  std::unique_ptr<char[]> source_;  // the file as read, with SourceText::kKeep and a UTF-8 file
  std::size_t size_ = 0;
  pugi::xml_document doc_;
};

// The length of the element that `text` starts with (text[0] is its '<') when that text, copied as it is into
// a UTF-8 XML document, is well-formed XML 1.0 that every consumer reads as pugixml read it; 0 when it is
// not. Stricter than pugixml, which accepts a bare '&', a '<' in an attribute value, "]]>" in text,
// control characters and malformed UTF-8, all of which expat and lxml refuse: text with any of them, or with
// a character reference, comment or processing instruction, is serialised from the document instead
// (append_element writes what every consumer accepts). Never reads past `text`.
std::size_t verbatim_element_length(std::string_view text);

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
