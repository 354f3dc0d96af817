#include "paramserver/row_table.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <sys/mman.h>

#include "common/hash.h"
#include "paramserver/huge_pages.h"

namespace tessera::paramserver {
namespace {

constexpr uint64_t kMinCapacity = 64;

// A record's floats: stride padded to a power of two up to 8 (32 bytes), else to a
// multiple of 8 (32 bytes). In a 64-byte-aligned chunk a record of up to 32 bytes then
// never crosses a line, and one of n * 32 bytes starts at 0 or 32 within its line, so it
// spans ceil(n / 2) lines, the fewest its bytes allow.
uint32_t RecordFloats(uint32_t stride) {
  return stride <= 8 ? std::bit_ceil(std::max(stride, 1u)) : (stride + 7) / 8 * 8;
}

}  // namespace

RowTable::RowTable(uint64_t salt, uint32_t width, uint32_t nslots)
    : salt_(salt), width_(width), stride_(width * (1 + nslots)), record_floats_(RecordFloats(stride_)) {
  while ((uint64_t{1} << (shift_ + 1)) <= kMaxChunkRows &&
         (uint64_t{1} << (shift_ + 1)) * record_bytes() <= kChunkBytes) {
    ++shift_;
  }
  mask_ = (1u << shift_) - 1;
}

void RowTable::FreeDeleter::operator()(void* p) const { std::free(p); }

void* RowTable::Allocate(uint64_t bytes, Pages pages) {
  const uint64_t align = pages == Pages::kSmall ? 64 : kHugePage;
  const uint64_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
  // A hint: where it fails (a kernel without THP) the memory has 4 KiB pages.
  if (pages == Pages::kHugeNow) ::madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

uint64_t RowTable::EntryHash(Ref r) const {
  const uint32_t s = slot(r);
  uint64_t seed = HashCombine(HashCombine(salt_, index_[static_cast<uint32_t>(r)].key), static_cast<uint64_t>(updates(r)));
  if (hash_last_seen_) seed = HashCombine(seed, last_seen(s));
  return Hash64(data(s), uint64_t{stride_} * sizeof(float), seed);
}

void RowTable::SetBigCount(Entry& e, int64_t v) {
  e.count = kBigCount;
  big_counts_[e.slot1 - 1] = v;
}

void RowTable::IndexInsert(uint64_t h, Key key, uint32_t slot, uint32_t count) {
  uint64_t i = Home(h);
  while (index_[i].slot1 != 0 && index_[i].slot1 != kTombstone) i = Next(i);
  if (index_[i].slot1 != 0) --tombstones_;
  index_[i] = Entry{key, slot + 1, count};
  chunks_[slot >> shift_].pos[slot & mask_] = static_cast<uint32_t>(i);
}

void RowTable::Rebuild(uint64_t capacity) {
  // Ref is 32 bits, and UINT32_MAX is kNoRef.
  if (capacity >= UINT32_MAX) throw std::length_error("RowTable: index of " + std::to_string(capacity) + " entries");
  // The old index is read while the new one is written: the keys live in it.
  std::unique_ptr<Entry[], FreeDeleter> old(static_cast<Entry*>(
      Allocate(sizeof(Entry) * capacity, sizeof(Entry) * capacity >= kHugePage ? Pages::kHugeNow : Pages::kSmall)));
  std::swap(old, index_);
  std::memset(static_cast<void*>(index_.get()), 0, sizeof(Entry) * capacity);
  const uint64_t old_capacity = capacity_;
  capacity_ = capacity;
  tombstones_ = 0;
  ++ref_generation_;
  // In the old index's order the new home entries ascend too (multiply-shift is monotone
  // in the hash), so the new index is written nearly in order; the slots' positions are
  // not, so each is prefetched kAhead entries before its write.
  constexpr uint64_t kAhead = 16;
  for (uint64_t i = 0; i < old_capacity; ++i) {
    if (i + kAhead < old_capacity) {
      const uint32_t s1 = old[i + kAhead].slot1;
      if (s1 != 0 && s1 != kTombstone) PrefetchLine(chunks_[(s1 - 1) >> shift_].pos.get() + ((s1 - 1) & mask_));
    }
    const Entry& e = old[i];
    if (e.slot1 != 0 && e.slot1 != kTombstone) IndexInsert(KeyHash(e.key), e.key, e.slot1 - 1, e.count);
  }
}

uint64_t RowTable::GrownCapacity(uint64_t n) const {
  // Live entries past 5/8 after the inserts: 1.3x (repeatedly, for a large batch), so
  // the index is 8/13 to 4/5 full; else the same size (only the tombstones go).
  uint64_t c = std::max(capacity_, kMinCapacity);
  while ((size_ + n) * 8 > c * 5) c += c * 3 / 10;
  return c;
}

void RowTable::Reserve(uint64_t n) {
  if (capacity_ == 0 || NeedsRebuild(n)) Rebuild(GrownCapacity(n));
}

void RowTable::HashLastSeen(bool on) {
  hash_last_seen_ = on;
  for (Chunk& c : chunks_) {
    if (on && c.seen == nullptr) c.seen = std::make_unique<uint32_t[]>(chunk_rows());
    if (!on) c.seen.reset();
  }
}

float* RowTable::NewChunk() {
  const uint64_t bytes = (chunk_rows() * record_bytes() + 63) / 64 * 64;  // the next chunk 64-aligned
  if (chunks_.size() * bytes < kSlabBytes) {  // a small table: no 2 MiB pages for a few rows
    blocks_.emplace_back(Allocate(bytes, Pages::kSmall));
    return static_cast<float*>(blocks_.back().get());
  }
  if (slab_chunks_left_ == 0) {
    // The full slab's rows are all written: have the kernel move them to huge pages, on
    // a background thread (huge_pages.h: synchronous, ~0.1 s per slab).
    const uint64_t slab = std::max<uint64_t>(1, kSlabBytes / bytes) * bytes;
    if (slab_next_ != nullptr) {
      CollapseToHugePagesLater(blocks_.back().get(), (slab + kHugePage - 1) / kHugePage * kHugePage);
    }
    slab_chunks_left_ = slab / bytes;
    blocks_.emplace_back(Allocate(slab, Pages::kHugeLater));
    slab_next_ = static_cast<float*>(blocks_.back().get());
  }
  float* r = slab_next_;
  slab_next_ += bytes / sizeof(float);
  --slab_chunks_left_;
  return r;
}

uint32_t RowTable::NewSlot() {
  if (!free_.empty()) {
    const uint32_t s = free_.back();
    free_.pop_back();
    return s;
  }
  if ((high_ & mask_) == 0) {
    const uint64_t rows = chunk_rows();
    Chunk c;
    c.records = NewChunk();
    c.pos = std::make_unique_for_overwrite<uint32_t[]>(rows);
    if (hash_last_seen_) c.seen = std::make_unique_for_overwrite<uint32_t[]>(rows);
    chunks_.push_back(std::move(c));
    live_.resize((high_ + rows + 63) / 64, 0);
    dirty_bits_.resize(live_.size(), 0);
    stale_bits_.resize(live_.size(), 0);
  }
  return high_++;
}

uint32_t RowTable::Insert(Key key) {
  // Keep live + tombstones <= 4/5 of the index (linear probing slows sharply above).
  Reserve(1);
  const uint32_t slot = NewSlot();
  // The padding floats: hashed by nobody, never indeterminate.
  std::fill(data(slot) + stride_, data(slot) + record_floats_, 0.0f);
  if (hash_last_seen_) last_seen(slot) = 0;  // hashed: never an indeterminate value
  SetBit(live_, slot, true);  // a reused slot keeps its dirty bit: it is still listed
  SetBit(stale_bits_, slot, true);  // not in the digest yet: the next digest() adds it
  IndexInsert(KeyHash(key), key, slot, 0);
  ++size_;
  ++insert_generation_;
  return slot;
}

uint64_t RowTable::digest() const {
  // The stale rows in slot order, each prefetched kAhead rows before it is hashed (a
  // ring of the slots in flight): the rows are scattered, so the misses must overlap.
  constexpr uint32_t kAhead = 16;
  uint32_t ring[kAhead];
  uint64_t queued = 0;
  for (size_t w = 0; w < stale_bits_.size(); ++w) {
    for (uint64_t bits = stale_bits_[w]; bits != 0; bits &= bits - 1) {
      const auto slot = static_cast<uint32_t>(w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits)));
      Prefetch(slot);
      if (queued >= kAhead) digest_ += RowHash(ring[queued % kAhead]);
      ring[queued++ % kAhead] = slot;
    }
    stale_bits_[w] = 0;
  }
  for (uint64_t i = queued > kAhead ? queued - kAhead : 0; i < queued; ++i) digest_ += RowHash(ring[i % kAhead]);
  return digest_;
}

