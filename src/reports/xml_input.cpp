#include "reports/xml_input.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "util/error.hpp"
#include "util/files.hpp"

namespace testfleet::reports {

namespace {

// parse_doctype makes a DOCTYPE a node so that it can be refused with its position instead of being
// skipped silently; comments and processing instructions are dropped (no consumer reads them).
constexpr unsigned kParseOptions = pugi::parse_default | pugi::parse_doctype;

std::string describe(const pugi::xml_parse_result& result) {
  switch (result.status) {
    case pugi::status_no_document_element:
      return "no root element (empty or truncated file)";
    case pugi::status_end_element_mismatch:
      return "truncated or malformed: start-end tags mismatch";
    default:
      return result.description();
  }
}

// The first attribute of `element` whose name an earlier one already has: pugixml keeps both, and every
// consumer refuses the file.
pugi::xml_attribute duplicate_attribute(pugi::xml_node element) {
  pugi::xml_attribute first = element.first_attribute();
  if (!first || !first.next_attribute()) return {};
  // Elements have a handful of attributes: comparing pairs beats hashing until a hostile one has many.
  std::size_t count = 0;
  for (pugi::xml_attribute attribute = first; attribute && count <= 16;
       attribute = attribute.next_attribute()) {
    ++count;
  }
  if (count <= 16) {
    for (pugi::xml_attribute a = first; a; a = a.next_attribute()) {
      const char* name = a.name();
      for (pugi::xml_attribute b = first; b != a; b = b.next_attribute()) {
        const char* other = b.name();
        if (other[0] == name[0] && std::strcmp(name, other) == 0) return a;
      }
    }
    return {};
  }
  std::unordered_set<std::string_view> names;
  for (pugi::xml_attribute attribute = first; attribute; attribute = attribute.next_attribute()) {
    if (!names.insert(attribute.name()).second) return attribute;
  }
  return {};
}

}  // namespace

std::string file_position(const std::filesystem::path& path, std::ptrdiff_t offset) {
  if (offset < 0) return path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return path.string();
  std::size_t line = 1;
  std::size_t column = 1;
  std::vector<char> chunk(1 << 16);
  auto remaining = static_cast<std::size_t>(offset);
  while (remaining > 0 && in) {
    in.read(chunk.data(), static_cast<std::streamsize>(std::min(remaining, chunk.size())));
    auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) break;
    for (std::size_t i = 0; i < got; ++i) {
      if (chunk[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(chunk[i]) & 0xC0) != 0x80) {
        // Columns count characters, not the continuation bytes of UTF-8.
        ++column;
      }
    }
    remaining -= got;
  }
  return fmt::format("{}:{}:{}", path.string(), line, column);
}

namespace {

FileIdentity identity_from(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::uint64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

}  // namespace

std::optional<FileIdentity> identity_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  return identity_from(st);
}

XmlInput::XmlInput(const std::filesystem::path& path, std::initializer_list<std::string_view> roots,
                   Doctype doctype, SourceText source)
    : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
  try {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      throw UsageError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
    }
    if (S_ISDIR(st.st_mode))
      throw UsageError(fmt::format("{}: cannot read: it is a directory", path.string()));
    auto size = static_cast<std::uintmax_t>(st.st_size);
    if (size > kMaxXmlInputBytes) {
      throw UsageError(fmt::format("{}: {} bytes, larger than the {} MiB limit for a report", path.string(),
                                   size, kMaxXmlInputBytes >> 20));
    }
    identity_ = identity_from(st);
    // Not zero-filled first: the read overwrites it, and zeroing a large report costs as much as parsing.
    // A file shorter than it was a moment ago is parsed as it is now.
    buffer_ = std::make_unique_for_overwrite<char[]>(static_cast<std::size_t>(size) + 1);
    ssize_t got = util::read_up_to(fd, buffer_.get(), static_cast<std::size_t>(size));
    if (got < 0) throw UsageError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
    size_ = static_cast<std::size_t>(got);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (source == SourceText::kKeep) {
    file_ = fd;
    source_ = std::make_unique_for_overwrite<char[]>(size_);
    std::memcpy(source_.get(), buffer_.get(), size_);
  } else {
    ::close(fd);
  }
  if (std::string_view(buffer_.get(), size_).find_first_not_of(" \t\r\n") == std::string_view::npos) {
    throw UsageError(fmt::format("{}:1:1: empty file", path.string()));
  }
  pugi::xml_parse_result result = doc_.load_buffer_inplace(buffer_.get(), size_, kParseOptions);
  if (!result) {
    throw UsageError(fmt::format("{}: {}", file_position(path, result.offset), describe(result)));
  }
  // A file in another encoding was converted into a buffer of pugixml's own: its text is not UTF-8.
  if (result.encoding != pugi::encoding_utf8) source_.reset();
  pugi::xml_node element = doc_.document_element();
  for (pugi::xml_node node = doc_.first_child(); node; node = node.next_sibling()) {
    if (node.type() == pugi::node_doctype) {
      bool internal_subset = std::string_view(node.value()).find('[') != std::string_view::npos;
      if (doctype == Doctype::kRefuse || internal_subset) {
        fail(node, "DOCTYPE refused: a report needs no DTD, and entities declared in one are never expanded");
      }
    }
    if (node.type() == pugi::node_element && node != element) {
      fail(node, fmt::format("a second root element <{}> (two reports written into one file?)", node.name()));
    }
  }
  check_attributes(element);
  for (std::string_view expected : roots) {
    if (expected == element.name()) return;
  }
  std::string names;
  for (std::string_view expected : roots) {
    names += names.empty() ? "" : " or ";
    names += fmt::format("<{}>", expected);
  }
  fail(element, fmt::format("root element is <{}>, expected {}", element.name(), names));
}

