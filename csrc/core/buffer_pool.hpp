// A process-wide pool of large host buffers, so batch outputs reuse already-faulted pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace fastloader {

// A fresh 100+ MB buffer is page-faulted on first write (~1.9 GB/s here), slower than the copy
// that fills it. Blocks released here are handed out again for the next request of the same size
// class (sizes rounded up by at most 1/8), up to `limit` cached bytes; large blocks come with
// transparent huge pages. Thread-safe, and safe across fork() (the lock is held over fork).
class BufferPool {
 public:
  struct Stats {
    int64_t cached_bytes = 0;   // held free, ready for reuse
    int64_t cached_blocks = 0;
    int64_t live_bytes = 0;     // handed out and not yet released
    int64_t live_blocks = 0;
    int64_t hits = 0;           // requests served from the cache
    int64_t misses = 0;         // requests that allocated
    int64_t limit_bytes = 0;
  };

  static BufferPool& global();

  // Capacity a request of `bytes` is rounded up to.
  static std::size_t size_class(std::size_t bytes) noexcept;

  // Returns a block of at least `bytes` (its capacity is size_class(bytes)); never nullptr:
  // throws std::bad_alloc when the memory cannot be had (or `bytes` is absurd).
  void* acquire(std::size_t bytes, std::size_t* capacity);
  // Gives a block back; it is cached or, above the limit, freed (oldest cached blocks first).
  void release(void* data, std::size_t capacity) noexcept;

  void set_limit(std::size_t bytes);
  void clear() noexcept;  // frees every cached block
  Stats stats() const;

 private:
  BufferPool() = default;
  void evict_to(std::size_t bytes) noexcept;  // caller holds mutex_

  struct Block {
    void* data;
    std::size_t capacity;
  };
  mutable std::mutex mutex_;
  std::vector<Block> free_;  // release order: the oldest first
  std::size_t cached_bytes_ = 0;
  std::size_t live_bytes_ = 0;
  int64_t live_blocks_ = 0, hits_ = 0, misses_ = 0;
  std::size_t limit_ = std::size_t{1} << 30;

  friend void pool_prepare_fork() noexcept;
  friend void pool_after_fork() noexcept;
};

// One block of the global pool, returned to it on destruction (RAII for the Python wrapper).
class PooledBuffer {
 public:
  explicit PooledBuffer(std::size_t bytes);
  ~PooledBuffer();
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;

  unsigned char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace fastloader