void RowTable::Erase(Key key) {
  const Ref r = FindRef(key);
  if (r == kNoRef) return;
  const uint32_t slot = this->slot(r);
  if (Bit(stale_bits_, slot)) {
    SetBit(stale_bits_, slot, false);  // its hash is not in the digest
  } else {
    digest_ -= EntryHash(r);
  }
  Entry& e = index_[static_cast<uint32_t>(r)];
  if (e.count == kBigCount) big_counts_.erase(slot);
  if (track_dirty_) dirty_erased_.push_back(key);
  SetBit(live_, slot, false);
  e.slot1 = kTombstone;  // the key stays: FindHashed compares it first
  ++tombstones_;
  --size_;
  free_.push_back(slot);
  ++ref_generation_;
}

void RowTable::MarkDirty(Key key) {
  const uint32_t slot = Find(key);
  if (slot == kNoSlot) {
    dirty_erased_.push_back(key);
  } else if (!Bit(dirty_bits_, slot)) {
    SetBit(dirty_bits_, slot, true);
    dirty_slots_.push_back(slot);
  }
}

void RowTable::TakeDirty(std::vector<uint32_t>* slots, std::vector<Key>* erased) {
  slots->clear();
  erased->clear();
  slots->swap(dirty_slots_);
  erased->swap(dirty_erased_);
  for (const uint32_t s : *slots) SetBit(dirty_bits_, s, false);
}

