#include "worker/data/dataset.h"

#include <filesystem>
#include <vector>

#include "worker/data/idx_reader.h"

namespace tessera::data {

Result<Split> ParseSplit(std::string_view name) {
  if (name == "train") return Split::kTrain;
  if (name == "test" || name == "t10k") return Split::kTest;
  return Status::InvalidArgument("unknown split '" + std::string(name) +
                                 "': expected train or test");
}

std::string_view SplitName(Split split) { return split == Split::kTrain ? "train" : "test"; }

ExampleRange ShardRange(int64_t n, int rank, int world) {
  return {n * rank / world, n * (rank + 1) / world};
}

TensorView Dataset::FeatureRows(int64_t begin, int64_t end) const {
  return {features.as<float>() + begin * dim, DType::kF32, {end - begin, dim}, Device::kCPU};
}

TensorView Dataset::LabelRows(int64_t begin, int64_t end) const {
  return {labels.as<int32_t>() + begin, DType::kI32, {end - begin}, Device::kCPU};
}

Result<Dataset> LoadIdxPair(const std::string& images_path, const std::string& labels_path,
                            int num_classes, const LoadOptions& options) {
  if (options.world < 1 || options.rank < 0 || options.rank >= options.world) {
    return Status::InvalidArgument("bad partition: rank " + std::to_string(options.rank) + " of " +
                                   std::to_string(options.world) + " workers");
  }
  if (options.limit < 0) return Status::InvalidArgument("negative example limit");
  if (num_classes < 1 || num_classes > 256) {
    return Status::InvalidArgument("num_classes must be in [1, 256], got " +
                                   std::to_string(num_classes));
  }
  TESSERA_ASSIGN_OR_RETURN(auto images, IdxReader::Open(images_path, kIdxImagesMagic, "image"));
  TESSERA_ASSIGN_OR_RETURN(auto labels, IdxReader::Open(labels_path, kIdxLabelsMagic, "label"));
  if (images->num_records() != labels->num_records()) {
    return Status::Corruption(images_path + " holds " + std::to_string(images->num_records()) +
                              " images but " + labels_path + " holds " +
                              std::to_string(labels->num_records()) +
                              " labels (count at offset 4)");
  }
  const int64_t total = images->num_records();
  const int64_t used = options.limit > 0 ? std::min(options.limit, total) : total;
  const ExampleRange shard = ShardRange(used, options.rank, options.world);
  const int64_t dim = images->record_bytes();

  Dataset ds;
  ds.num_examples = shard.size();
  ds.dim = dim;
  ds.num_classes = num_classes;
  ds.first_index = shard.begin;
  ds.total_examples = total;

  // Pixels: read the shard's bytes once, then widen to f32 in [0, 1].
  std::vector<uint8_t> pixels(static_cast<size_t>(shard.size() * dim));
  TESSERA_RETURN_IF_ERROR(images->ReadRecords(shard.begin, shard.end, pixels.data()));
  TESSERA_RETURN_IF_ERROR(images->Finish());
  ds.features = Tensor::Zeros(DType::kF32, {shard.size(), dim});
  float* f = ds.features.as<float>();
  for (size_t i = 0; i < pixels.size(); ++i) f[i] = static_cast<float>(pixels[i]) * (1.0f / 255.0f);

  std::vector<uint8_t> raw(static_cast<size_t>(shard.size()));
  TESSERA_RETURN_IF_ERROR(labels->ReadRecords(shard.begin, shard.end, raw.data()));
  TESSERA_RETURN_IF_ERROR(labels->Finish());
  ds.labels = Tensor::Zeros(DType::kI32, {shard.size()});
  int32_t* l = ds.labels.as<int32_t>();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] >= num_classes) {
      return Status::Corruption(
          labels_path + ": label " + std::to_string(raw[i]) + " at offset " +
          std::to_string(labels->header_bytes() + shard.begin + static_cast<int64_t>(i)) +
          " is not below " + std::to_string(num_classes));
    }
    l[i] = raw[i];
  }
  return ds;
}

namespace {

// <dir>/<name>.gz if it exists, else <dir>/<name> if that exists, else the .gz path
// (so the NotFound message names the canonical file).
std::string ResolveIdxPath(const std::string& dir, const std::string& name) {
  const std::filesystem::path base(dir);
  const std::filesystem::path gz = base / (name + ".gz");
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz.string();
  const std::filesystem::path plain = base / name;
  if (std::filesystem::exists(plain, ec)) return plain.string();
  return gz.string();
}

}  // namespace

Result<Dataset> LoadMnist(const std::string& dir, Split split, const LoadOptions& options) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string images = ResolveIdxPath(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = ResolveIdxPath(dir, prefix + "-labels-idx1-ubyte");
  TESSERA_ASSIGN_OR_RETURN(Dataset ds, LoadIdxPair(images, labels, /*num_classes=*/10, options));
  return ds;
}

}  // namespace tessera::data
