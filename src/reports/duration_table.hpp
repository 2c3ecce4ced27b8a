// Test ID -> seconds for a million tests, looked up a million times while planning. One buffer holds every
// ID back to back and an open-addressing array of 24-byte slots points into it (linear probing, a power of
// two, at most half full): a lookup is a hash, usually one slot and one comparison, where a
// std::unordered_map<std::string, double> chases a node, then a string, through the cache for every test,
// and frees 900,000 nodes at the end. Two-thirds of planning a million tests with known durations went
// there. Both arrays are tens of megabytes read at random: they ask for huge pages, or every lookup would
// also miss the TLB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace testfleet::reports {

class DurationTable {
 public:
  // Room for `count` IDs whose lengths add up to about `key_bytes`, without growing.
  void reserve(std::size_t count, std::size_t key_bytes = 0);

  // Sets the seconds of `id`, adding it when new.
  void insert_or_assign(std::string_view id, double seconds);
  std::optional<double> find(std::string_view id) const;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Every (ID, seconds), in no particular order; the views live as long as the table is not changed.
  std::vector<std::pair<std::string_view, double>> entries() const;

 private:
  struct Slot {
    std::uint64_t hash = 0;  // 0: an empty slot (hash_of never gives 0)
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
    double seconds = 0;
  };
  static std::uint64_t hash_of(std::string_view id);
  std::string_view key(const Slot& slot) const { return {keys_.data() + slot.offset, slot.length}; }
  // The slot holding `id`, or the empty one where it would go.
  std::size_t probe(std::string_view id, std::uint64_t hash) const;
  void grow(std::size_t capacity);

  std::string keys_;
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace testfleet::reports