std::vector<Key> RowTable::TakeDirty() {
  std::vector<uint32_t> slots;
  std::vector<Key> out;
  TakeDirty(&slots, &out);
  for (const uint32_t s : slots) {
    if (live(s)) out.push_back(key(s));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

uint64_t RowTable::MemoryBytes() const {
  const uint64_t per_chunk =
      (chunk_rows() * record_bytes() + 63) / 64 * 64 + chunk_rows() * sizeof(uint32_t) * (hash_last_seen_ ? 2 : 1);
  // A node of big_counts_: key, value, next pointer, hash bucket.
  return chunks_.size() * per_chunk + capacity_ * sizeof(Entry) + big_counts_.size() * 32 +
         (live_.capacity() + dirty_bits_.capacity() + stale_bits_.capacity()) * sizeof(uint64_t) + free_.capacity() * sizeof(uint32_t) +
         dirty_slots_.capacity() * sizeof(uint32_t) + dirty_erased_.capacity() * sizeof(Key);
}

void RowTable::SeenBefore(uint32_t cutoff, std::vector<Key>* out) const {
  for (uint32_t s = 0; s < high_; ++s) {
    if (Bit(live_, s) && last_seen(s) < cutoff) out->push_back(key(s));
  }
}

}  // namespace tessera::paramserver
