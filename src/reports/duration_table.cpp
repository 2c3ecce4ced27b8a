#include "reports/duration_table.hpp"

#include <sys/mman.h>

#include <bit>
#include <cstdint>
#include <functional>
#include <stdexcept>

namespace testfleet::reports {

namespace {

// Transparent huge pages for the 2 MiB-aligned part of a large buffer (a hint: refused, nothing changes).
void advise_huge_pages(const void* data, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  auto begin = (reinterpret_cast<std::uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace

std::uint64_t DurationTable::hash_of(std::string_view id) {
  return static_cast<std::uint64_t>(std::hash<std::string_view>{}(id)) | 1U;  // never 0, the empty mark
}

void DurationTable::reserve(std::size_t count, std::size_t key_bytes) {
  keys_.reserve(key_bytes);
  advise_huge_pages(keys_.data(), keys_.capacity());
  std::size_t wanted = std::bit_ceil(std::max<std::size_t>(16, count * 2));
  if (wanted > slots_.size()) grow(wanted);
}

std::size_t DurationTable::probe(std::string_view id, std::uint64_t hash) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.hash == 0 || (slot.hash == hash && key(slot) == id)) return i;
  }
}

void DurationTable::grow(std::size_t capacity) {
  std::vector<Slot> old = std::move(slots_);
  slots_.clear();
  slots_.reserve(capacity);
  advise_huge_pages(slots_.data(), capacity * sizeof(Slot));
  slots_.resize(capacity);
  const std::size_t mask = capacity - 1;
  for (const Slot& slot : old) {
    if (slot.hash == 0) continue;
    std::size_t i = slot.hash & mask;
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

void DurationTable::insert_or_assign(std::string_view id, double seconds) {
  if (keys_.size() + id.size() > UINT32_MAX) throw std::length_error("test IDs of more than 4 GiB in all");
  if ((size_ + 1) * 2 > slots_.size()) grow(std::max<std::size_t>(16, slots_.size() * 2));
  const std::uint64_t hash = hash_of(id);
  Slot& slot = slots_[probe(id, hash)];
  if (slot.hash == 0) {
    slot.hash = hash;
    slot.offset = static_cast<std::uint32_t>(keys_.size());
    slot.length = static_cast<std::uint32_t>(id.size());
    keys_.append(id);
    ++size_;
  }
  slot.seconds = seconds;
}

std::optional<double> DurationTable::find(std::string_view id) const {
  if (size_ == 0) return std::nullopt;
  const Slot& slot = slots_[probe(id, hash_of(id))];
  if (slot.hash == 0) return std::nullopt;
  return slot.seconds;
}

std::vector<std::pair<std::string_view, double>> DurationTable::entries() const {
  std::vector<std::pair<std::string_view, double>> out;
  out.reserve(size_);
  for (const Slot& slot : slots_) {
    if (slot.hash != 0) out.emplace_back(key(slot), slot.seconds);
  }
  return out;
}

}  // namespace testfleet::reports
