// Detection sampling: label statistics, repeat-factor and class-aware epochs, grouped batches.
#pragma once

#include <cstdint>
#include <vector>

namespace fastloader {

// Per-image class labels in CSR form: image i holds labels[offsets[i] .. offsets[i + 1]) (one per
// object, so a class may repeat; an image may hold none).
struct ImageLabels {
  const int64_t* labels;
  const int64_t* offsets;  // num_images + 1 entries, offsets[0] == 0, non-decreasing
  int64_t num_images;
  int64_t num_classes;
};

// Throws std::invalid_argument naming the first image whose offsets are inconsistent or that holds
// a label outside [0, num_classes).
void check_image_labels(const ImageLabels& table);

// counts[c] = number of images holding class c (an image with several objects of c counts once).
void images_per_class(const ImageLabels& table, int64_t* counts);

// Images of each class in increasing order: class c's are members[class_offsets[c] ..
// class_offsets[c + 1]), where class_offsets (num_classes + 1) is the prefix sum of
// images_per_class.
void class_members(const ImageLabels& table, const int64_t* class_offsets, int64_t* members);

enum class ClassReduce { kMax, kMean, kSum };

// out[i] = the reduction of class_values over image i's distinct classes, or empty_value for an
// image without labels.
void reduce_class_values(const ImageLabels& table, const double* class_values, ClassReduce how,
                         double empty_value, double* out, int threads);

// Throws std::invalid_argument unless every factor is finite, >= 0 and < 2^31, and their ceilings
// sum below 2^62.
void check_repeat_factors(const double* factors, int64_t n);

// One epoch of repeat-factor sampling: image i appears floor(r_i) + [u_i < frac(r_i)] times (so
// r_i times in expectation, to 2^-53), u_i uniform from the (seed, epoch) stream; the copies are
// then shuffled uniformly. Everything is a pure function of (seed, epoch), whatever `threads`.
class RepeatFactorEpoch {
 public:
  RepeatFactorEpoch(const double* factors, int64_t n, uint64_t seed, uint64_t epoch, int threads);

  int64_t size() const noexcept { return total_; }

  // Writes the size() shuffled image indices of the epoch to out.
  void write(int64_t* out, int threads) const;

 private:
  std::vector<uint32_t> counts_;  // copies of each image this epoch
  uint64_t seed_, epoch_;
  int64_t total_ = 0;
};

// The number of indices in the epoch of RepeatFactorEpoch, without storing anything per image.
int64_t repeat_factor_epoch_size(const double* factors, int64_t n, uint64_t seed, uint64_t epoch,
                                 int threads);

// mmdet's class-aware sampling: visits cycle over the classes with images, in a fresh random order
// each cycle; each visit takes `per_visit` images from that class's own cycle of fresh random
// permutations. Writes the first `length` indices of the (seed, epoch) stream to out. Throws
// std::invalid_argument when no class has an image.
void class_aware_epoch(const int64_t* class_offsets, const int64_t* members, int64_t num_classes,
                       int64_t per_visit, uint64_t seed, uint64_t epoch, int64_t length,
                       int64_t* out, int threads);

// torchvision GroupedBatchSampler's batching of a finished index stream: a batch is emitted when
// its group's buffer holds batch_size indices; then, until `wanted_batches` rows exist, the
// partial buffers (fullest first, ties by when the buffer was opened) are completed with the
// group's first indices of the epoch, cycled. indices must lie in [0, num_ids); group_ids in
// [0, num_groups). Writes rows of batch_size to out (out_rows capacity) and returns the row count.
// GroupId is uint8_t, int32_t or int64_t: small ids keep the random lookups in cache.
template <typename GroupId>
int64_t group_batches(const int64_t* indices, int64_t count, const GroupId* group_ids,
                      int64_t num_ids, int64_t num_groups, int64_t batch_size,
                      int64_t wanted_batches, int64_t* out, int64_t out_rows);

}  // namespace fastloader
