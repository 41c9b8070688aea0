// The GIL released around a kernel, as py::gil_scoped_release does, except at interpreter exit.
//
// CPython up to 3.13 ends a thread that asks for the GIL back while the interpreter is being
// finalized (a daemon thread still inside a kernel when the main thread exits) with
// pthread_exit(). glibc implements that as a forced unwind, which here starts inside the guard's
// destructor; destructors are noexcept, so the unwind calls std::terminate and the whole process
// aborts ("terminate called without an active exception") after the program has finished.
// This guard catches the unwind and parks the thread instead, which is what CPython 3.14 does
// itself: the exiting process ends the parked thread. Nothing is cleaned up on that thread
// (no Python object may be touched without the GIL), which is why it is parked, not unwound.
#pragma once

#include <pybind11/pybind11.h>
#include <unistd.h>

namespace fastloader::bindings {

class ReleasedGil {
 public:
  // PRECONDITION: the calling thread holds the GIL (every binding body does).
  ReleasedGil() : state_(PyEval_SaveThread()) {}
  ReleasedGil(const ReleasedGil&) = delete;
  ReleasedGil& operator=(const ReleasedGil&) = delete;

  ~ReleasedGil() {
    try {
      PyEval_RestoreThread(state_);
    } catch (...) {  // only pthread_exit's forced unwind: PyEval_RestoreThread throws nothing
      for (;;) pause();  // never leaves the handler, so the unwind is neither lost nor resumed
    }
  }

 private:
  PyThreadState* state_;
};

}  // namespace fastloader::bindings
