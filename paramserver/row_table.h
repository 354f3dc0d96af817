// RowTable: the rows of one sparse table on one server, stored flat.
//
//  - Arena: rows live in chunks of chunk_rows() row slots (up to kMaxChunkRows, fewer for
//    wide rows so a chunk's floats stay near kChunkBytes), allocated one chunk at a time
//    as the table grows (never moved, so a row's floats stay put while the table grows;
//    past kSlabBytes of records they are carved from 2 MiB-aligned slabs that go to huge
//    pages once full: Pages below).
//    A slot is one record: the key, the update counter and `stride` floats (the row's
//    values followed by its optimizer slots, slot k at values + (k + 1) * width: the
//    layout kernels::ApplyOptimizerRows and kernels::InitSlots expect), padded to 8
//    bytes. One record, not an array per field, because a lookup's key compare then
//    brings in the row it is about to read or write (a push used to miss the cache on
//    the key, the counter and the floats separately). The step that last pushed the row
//    ("last seen", 4 bytes: what expiry and eviction order by) sits in a separate array
//    per chunk, allocated only for tables with HashLastSeen (an eviction policy), the
//    only ones that read it. No per-row heap object.
//  - Index: open addressing with linear probing from a key hash to a slot. Entries are 5
//    bytes (the slot + 1, and an 8-bit tag of the key's hash, so a probe rarely touches a
//    row it does not want), packed; the home entry is a multiply-shift of the hash onto
//    any capacity, so the index can grow by 1.4x instead of doubling. Erase leaves a
//    tombstone; the index is rebuilt when live entries and tombstones pass 4/5 of it
//    (1.4x larger when live entries alone pass 3/5), so it holds between 5/0.8 and
//    5/0.571 bytes per row (6.25-8.75). Reserve() grows it before a batch, so a batch of new keys
//    triggers at most one rebuild.
//  - Freed slots go on a free list and are reused before the arena grows.
//  - Digest: the wrapping sum over resident rows of RowHash (table, key, counter, values,
//    slots). A sum does not depend on insertion order or on which server holds a row,
//    so the job's digest is the sum of the servers'. With HashLastSeen(true) (a table
//    with an eviction policy, where last-seen decides the future) the hash covers it
//    too; otherwise not, so digests without a policy are what they were. Every mutation
//    goes through BeginWrite/EndWrite (or Insert/Erase). The sum is kept lazily: the
//    first BeginWrite of a row since the last digest() subtracts its old hash and marks
//    it stale (a bit per slot), and digest() adds the hashes of the stale rows then. So
//    a push hashes a row at most once (a new row not at all, a row pushed again before
//    the next digest not at all), instead of twice per write; digest() costs a scan of
//    the stale bits (slots / 64 words) and a hash per stale row.
//  - Dirty bits: with tracking on, EndWrite records the slot once (a bit per slot guards
//    the list) and Erase the key, until TakeDirty hands the lists over; an incremental
//    checkpoint then costs O(dirty rows), not O(rows), with no lookup per row.
//
// Thread safety: none; the server's reactor thread owns every ShardStore and its tables,
// but for the *Shared calls, which a helper may make on other slots at the same time
// (inside a SplitWork call of the owner's: its join orders them before the owner's next
// access).
// digest() and Settle() are const but update the lazily kept sum, so even a const
// table is not to be read from another thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "common/hash.h"
#include "common/keys.h"
#include "common/prefetch.h"

namespace tessera::paramserver {

class RowTable {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  static constexpr uint64_t kMaxChunkRows = 8192;
  static constexpr uint64_t kChunkBytes = uint64_t{8} << 20;

  // `salt` names the table in row hashes (ParamNameHash of its name); `nslots` is
  // NumOptimizerSlots of its optimizer.
  RowTable(uint64_t salt, uint32_t width, uint32_t nslots);
  RowTable(RowTable&&) = default;
  RowTable& operator=(RowTable&&) = default;