void XmlInput::check_attributes(pugi::xml_node root) const {
  // Iterative: a hostile file may nest elements a million deep.
  pugi::xml_node node = root;
  while (node) {
    if (node.type() == pugi::node_element) {
      if (pugi::xml_attribute duplicate = duplicate_attribute(node)) {
        fail(node, fmt::format("attribute \"{}\" of <{}> given twice", duplicate.name(), node.name()));
      }
    }
    if (node.first_child()) {
      node = node.first_child();
      continue;
    }
    while (node != root && !node.next_sibling()) node = node.parent();
    if (node == root) break;
    node = node.next_sibling();
  }
}

std::string XmlInput::position(pugi::xml_node node) const {
  std::ptrdiff_t offset = node.offset_debug();
  // offset_debug points at the name; the reader wants the '<' (or '<!' of a DOCTYPE).
  if (offset > 0 && node.type() == pugi::node_element) offset -= 1;
  if (offset > 0 && node.type() == pugi::node_doctype) {
    std::size_t start = std::string_view(buffer_.get(), size_).rfind("<!", static_cast<std::size_t>(offset));
    if (start != std::string::npos) offset = static_cast<std::ptrdiff_t>(start);
  }
  return file_position(path_, offset);
}

void XmlInput::fail(pugi::xml_node node, std::string_view message) const {
  throw UsageError(fmt::format("{}: {}", position(node), message));
}

XmlInput::~XmlInput() {
  if (file_ >= 0) ::close(file_);
}

int XmlInput::release_file() {
  int fd = file_;
  file_ = -1;
  return fd;
}

std::optional<std::string_view> XmlInput::verbatim(pugi::xml_node element) const {
  if (!source_ || element.type() != pugi::node_element) return std::nullopt;
  std::ptrdiff_t name_offset = element.offset_debug();
  if (name_offset < 1 || static_cast<std::size_t>(name_offset) >= size_) return std::nullopt;
  auto start = static_cast<std::size_t>(name_offset) - 1;
  std::string_view text(source_.get() + start, size_ - start);
  std::size_t length = verbatim_element_length(text);
  if (length == 0) return std::nullopt;
  text = text.substr(0, length);
  // The text must be the element pugixml parsed: its name after the '<', and its own end tag (or none, when
  // it has no children) at the end.
  std::string_view name = element.name();
  if (text.substr(1, name.size()) != name) return std::nullopt;
  if (text.ends_with("/>")) {
    if (element.first_child()) return std::nullopt;
  } else {
    std::size_t end_tag = text.rfind("</");
    if (end_tag == std::string_view::npos || text.substr(end_tag + 2, name.size()) != name)
      return std::nullopt;
  }
  return text;
}

namespace {

// Length of the valid UTF-8 sequence at `at` that XML allows, or 0 when the bytes there are not one. Stops
// at the first byte that is not a continuation, so it never reads past a terminating NUL; `end` bounds it
// for text that has none.
std::size_t valid_utf8_length(const char* at, const char* end) {
  auto lead = static_cast<unsigned char>(*at);
  std::size_t length = 0;
  std::uint32_t code = 0;
  std::uint32_t minimum = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code = lead & 0x1Fu;
    minimum = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code = lead & 0x0Fu;
    minimum = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code = lead & 0x07u;
    minimum = 0x10000;
  } else {
    return 0;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if (end != nullptr && at + k >= end) return 0;
    auto byte = static_cast<unsigned char>(at[k]);
    if ((byte & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte & 0x3Fu);
  }
  if (code < minimum || code > 0x10FFFF) return 0;
  if (code >= 0xD800 && code <= 0xDFFF) return 0;
  if (code == 0xFFFE || code == 0xFFFF) return 0;
  return length;
}

// Bytes written as they are, in text and in attribute values alike.
constexpr std::array<bool, 256> kPlainBytes = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[static_cast<std::size_t>(c)] = true;
  for (char c : {'&', '<', '>', '"'}) plain[static_cast<unsigned char>(c)] = false;
  return plain;
}();

