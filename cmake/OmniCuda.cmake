# CUDA flavour (OMNI_CUDA=ON) helpers around find_package(Torch) for a CUDA libtorch, such as the
# PyTorch wheel's (torch.utils.cmake_prefix_path). Included by OmniTorch.cmake; the CPU flavour
# never includes it. See docs/CUDA.md for the pitfalls each step below works around.

# --- before find_package(Torch) -------------------------------------------------------------
macro(omni_cuda_prepare)
  # Torch's Caffe2 public/cuda.cmake calls FindCUDA (needs nvcc) and enable_language(CUDA); with
  # no nvcc on PATH (e.g. CI's environment) both fail with unhelpful messages, so find it here.
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(OMNI_NVCC nvcc
                 HINTS ENV CUDA_HOME ENV CUDA_PATH ENV CUDAToolkit_ROOT
                 PATH_SUFFIXES bin
                 PATHS /usr/local/cuda /usr/local/cuda/bin /opt/cuda/bin)
    if(NOT OMNI_NVCC)
      message(FATAL_ERROR "omnipipe: OMNI_CUDA=ON needs the CUDA toolkit's nvcc (libtorch's CMake "
                          "config compiles a CUDA probe); set CUDA_HOME or CMAKE_CUDA_COMPILER")
    endif()
    set(CMAKE_CUDA_COMPILER "${OMNI_NVCC}" CACHE FILEPATH "nvcc used by libtorch's CMake config")
  endif()
  get_filename_component(_omni_cuda_bin "${CMAKE_CUDA_COMPILER}" DIRECTORY)
  get_filename_component(_omni_cuda_root "${_omni_cuda_bin}" DIRECTORY)
  # One toolkit for FindCUDA, CUDAToolkit and the compiler, or Caffe2 stops with "Found two
  # conflicting CUDA versions".
  if(NOT CUDA_TOOLKIT_ROOT_DIR)
    set(CUDA_TOOLKIT_ROOT_DIR "${_omni_cuda_root}" CACHE PATH "CUDA toolkit for libtorch")
  endif()
  if(NOT CUDAToolkit_ROOT)
    set(CUDAToolkit_ROOT "${CUDA_TOOLKIT_ROOT_DIR}")
  endif()
  # No GPU at build time: with TORCH_CUDA_ARCH_LIST unset torch asks the (absent) driver which
  # GPU it has. Ampere (A100) and Hopper (H100/H200). Only matters for .cu files, which omnipipe
  # does not have today: all GPU work goes through ATen's kernels.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
    if(DEFINED ENV{TORCH_CUDA_ARCH_LIST})
      set(TORCH_CUDA_ARCH_LIST "$ENV{TORCH_CUDA_ARCH_LIST}")
    else()
      set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
    endif()
  endif()
  set(TORCH_CUDA_ARCH_LIST "${TORCH_CUDA_ARCH_LIST}" CACHE STRING "GPU architectures for CUDA code")

  # TorchConfig.cmake looks for libc10/libtorch with find_library(... PATHS <its prefix>), and
  # PATHS come after the system directories: with Debian's libtorch-dev installed it picks
  # /usr/lib/x86_64-linux-gnu/libc10.so (1.13) and the binaries mix two libtorch versions.
  # Seed those cache entries with the files next to the TorchConfig.cmake we are about to use.
  if(NOT Torch_DIR)
    find_path(Torch_DIR TorchConfig.cmake PATHS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES Torch
              NO_DEFAULT_PATH)
  endif()
  if(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
    get_filename_component(_omni_torch_prefix "${Torch_DIR}/../../.." ABSOLUTE)
    foreach(_lib c10 torch c10_cuda kineto)
      string(TOUPPER "${_lib}" _up)
      set(_var "${_lib}_LIBRARY")
      if(_lib STREQUAL "torch" OR _lib STREQUAL "c10_cuda")
        set(_var "${_up}_LIBRARY")
      endif()
      if(EXISTS "${_omni_torch_prefix}/lib/lib${_lib}.so")
        set(${_var} "${_omni_torch_prefix}/lib/lib${_lib}.so" CACHE FILEPATH "" FORCE)
      endif()
    endforeach()
  endif()
endmacro()

# --- after find_package(Torch) --------------------------------------------------------------
function(omni_cuda_finish target)
  if(NOT TARGET torch_cuda AND NOT C10_CUDA_LIBRARY)
    message(FATAL_ERROR "omnipipe: OMNI_CUDA=ON but the libtorch in ${Torch_DIR} was built "
                        "without CUDA; point CMAKE_PREFIX_PATH at a CUDA libtorch "
                        "(python -c 'import torch;print(torch.utils.cmake_prefix_path)')")
  endif()
  if(Torch_VERSION AND Torch_VERSION VERSION_LESS 2.1)
    message(FATAL_ERROR "omnipipe: the CUDA flavour needs libtorch >= 2.1, found ${Torch_VERSION}")
  endif()
  if(c10_LIBRARY AND NOT c10_LIBRARY MATCHES "^${TORCH_INSTALL_PREFIX}/")
    message(FATAL_ERROR "omnipipe: libc10 (${c10_LIBRARY}) is not the one of the libtorch in "
                        "${TORCH_INSTALL_PREFIX}; remove c10_LIBRARY from the cache")
  endif()
  target_compile_definitions(${target} INTERFACE OMNI_CUDA=1)

  # The wheel keeps libtorch in site-packages/torch/lib and the CUDA runtime libraries in
  # site-packages/nvidia/*/lib. Our binaries must load the same libcudart/cublas the wheel's
  # libtorch_cuda was built against (its own RPATH finds them), not the toolkit's copies that
  # CUDAToolkit found for linking: point the imported CUDA targets at the wheel's files and
  # put the wheel's directories first in the RPATH.
  get_filename_component(_site "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
  set(_rpath "${TORCH_INSTALL_PREFIX}/lib")
  file(GLOB _nv_dirs LIST_DIRECTORIES true "${_site}/nvidia/*/lib")
  list(APPEND _rpath ${_nv_dirs})
  foreach(_pair "cudart;libcudart.so" "cublas;libcublas.so" "cublasLt;libcublasLt.so"
                "nvrtc;libnvrtc.so" "curand;libcurand.so" "cufft;libcufft.so")
    list(GET _pair 0 _t)
    list(GET _pair 1 _f)
    if(TARGET CUDA::${_t})
      file(GLOB _cand "${_site}/nvidia/*/lib/${_f}.[0-9]*")
      if(_cand)
        list(GET _cand 0 _lib)
        set_target_properties(CUDA::${_t} PROPERTIES IMPORTED_LOCATION "${_lib}")
      endif()
    endif()
  endforeach()
  # public/mkl.cmake adds ${MKL_ROOT}/lib... link directories even when MKL is absent, which
  # end up as /lib/intel64 entries in every binary's RUNPATH.
  if(TARGET caffe2::mkl AND NOT MKL_FOUND)
    set_property(TARGET caffe2::mkl PROPERTY INTERFACE_LINK_DIRECTORIES "")
  endif()
  # libtorch's config lists libnvrtc by path in TORCH_LIBRARIES; nothing of ours calls NVRTC.
  set(_libs ${TORCH_LIBRARIES})
  if(CUDA_NVRTC_LIB)
    list(REMOVE_ITEM _libs "${CUDA_NVRTC_LIB}")
  endif()
  set(OMNI_TORCH_LIBRARIES ${_libs} PARENT_SCOPE)
  set(OMNI_TORCH_RPATH ${_rpath} PARENT_SCOPE)
  # Never link the driver (libcuda.so.1): binaries must start, and run their CPU tests, on a
  # machine with no NVIDIA driver. libtorch loads the driver API lazily itself.
  target_link_options(${target} INTERFACE "LINKER:--as-needed")
  message(STATUS "omnipipe: CUDA flavour, nvcc ${CMAKE_CUDA_COMPILER}, "
                 "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST}")
endfunction()