  uint32_t width() const { return width_; }
  uint64_t chunk_rows() const { return uint64_t{1} << shift_; }
  uint32_t stride() const { return stride_; }
  uint64_t size() const { return size_; }
  // The wrapping sum of the resident rows' hashes (first adding the stale rows').
  uint64_t digest() const;
  // Adds row `slot`'s hash to the sum now if it is stale: for a caller that has just read
  // the row (a checkpoint's copy), so the next digest() need not fetch it again.
  void Settle(uint32_t slot) const {
    if (Bit(stale_bits_, slot)) {
      digest_ += RowHash(slot);
      SetBit(stale_bits_, slot, false);
    }
  }

  // The slot holding `key`, or kNoSlot.
  uint32_t Find(Key key) const;
  // Makes room in the index for `n` more keys, so inserting them rebuilds nothing.
  void Reserve(uint64_t n);
  // Calls f(i, Find(keys[i])) for i = 0, 1, ..., n - 1, as a two-stage software pipeline
  // so the cache misses of a random batch overlap instead of queueing (what a push or pull
  // of thousands of keys over a table far larger than the cache spends its time on: a
  // lookup misses on its index entry, then, dependent on it, on the record). While key i
  // is resolved and handed to f (its entry and record in cache by then), the record of
  // key i + kLookAhead is prefetched (its home entry, prefetched earlier, has arrived: the
  // first entry of its run with the key's tag names the slot, kept as key i + kLookAhead's
  // candidate, which stage 3 then only checks against the key) and the home entry of key
  // i + 2 * kLookAhead. The prefetches are volatile asm (PrefetchLine: GCC deleted the
  // builtin ones, so until 2026-12-06 no record was prefetched at all). f may
  // write the row of the slot it is given, not insert or erase. kWrite: f will write
  // the rows (BeginWrite/EndWrite), so their words of the stale and dirty bit sets (and
  // their last-seen, when kept) are prefetched with the record: at 10 M rows the bit sets
  // are 1.25 MB each, and a random bit missed the cache as often as the record did.
  template <bool kWrite = false, class F>
  void ForEachSlot(std::span<const Key> keys, F&& f) const;
  // f(i, slots[i]) for slots resolved earlier (kNoSlot or live slots of this table, valid
  // by the generations below), with ForEachSlot's record prefetches kLookAhead ahead but
  // no index probe: a push of the keys a pull has just resolved (ShardStore's PullSlots).
  template <bool kWrite = false, class F>
  void ForEachKnownSlot(std::span<const uint32_t> slots, F&& f) const;
  // What can change a resolved key's answer, counted. A row never moves (arena chunks stay
  // put; an index rebuild moves entries, not slots), so a slot found for a key stays its
  // slot until an Erase (which frees it for reuse): erase_generation(). A key found absent
  // stays absent until an Insert: insert_generation().
  uint64_t erase_generation() const { return erase_generation_; }
  uint64_t insert_generation() const { return insert_generation_; }
  // slots[i] = Find(keys[i]) for a batch (ForEachSlot).
  void FindMany(std::span<const Key> keys, uint32_t* slots) const {
    ForEachSlot(keys, [slots](size_t i, uint32_t slot) { slots[i] = slot; });
  }
  // Hints that row `slot` (its key, counter and floats: every line of the record) is
  // about to be read.
  void Prefetch(uint32_t slot) const { PrefetchRecord(slot); }
  // A new slot for `key` (REQUIRES Find(key) == kNoSlot) with counter 0 and unset floats:
  // the caller fills them, then calls EndWrite(slot) (Insert has not hashed the row).
  uint32_t Insert(Key key);
  // Removes the row (no-op when absent); its slot is reused by a later Insert.
  void Erase(Key key);