// `end` null: the text ends at its NUL (pugixml's strings), so no strlen pass is needed first.
void escape(std::string& out, const char* p, const char* end, bool attribute) {
  while (true) {
    const char* run = p;
    while ((end == nullptr || run < end) && kPlainBytes[static_cast<unsigned char>(*run)]) ++run;
    out.append(p, static_cast<std::size_t>(run - p));
    p = run;
    if (end != nullptr ? p >= end : *p == '\0') return;
    auto c = static_cast<unsigned char>(*p);
    switch (c) {
      case '&':
        out += "&amp;";
        ++p;
        continue;
      case '<':
        out += "&lt;";
        ++p;
        continue;
      case '>':
        out += "&gt;";
        ++p;
        continue;
      case '"':
        out += attribute ? "&quot;" : "\"";
        ++p;
        continue;
      case '\t':
        // A raw tab or newline in an attribute value would be normalised to a space by the reader.
        out += attribute ? "&#9;" : "\t";
        ++p;
        continue;
      case '\n':
        out += attribute ? "&#10;" : "\n";
        ++p;
        continue;
      case '\r':
        out += "&#13;";
        ++p;
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      out += fmt::format("#x{:02X}", c);
      ++p;
      continue;
    }
    std::size_t length = valid_utf8_length(p, end);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++p;
    } else {
      out.append(p, length);
      p += length;
    }
  }
}

// Bytes that need no second look in verbatim text: printable ASCII but for the markup characters.
constexpr std::array<bool, 256> kVerbatimPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[static_cast<std::size_t>(c)] = true;
  for (char c : {'<', '&', ']', '"', '\''}) plain[static_cast<unsigned char>(c)] = false;
  plain['\t'] = plain['\n'] = plain['\r'] = true;
  return plain;
}();

bool is_xml_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Past the character at `p` when XML allows it (a space or printable ASCII, or valid UTF-8), else null.
const char* past_character(const char* p, const char* end) {
  auto c = static_cast<unsigned char>(*p);
  if (c < 0x80) return c < 0x20 && !is_xml_space(*p) ? nullptr : p + 1;
  std::size_t length = valid_utf8_length(p, end);
  return length == 0 ? nullptr : p + length;
}

// Reads verbatim text up to the next byte in `stops`, checking every other byte: a reference must be one of
// the five predefined entities, characters valid UTF-8 that XML allows. Returns the stop's position, `end`
// when none came, or null when the text cannot be copied.
const char* verbatim_text(const char* p, const char* end, std::string_view stops) {
  while (p < end) {
    if (kVerbatimPlain[static_cast<unsigned char>(*p)]) {
      ++p;
      continue;
    }
    if (stops.find(*p) != std::string_view::npos) return p;
    auto c = static_cast<unsigned char>(*p);
    if (c == '&') {
      std::string_view rest(p, static_cast<std::size_t>(end - p));
      std::size_t length = 0;
      for (std::string_view entity : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) {
        if (rest.starts_with(entity)) length = entity.size();
      }
      if (length == 0) return nullptr;  // a character reference, or a bare '&'
      p += length;
    } else if (c == ']') {
      if (end - p >= 3 && p[1] == ']' && p[2] == '>') return nullptr;
      ++p;
    } else if (c == '<') {
      return nullptr;
    } else {
      p = past_character(p, end);
      if (p == nullptr) return nullptr;
    }
  }
  return end;
}

// A name (element or attribute): up to the first space, '/', '>' or '='.
const char* verbatim_name(const char* p, const char* end) {
  const char* start = p;
  while (p < end && !is_xml_space(*p) && *p != '/' && *p != '>' && *p != '=') {
    if (*p == '<' || *p == '&' || *p == '"' || *p == '\'') return nullptr;
    p = past_character(p, end);
    if (p == nullptr) return nullptr;
  }
  return p == start ? nullptr : p;
}

const char* skip_space(const char* p, const char* end) {
  while (p < end && is_xml_space(*p)) ++p;
  return p;
}

}  // namespace

