// libFuzzer target: the training data loaders on arbitrary file contents.
//   byte 0: which loader (mod 4): 0 LIBSVM (a9a), 1 IDX labels, 2 IDX images, 3 text
//           corpus (text8); the rest is the file, plain or gzip (the loaders detect it).
// The file lives in a memfd, so no disk is touched. Properties: no crash/UB/unbounded
// allocation; a refusal carries a message; an accepted file's data is consistent.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "worker/data/corpus.h"
#include "worker/data/idx_reader.h"
#include "worker/data/libsvm.h"

namespace {

using namespace tessera;

void Check(bool c) {
  if (!c) abort();
}

void CheckRefusal(const Status& st) { Check(!st.ok() && !st.message().empty()); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 4;
  const int fd = memfd_create("tessera-fuzz", MFD_CLOEXEC);
  if (fd < 0) abort();
  if (size > 1 && write(fd, data + 1, size - 1) != static_cast<ssize_t>(size - 1)) abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (which == 0) {
    data::LoadOptions o;
    o.limit = 10000;
    auto r = data::LoadLibsvm(path, o);
    if (r.ok()) {
      Check(static_cast<int64_t>(r->offsets.size()) == r->num_examples + 1);
      Check(r->feature.size() == r->value.size());
      Check(static_cast<int64_t>(r->label.size()) == r->num_examples);
    } else {
      CheckRefusal(r.status());
    }
  } else if (which == 1 || which == 2) {
    auto r = data::IdxReader::Open(path, which == 1 ? data::kIdxLabelsMagic : data::kIdxImagesMagic,
                                   which == 1 ? "label" : "image");
    if (r.ok()) {
      // Read up to 1 MiB of records: a header may promise far more than the file holds.
      const int64_t rb = (*r)->record_bytes();
      const int64_t n = rb > 0 ? std::min<int64_t>((*r)->num_records(), (1 << 20) / rb) : 0;
      std::vector<uint8_t> buf(static_cast<size_t>(n * rb));
      Status st = (*r)->ReadRecords(0, n, buf.data());
      if (st.ok() && n == (*r)->num_records()) st = (*r)->Finish();
      if (!st.ok()) CheckRefusal(st);
    } else {
      CheckRefusal(r.status());
    }
  } else {
    data::CorpusOptions o;
    o.min_count = 1;
    o.heldout_fraction = 0.1;
    o.limit = 100000;
    auto r = data::LoadCorpus(path, o);
    if (r.ok()) {
      for (int32_t id : r->train) Check(id >= 0 && id < r->vocab.size());
      for (int32_t id : r->heldout) Check(id >= 0 && id < r->vocab.size());
    } else {
      CheckRefusal(r.status());
    }
  }
  close(fd);
  return 0;
}