  Key key(uint32_t slot) const { return record(slot)[0]; }
  // The step of the last push to the row. Insert sets it to 0 when HashLastSeen is on,
  // else leaves it unset (nobody reads it then): the caller sets it, between BeginWrite and EndWrite (it is
  // hashed when HashLastSeen is on). ShardStore writes it only for tables with an
  // eviction policy, the only ones that read it (it costs one more cache line per row).
  // Without HashLastSeen there is no array: a write goes to a scratch word and a read
  // gives 0.
  uint32_t& last_seen(uint32_t slot) {
    uint32_t* s = chunks_[slot >> shift_].seen.get();
    return s != nullptr ? s[slot & mask_] : seen_sink_;
  }
  uint32_t last_seen(uint32_t slot) const {
    const uint32_t* s = chunks_[slot >> shift_].seen.get();
    return s != nullptr ? s[slot & mask_] : 0;
  }
  int64_t& updates(uint32_t slot) { return *reinterpret_cast<int64_t*>(record(slot) + 1); }
  int64_t updates(uint32_t slot) const { return static_cast<int64_t>(record(slot)[1]); }
  float* data(uint32_t slot) { return reinterpret_cast<float*>(record(slot) + 2); }
  const float* data(uint32_t slot) const { return reinterpret_cast<const float*>(record(slot) + 2); }
  bool live(uint32_t slot) const { return slot < high_ && Bit(live_, slot); }
  // Slots are in [0, slot_limit()); live() says which hold rows.
  uint32_t slot_limit() const { return high_; }

  // Around every change of a resident row's floats or counter: BeginWrite takes its hash
  // out of the digest (unless it is out already: stale), EndWrite marks it dirty; the
  // new hash goes in at the next digest().
  void BeginWrite(uint32_t slot) {
    if (!Bit(stale_bits_, slot)) {
      digest_ -= RowHash(slot);
      SetBit(stale_bits_, slot, true);
    }
  }
  void EndWrite(uint32_t slot) {
    if (track_dirty_ && !Bit(dirty_bits_, slot)) {
      SetBit(dirty_bits_, slot, true);
      dirty_slots_.push_back(slot);
    }
  }

