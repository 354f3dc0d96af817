#include "paramserver/row_table.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>

#include "common/hash.h"
#include "paramserver/huge_pages.h"

namespace tessera::paramserver {
namespace {

constexpr uint64_t kMinCapacity = 64;

}  // namespace

RowTable::RowTable(uint64_t salt, uint32_t width, uint32_t nslots)
    : salt_(salt), width_(width), stride_(width * (1 + nslots)), record_words_(2 + (stride_ + 1) / 2) {
  while ((uint64_t{1} << (shift_ + 1)) <= kMaxChunkRows &&
         (uint64_t{1} << (shift_ + 1)) * uint64_t{stride_} * sizeof(float) <= kChunkBytes) {
    ++shift_;
  }
  mask_ = (1u << shift_) - 1;
}

void RowTable::FreeDeleter::operator()(void* p) const { std::free(p); }

void* RowTable::Allocate(uint64_t bytes, Pages pages) {
  if (pages == Pages::kSmall) {
    void* p = std::malloc(bytes);  // 16-byte aligned: enough for the records' words
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  const uint64_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc();
  // A hint: where it fails (a kernel without THP) the memory has 4 KiB pages.
  if (pages == Pages::kHugeNow) ::madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

uint64_t RowTable::RowHash(uint32_t slot) const {
  uint64_t seed = HashCombine(HashCombine(salt_, key(slot)), static_cast<uint64_t>(updates(slot)));
  if (hash_last_seen_) seed = HashCombine(seed, last_seen(slot));
  return Hash64(data(slot), uint64_t{stride_} * sizeof(float), seed);
}

uint32_t RowTable::Find(Key key) const { return capacity_ == 0 ? kNoSlot : FindHashed(key, KeyHash(key)); }

void RowTable::IndexInsert(uint64_t h, uint32_t slot) {
  uint64_t i = Home(h);
  for (uint64_t e = Entry(i); e != 0 && (e & 0xffffffffULL) != kTombstone; e = Entry(i)) i = Next(i);
  if (Entry(i) != 0) --tombstones_;
  SetEntry(i, Tag(h) | (uint64_t{slot} + 1));
}

void RowTable::Rebuild(uint64_t capacity) {
  index_.reset();  // before the new one: the old index's memory can be reused
  index_.reset(static_cast<unsigned char*>(Allocate(5 * capacity + 3, 5 * capacity >= kHugePage ? Pages::kHugeNow : Pages::kSmall)));
  std::memset(index_.get(), 0, 5 * capacity + 3);
  capacity_ = capacity;
  tombstones_ = 0;
  // The entries land at random: prefetch each home entry kAhead slots before its insert.
  constexpr uint32_t kAhead = 16;
  for (uint32_t s = 0; s < high_; ++s) {
    if (s + kAhead < high_ && Bit(live_, s + kAhead)) PrefetchLine(index_.get() + 5 * Home(KeyHash(key(s + kAhead))));
    if (Bit(live_, s)) IndexInsert(KeyHash(key(s)), s);
  }
}

uint64_t RowTable::GrownCapacity(uint64_t n) const {
  // Live entries past 3/5 after the inserts: 1.4x (repeatedly, for a large batch), so
  // the index is 4/7 to 4/5 full; else the same size (only the tombstones go).
  uint64_t c = std::max(capacity_, kMinCapacity);
  while ((size_ + n) * 5 > c * 3) c += c * 2 / 5;
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

uint64_t* RowTable::NewChunk() {
  const uint64_t bytes = chunk_rows() * record_bytes();
  if (chunks_.size() * bytes < kSlabBytes) {  // a small table: no 2 MiB pages for a few rows
    blocks_.emplace_back(Allocate(bytes, Pages::kSmall));
    return static_cast<uint64_t*>(blocks_.back().get());
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
    slab_next_ = static_cast<uint64_t*>(blocks_.back().get());
  }
  uint64_t* r = slab_next_;
  slab_next_ += bytes / sizeof(uint64_t);
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
  uint64_t* r = record(slot);
  r[0] = key;
  r[1] = 0;
  if (stride_ % 2 != 0) data(slot)[stride_] = 0.0f;  // the padding float: hashed by nobody, never indeterminate
  if (hash_last_seen_) last_seen(slot) = 0;  // hashed: never an indeterminate value
  SetBit(live_, slot, true);  // a reused slot keeps its dirty bit: it is still listed
  SetBit(stale_bits_, slot, true);  // not in the digest yet: the next digest() adds it
  IndexInsert(KeyHash(key), slot);
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
  if (capacity_ == 0) return;
  const uint64_t h = KeyHash(key);
  const uint64_t tag = Tag(h);
  for (uint64_t i = Home(h);; i = Next(i)) {
    const uint64_t e = Entry(i);
    if (e == 0) return;
    const uint64_t low = e & 0xffffffffULL;
    if (low == kTombstone || (e & ~0xffffffffULL) != tag) continue;
    const auto slot = static_cast<uint32_t>(low - 1);
    if (this->key(slot) != key) continue;
    if (Bit(stale_bits_, slot)) {
      SetBit(stale_bits_, slot, false);  // its hash is not in the digest
    } else {
      digest_ -= RowHash(slot);
    }
    if (track_dirty_) dirty_erased_.push_back(key);
    SetBit(live_, slot, false);
    SetEntry(i, kTombstone);
    ++tombstones_;
    --size_;
    free_.push_back(slot);
    ++erase_generation_;
    return;
  }
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
  const uint64_t per_chunk = chunk_rows() * (record_bytes() + (hash_last_seen_ ? sizeof(uint32_t) : 0));
  return chunks_.size() * per_chunk + (capacity_ == 0 ? 0 : 5 * capacity_ + 3) +
         (live_.capacity() + dirty_bits_.capacity() + stale_bits_.capacity()) * sizeof(uint64_t) + free_.capacity() * sizeof(uint32_t) +
         dirty_slots_.capacity() * sizeof(uint32_t) + dirty_erased_.capacity() * sizeof(Key);
}

void RowTable::SeenBefore(uint32_t cutoff, std::vector<Key>* out) const {
  for (uint32_t s = 0; s < high_; ++s) {
    if (Bit(live_, s) && last_seen(s) < cutoff) out->push_back(key(s));
  }
}

}  // namespace tessera::paramserver
