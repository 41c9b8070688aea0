// The checks every binding makes on the numpy arrays the Python layer passes, written once:
// exact dtype in native byte order, one dimension, C-contiguous (TypeError otherwise), writable
// where the kernel writes, and long enough (ValueError otherwise), each message naming the
// argument. No conversion: a converted copy would hide the caller's mistake and cost a copy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>

namespace fastloader::bindings {

template <typename T>
constexpr const char* dtype_name() {
  if constexpr (std::is_same_v<T, double>) return "float64";
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, int64_t>) return "int64";
  if constexpr (std::is_same_v<T, int32_t>) return "int32";
  if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  return "numeric";
}

// `array` as a typed 1-D C-contiguous array, or a TypeError naming `name`.
template <typename T>
pybind11::array_t<T, pybind11::array::c_style> typed_vector(const pybind11::array& array,
                                                           const char* name) {
  if (!pybind11::isinstance<pybind11::array_t<T>>(array) || array.ndim() != 1 ||
      !(array.flags() & pybind11::array::c_style))
    throw pybind11::type_error(std::string(name) + " should be a C-contiguous native " +
                               dtype_name<T>() + " array of one dimension");
  return pybind11::reinterpret_borrow<pybind11::array_t<T, pybind11::array::c_style>>(array);
}

// The data of an array the kernel reads; with `expected` >= 0 it must hold exactly that many.
template <typename T>
const T* input_vector(const pybind11::array& array, const char* name, int64_t expected = -1) {
  typed_vector<T>(array, name);
  if (expected >= 0 && array.shape(0) != expected)
    throw pybind11::value_error(std::string(name) + " holds " + std::to_string(array.shape(0)) +
                                " items, " + std::to_string(expected) + " expected");
  return static_cast<const T*>(array.data());
}

// `value`, or a ValueError naming it when negative (a count, a length).
inline int64_t non_negative(int64_t value, const char* name) {
  if (value < 0)
    throw pybind11::value_error(std::string(name) + " should be non-negative, but got " +
                                std::to_string(value));
  return value;
}

// The data of an array the kernel writes: writable, and with `needed` >= 0 at least that long.
template <typename T>
T* output_vector(const pybind11::array& array, const char* name, int64_t needed = -1) {
  typed_vector<T>(array, name);
  if (!array.writeable())
    throw pybind11::value_error(std::string(name) + " should be writable, but it is read-only");
  if (needed >= 0 && array.shape(0) < needed)
    throw pybind11::value_error(std::string(name) + " holds " + std::to_string(array.shape(0)) +
                                " items, " + std::to_string(needed) + " needed");
  return static_cast<T*>(pybind11::reinterpret_borrow<pybind11::array>(array).mutable_data());
}

}  // namespace fastloader::bindings