  // BeginWrite and EndWrite for ranges of one batch running on two threads at once
  // (ShardStore's SplitWork; distinct slots, so no row is opened twice): a word of the
  // bit sets holds 64 slots, so its bits are set with atomic read-modify-writes, and
  // what the two thread-owned totals would get is handed back instead. BeginWriteShared
  // returns the hash to take out of the digest (0 when the row is stale already); the
  // caller sums them (the digest is a wrapping sum: any order gives the same bits) and
  // calls TakeFromDigest with the total on the owner thread. EndWriteShared returns
  // whether the row became dirty, for the owner to AppendDirty it after the ranges.
  uint64_t BeginWriteShared(uint32_t slot) const {
    const uint64_t bit = uint64_t{1} << (slot % 64);
    std::atomic_ref<uint64_t> word(stale_bits_[slot / 64]);
    if (word.load(std::memory_order_relaxed) & bit) return 0;
    const uint64_t h = RowHash(slot);
    word.fetch_or(bit, std::memory_order_relaxed);
    return h;
  }
  bool EndWriteShared(uint32_t slot) {
    if (!track_dirty_) return false;
    const uint64_t bit = uint64_t{1} << (slot % 64);
    std::atomic_ref<uint64_t> word(dirty_bits_[slot / 64]);
    return (word.load(std::memory_order_relaxed) & bit) == 0 && (word.fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
  }
  void TakeFromDigest(uint64_t sum) { digest_ -= sum; }
  void AppendDirty(uint32_t slot) { dirty_slots_.push_back(slot); }
  bool tracks_dirty() const { return track_dirty_; }

  // Dirty tracking (incremental checkpoints). With it off nothing is recorded.
  void TrackDirty(bool on) { track_dirty_ = on; }
  // Hands over what changed since the last call: the slots written (each once; a slot
  // erased since may be free or hold another key: check live()) and the keys erased.
  // O(changes). A reused slot keeps its dirty bit, so it is never listed twice.
  void TakeDirty(std::vector<uint32_t>* slots, std::vector<Key>* erased);
  // Keys only (tests): the live dirty rows' keys and the erased keys, sorted, unique.
  std::vector<Key> TakeDirty();
  // Puts a key back (an abandoned checkpoint): its slot when resident, else an erase.
  void MarkDirty(Key key);

  // Index entries (tests, benchmarks): size() / index_capacity() is the index's load.
  uint64_t index_capacity() const { return capacity_; }
  // Bytes held: arena chunks, index, bit sets, free list.
  uint64_t MemoryBytes() const;
  // What one resident row costs, as --table_memory_limit counts it, at its worst: its
  // slot (key, counter, last seen, floats), 9 bytes of index (5-byte entries, at least
  // 4/7 full) and 16 for the memory budget's per-partition key lists (ShardStore: a list
  // is rebuilt when it passes twice its partition's rows). Resident bytes = size() *
  // RowBytes(): unlike MemoryBytes() it falls when rows are erased (their slots are
  // reused, so the arena's high-water mark stays near the most rows ever resident at once).
  uint64_t RowBytes() const {
    return sizeof(Key) + sizeof(int64_t) + sizeof(uint32_t) + uint64_t{stride_} * 4 + 9 + 16;
  }
  uint64_t ResidentBytes() const { return size_ * RowBytes(); }

  // Whether RowHash covers last_seen (and whether the last-seen arrays exist).
  // REQUIRES an empty table (the digest would be stale).
  void HashLastSeen(bool on);
  // Appends the keys of the rows with last_seen < `cutoff` to *out. O(rows).
  void SeenBefore(uint32_t cutoff, std::vector<Key>* out) const;

  uint64_t RowHash(uint32_t slot) const;

 private:
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  // Pages: why the index and the arena are on 2 MiB pages (transparent huge pages, THP
  // "madvise" on the machines measured). A steady-state lookup misses the cache twice
  // (index entry, record) over a table far larger than the TLB's reach with 4 KiB pages
  // (10 M rows at D = 16: 800 MB of records, 70-90 MB of index), so each miss also
  // waited for a page walk (two nested ones in a VM). Measured (docs/benchmarks-sparse.md,
  // "The store's memory-level parallelism"): huge pages for the index made a steady
  // pull+push ~1.3x faster; for the records too, ~1.4x more. The index is advised at
  // allocation (kHugeNow): Rebuild writes all of it right away. The arena is not: a
  // record slab advised at allocation took its 2 MiB pages at first touch, on the
  // reactor, and cold pushes (rows being created) slowed 0.6-0.9x, erratically; so
  // slabs start on 4 KiB pages (kHugeLater) and are collapsed (MADV_COLLAPSE) once full,
  // one copy per kSlabBytes of rows, on a background thread (paramserver/huge_pages.h).
  // The cost, measured on the dev VM: about 0.1 s per collapse (fresh 2 MiB pages are
  // slow to get there); on the reactor that made creating 10 M rows take 6 s instead of 3
  // (~0.3 us per row, once) and stalled the server 0.1 s per slab, against ~40-60 ns
  // saved on every later pull+push of the row. Tables under kSlabBytes of records take
  // no huge pages (kSmall).
  static constexpr uint64_t kHugePage = uint64_t{1} << 21;
  enum class Pages { kSmall, kHugeNow, kHugeLater };
  // `bytes` of uninitialised memory, freed with FreeDeleter (std::free): malloc'd
  // (kSmall), or 2 MiB-aligned, rounded up to 2 MiB, advised for huge pages or not.
  static void* Allocate(uint64_t bytes, Pages pages);
  struct Chunk {
    uint64_t* records = nullptr;  // chunk_rows() records of record_words_ words, in blocks_
    std::unique_ptr<uint32_t[]> seen;     // HashLastSeen only
  };
  // Every line of record `slot` (kToL2: into L2 only, the lookup pipelines' record stage).
  template <bool kToL2 = false>
  void PrefetchRecord(uint32_t slot) const {
    PrefetchBytes<kToL2>(record(slot), record_bytes());
  }
  // What a lookup prefetches of a found slot: its record (into L2) and, for a write, its
  // words of the stale and dirty bit sets and its last-seen.
  template <bool kWrite>
  __attribute__((always_inline)) void PrefetchSlot(uint32_t c) const {
    PrefetchRecord<true>(c);
    if constexpr (kWrite) {
      PrefetchLine(stale_bits_.data() + c / 64);
      if (track_dirty_) PrefetchLine(dirty_bits_.data() + c / 64);
      if (hash_last_seen_) PrefetchLine(chunks_[c >> shift_].seen.get() + (c & mask_));
    }
  }
  // A record: word 0 the key, word 1 the counter, then the floats (ints and floats
  // never share a word, so no word is read as two types).
  uint64_t record_bytes() const { return uint64_t{record_words_} * 8; }
  uint64_t* record(uint32_t slot) { return chunks_[slot >> shift_].records + uint64_t{slot & mask_} * record_words_; }
  const uint64_t* record(uint32_t slot) const {
    return chunks_[slot >> shift_].records + uint64_t{slot & mask_} * record_words_;
  }
  // The packed index: entry i is 5 bytes at 5 * i (low 32 bits: 0 empty, kTombstone, else
  // slot + 1; then the tag), read and written as 8 bytes (the vector has 3 bytes of slack).
  uint64_t Entry(uint64_t i) const {
    uint64_t e;
    std::memcpy(&e, index_.get() + 5 * i, sizeof(e));
    return e & 0xffffffffffULL;
  }
  void SetEntry(uint64_t i, uint64_t e) { std::memcpy(index_.get() + 5 * i, &e, 5); }
  // The home entry of hash h: multiply-shift onto [0, capacity_).
  uint64_t Home(uint64_t h) const { return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * capacity_) >> 64); }
  uint64_t Next(uint64_t i) const { return i + 1 == capacity_ ? 0 : i + 1; }
  static uint64_t Tag(uint64_t h) { return (h & 0xff) << 32; }
  // Whether rebuilding is due before `n` more inserts, and the capacity it would take.
  bool NeedsRebuild(uint64_t n) const { return (size_ + tombstones_ + n) * 5 > capacity_ * 4; }
  uint64_t GrownCapacity(uint64_t n) const;
  static bool Bit(const std::vector<uint64_t>& bits, uint32_t i) { return (bits[i / 64] >> (i % 64)) & 1; }
  static void SetBit(std::vector<uint64_t>& bits, uint32_t i, bool v) {
    if (v) {
      bits[i / 64] |= uint64_t{1} << (i % 64);
    } else {
      bits[i / 64] &= ~(uint64_t{1} << (i % 64));
    }
  }
  // Not the shard map's key hash (Mix64(key ^ Mix64(table))): a server's keys share that
  // hash modulo the server count, so its low bits would crowd the probe sequences.
  static constexpr uint64_t kIndexSeed = 0x6a09e667f3bcc909ULL;
  static constexpr uint64_t kTombstone = 0xffffffffULL;
  static uint64_t KeyHash(Key key) { return Mix64(key ^ kIndexSeed); }
  // Find, given KeyHash(key).
  uint32_t FindHashed(Key key, uint64_t h) const {
    const uint64_t tag = Tag(h);
    for (uint64_t i = Home(h);; i = Next(i)) {
      const uint64_t e = Entry(i);
      if (e == 0) return kNoSlot;
      const uint64_t low = e & 0xffffffffULL;
      if (low != kTombstone && (e & ~0xffffffffULL) == tag) {
        const auto slot = static_cast<uint32_t>(low - 1);
        if (this->key(slot) == key) return slot;
      }
    }
  }
  // ForEachSlot's distance between its stages, in keys. Measured with the record prefetches
  // in place (docs/benchmarks-sparse-latency.md, "The prefetches the compiler deleted"):
  // a 10 M-row pull costs ~45 ns per key at 4, ~33 at 8, ~28 at 16 on the dev VM.
  static constexpr size_t kLookAhead = 16;
  void Rebuild(uint64_t capacity);
  void IndexInsert(uint64_t h, uint32_t slot);
  uint32_t NewSlot();
  // The records of a new chunk (uninitialised), from blocks_.
  uint64_t* NewChunk();