std::size_t verbatim_element_length(std::string_view text) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  const char* p = begin;
  if (p == end || *p != '<') return 0;
  std::size_t depth = 0;
  while (p < end) {
    if (*p != '<') {
      // Character data between tags.
      p = verbatim_text(p, end, "<");
      if (p == nullptr || p == end) return 0;
      continue;
    }
    std::string_view rest(p, static_cast<std::size_t>(end - p));
    if (rest.starts_with("<![CDATA[")) {
      const char* close = p + 9;
      std::size_t found = std::string_view(close, static_cast<std::size_t>(end - close)).find("]]>");
      if (found == std::string_view::npos) return 0;
      // Inside a CDATA section only the characters themselves must be valid.
      for (const char* q = close; q < close + found;) {
        q = past_character(q, close + found);
        if (q == nullptr) return 0;
      }
      p = close + found + 3;
      continue;
    }
    if (rest.starts_with("<!") || rest.starts_with("<?")) return 0;  // comments, PIs: serialised instead
    if (rest.starts_with("</")) {
      p = verbatim_name(p + 2, end);
      if (p == nullptr) return 0;
      p = skip_space(p, end);
      if (p == end || *p != '>' || depth == 0) return 0;
      ++p;
      if (--depth == 0) return static_cast<std::size_t>(p - begin);
      continue;
    }
    // A start tag: its name, then attributes each after a space, then '>' or "/>".
    p = verbatim_name(p + 1, end);
    if (p == nullptr) return 0;
    while (true) {
      const char* before = p;
      p = skip_space(p, end);
      if (p == end) return 0;
      if (*p == '/') {
        if (end - p < 2 || p[1] != '>') return 0;
        p += 2;
        if (depth == 0) return static_cast<std::size_t>(p - begin);
        break;
      }
      if (*p == '>') {
        ++p;
        ++depth;
        break;
      }
      if (p == before) return 0;  // an attribute not separated from what precedes it
      p = verbatim_name(p, end);
      if (p == nullptr) return 0;
      p = skip_space(p, end);
      if (p == end || *p != '=') return 0;
      p = skip_space(p + 1, end);
      if (p == end || (*p != '"' && *p != '\'')) return 0;
      char quote = *p;
      p = verbatim_text(p + 1, end, quote == '"' ? std::string_view("\"<") : std::string_view("'<"));
      if (p == nullptr || p == end || *p != quote) return 0;
      ++p;
    }
  }
  return 0;
}

void append_escaped(std::string& out, std::string_view text, bool attribute) {
  if (text.empty()) return;
  escape(out, text.data(), text.data() + text.size(), attribute);
}

void append_escaped(std::string& out, const char* text, bool attribute) {
  escape(out, text, nullptr, attribute);
}

void append_element(std::string& out, pugi::xml_node element) {
  // Depth-first with an explicit position: descend into first children, climb back through parents.
  pugi::xml_node node = element;
  while (node) {
    bool descend = false;
    switch (node.type()) {
      case pugi::node_element:
        out += '<';
        out += node.name();
        for (pugi::xml_attribute attribute : node.attributes()) {
          out += ' ';
          out += attribute.name();
          out += "=\"";
          append_escaped(out, attribute.value(), true);
          out += '"';
        }
        if (node.first_child()) {
          out += '>';
          descend = true;
        } else {
          out += "/>";
        }
        break;
      case pugi::node_pcdata:
      case pugi::node_cdata:
        append_escaped(out, node.value(), false);
        break;
      default:
        break;
    }
    if (descend) {
      node = node.first_child();
      continue;
    }
    // Climb until a node has a next sibling, closing every element left.
    while (node != element && !node.next_sibling()) {
      node = node.parent();
      out += "</";
      out += node.name();
      out += '>';
    }
    if (node == element) break;
    node = node.next_sibling();
  }
}

ReportWriter::ReportWriter(const std::filesystem::path& path)
    : path_(path), temp_(path.string() + fmt::format(".tmp.{}", ::getpid())) {
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw InfrastructureError(fmt::format("cannot write {}: {}", temp_.string(), std::strerror(errno)));
  }
  buffer_.reserve(kBufferBytes);
}

ReportWriter::~ReportWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void ReportWriter::flush() {
  std::size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw InfrastructureError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
    done += static_cast<std::size_t>(n);
  }
  buffer_.clear();
}

void ReportWriter::commit() {
  flush();
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(temp_.c_str());
    throw InfrastructureError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(saved)));
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    int saved = errno;
    ::unlink(temp_.c_str());
    throw InfrastructureError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(saved)));
  }
}

}  // namespace testfleet::reports
