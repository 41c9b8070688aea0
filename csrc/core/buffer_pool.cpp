// The recycling host-buffer pool behind collate outputs in the main process.
#include "core/buffer_pool.hpp"

#include <algorithm>
#include <limits>
#include <new>

#include "core/huge_pages.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace fastloader {

namespace {
using ByteAllocator = HugePageAllocator<unsigned char>;
}  // namespace

// Holding the lock across fork() means the child never inherits it mid-update by another thread.
void pool_prepare_fork() noexcept { BufferPool::global().mutex_.lock(); }
void pool_after_fork() noexcept { BufferPool::global().mutex_.unlock(); }

BufferPool& BufferPool::global() {
  // Never destroyed: Python may free the last tensor viewing a block during interpreter shutdown,
  // after static destructors would have run.
  static BufferPool* pool = [] {
    auto* created = new BufferPool();
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(pool_prepare_fork, pool_after_fork, pool_after_fork);
#endif
    return created;
  }();
  return *pool;
}

std::size_t BufferPool::size_class(std::size_t bytes) noexcept {
  const std::size_t granule = bytes >= (std::size_t{4} << 20) ? (std::size_t{2} << 20) : 4096;
  if (bytes <= granule) return granule;
  std::size_t top = 1;  // highest power of two <= bytes
  while (top <= bytes / 2) top <<= 1;
  const std::size_t step = std::max(granule, top / 8);
  return (bytes + step - 1) / step * step;
}

void* BufferPool::acquire(std::size_t bytes, std::size_t* capacity) {
  // size_class rounds up by at most 1/8 plus a huge page: refuse sizes where that would wrap.
  if (bytes > std::numeric_limits<std::size_t>::max() / 2) throw std::bad_alloc();
  const std::size_t wanted = size_class(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Most recently released first: its pages are the likeliest to still be in cache.
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if (it->capacity != wanted) continue;
      void* data = it->data;
      free_.erase(std::next(it).base());
      cached_bytes_ -= wanted;
      live_bytes_ += wanted;
      ++live_blocks_;
      ++hits_;
      *capacity = wanted;
      return data;
    }
    ++misses_;
  }
  void* data = ByteAllocator().allocate(wanted);  // outside the lock: page setup can be slow
  std::lock_guard<std::mutex> lock(mutex_);
  live_bytes_ += wanted;
  ++live_blocks_;
  *capacity = wanted;
  return data;
}

void BufferPool::release(void* data, std::size_t capacity) noexcept {
  if (data == nullptr) return;
  bool keep = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_bytes_ -= capacity;
    --live_blocks_;
    if (capacity <= limit_) {
      evict_to(limit_ - capacity);
      free_.push_back({data, capacity});
      cached_bytes_ += capacity;
      keep = true;
    }
  }
  if (!keep) ByteAllocator().deallocate(static_cast<unsigned char*>(data), capacity);
}

void BufferPool::evict_to(std::size_t bytes) noexcept {
  std::size_t drop = 0;
  while (drop < free_.size() && cached_bytes_ > bytes) {
    cached_bytes_ -= free_[drop].capacity;
    ByteAllocator().deallocate(static_cast<unsigned char*>(free_[drop].data), free_[drop].capacity);
    ++drop;
  }
  free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(drop));
}

void BufferPool::set_limit(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  limit_ = bytes;
  evict_to(limit_);
}

void BufferPool::clear() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  evict_to(0);
}

BufferPool::Stats BufferPool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats s;
  s.cached_bytes = static_cast<int64_t>(cached_bytes_);
  s.cached_blocks = static_cast<int64_t>(free_.size());
  s.live_bytes = static_cast<int64_t>(live_bytes_);
  s.live_blocks = live_blocks_;
  s.hits = hits_;
  s.misses = misses_;
  s.limit_bytes = static_cast<int64_t>(limit_);
  return s;
}

PooledBuffer::PooledBuffer(std::size_t bytes) : size_(bytes) {
  // In the body: capacity_'s default initializer would otherwise overwrite what acquire() wrote.
  data_ = static_cast<unsigned char*>(BufferPool::global().acquire(bytes, &capacity_));
}

PooledBuffer::~PooledBuffer() { BufferPool::global().release(data_, capacity_); }

}  // namespace fastloader