  uint64_t salt_;
  uint32_t width_, stride_, record_words_;
  uint32_t shift_ = 0, mask_ = 0;  // chunk_rows() == 1 << shift_
  uint64_t size_ = 0;
  uint64_t tombstones_ = 0;
  uint64_t erase_generation_ = 0, insert_generation_ = 0;
  // The sum of the hashes of the resident rows that are not stale; digest() adds the
  // stale ones' and clears the bits (mutable: digest() is logically const).
  mutable uint64_t digest_ = 0;
  mutable std::vector<uint64_t> stale_bits_;
  uint32_t high_ = 0;  // slots ever handed out
  std::vector<Chunk> chunks_;
  // The memory of the chunks' records: one block per chunk while the arena is small,
  // then 2 MiB-aligned slabs of kSlabBytes carved into chunks, each collapsed to huge
  // pages when the next is started (NewChunk; Pages above says why).
  static constexpr uint64_t kSlabBytes = uint64_t{32} << 20;
  std::vector<std::unique_ptr<void, FreeDeleter>> blocks_;
  uint64_t* slab_next_ = nullptr;  // the current slab's next chunk
  uint64_t slab_chunks_left_ = 0;
  uint64_t capacity_ = 0;         // index entries
  std::unique_ptr<unsigned char[], FreeDeleter> index_;  // 5 * capacity_ + 3 bytes (Entry)
  uint32_t seen_sink_ = 0;        // last_seen() of a table without last-seen arrays
  std::vector<uint64_t> live_;
  std::vector<uint64_t> dirty_bits_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> dirty_slots_;
  std::vector<Key> dirty_erased_;
  bool track_dirty_ = false;
  bool hash_last_seen_ = false;
};

template <bool kWrite, class F>
void RowTable::ForEachSlot(std::span<const Key> keys, F&& f) const {
  const size_t n = keys.size();
  if (capacity_ == 0) {
    for (size_t i = 0; i < n; ++i) f(i, kNoSlot);
    return;
  }
  // The keys in flight (i to i + 2 * kLookAhead): the hash, computed once, and from stage 2
  // on the candidate slot.
  constexpr size_t kRing = std::bit_ceil(2 * kLookAhead + 1);
  uint64_t hash[kRing];
  uint32_t cand[kRing];
  const unsigned char* const index = index_.get();
  // Stage 1: the home entry's line, and the next one when the entry and the two after it
  // cross into it (a probe run crossing a line must not miss on its second line).
  const auto entry = [&](size_t j) __attribute__((always_inline)) {
    const uint64_t h = KeyHash(keys[j]);
    hash[j % kRing] = h;
    const unsigned char* e = index + 5 * Home(h);
    PrefetchLine(e);
    if ((reinterpret_cast<uintptr_t>(e) & 63) > 64 - 15) PrefetchLine(e + 14);
  };
  // Stage 2: the run from the home entry (in cache by now) up to its first entry with the
  // key's tag, whose record is prefetched, or up to its end (the key is absent).
  const auto row = [&](size_t j) __attribute__((always_inline)) {
    const uint64_t h = hash[j % kRing];
    const uint64_t tag = Tag(h);
    uint32_t c = kNoSlot;
    for (uint64_t i = Home(h);; i = Next(i)) {
      const uint64_t e = Entry(i);
      if (e == 0) break;
      const uint64_t low = e & 0xffffffffULL;
      if (low != kTombstone && (e & ~0xffffffffULL) == tag) {
        c = static_cast<uint32_t>(low - 1);
        break;
      }
    }
    cand[j % kRing] = c;
    if (c != kNoSlot) PrefetchSlot<kWrite>(c);
  };
  for (size_t j = 0; j < std::min(n, 2 * kLookAhead); ++j) entry(j);
  for (size_t j = 0; j < std::min(n, kLookAhead); ++j) row(j);
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 * kLookAhead < n) entry(i + 2 * kLookAhead);
    if (i + kLookAhead < n) row(i + kLookAhead);
    // The candidate is the key's slot when its key matches (the key's entry is the first in
    // its run with its tag and key); after a tag collision the run is walked again.
    const uint32_t c = cand[i % kRing];
    if (c == kNoSlot || key(c) == keys[i]) {
      f(i, c);
    } else {
      f(i, FindHashed(keys[i], hash[i % kRing]));
    }
  }
}

template <bool kWrite, class F>
void RowTable::ForEachKnownSlot(std::span<const uint32_t> slots, F&& f) const {
  const size_t n = slots.size();
  for (size_t j = 0; j < std::min(n, kLookAhead); ++j) {
    if (slots[j] != kNoSlot) PrefetchSlot<kWrite>(slots[j]);
  }
  for (size_t i = 0; i < n; ++i) {
    if (i + kLookAhead < n && slots[i + kLookAhead] != kNoSlot) PrefetchSlot<kWrite>(slots[i + kLookAhead]);
    f(i, slots[i]);
  }
}

}  // namespace tessera::paramserver
