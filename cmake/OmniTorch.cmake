# Finds libtorch (Debian's libtorch-dev 1.13 CPU by default, or a CUDA libtorch via
# CMAKE_PREFIX_PATH / Torch_DIR with OMNI_CUDA=ON) and exposes it as the interface target
# omni::torch. The CUDA specifics live in OmniCuda.cmake (docs/CUDA.md).
if(OMNI_CUDA)
  include(OmniCuda)
  omni_cuda_prepare()
endif()
find_package(Torch REQUIRED)
add_library(omni_torch_dep INTERFACE)
set(OMNI_TORCH_LIBRARIES ${TORCH_LIBRARIES})
if(OMNI_CUDA)
  omni_cuda_finish(omni_torch_dep)  # sets OMNI_TORCH_LIBRARIES and OMNI_TORCH_RPATH
  # Wheel directories first, so the binaries load the wheel's CUDA runtime libraries.
  list(PREPEND CMAKE_BUILD_RPATH ${OMNI_TORCH_RPATH})
endif()
target_link_libraries(omni_torch_dep INTERFACE ${OMNI_TORCH_LIBRARIES})
target_include_directories(omni_torch_dep SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
# TORCH_CXX_FLAGS carries the _GLIBCXX_USE_CXX11_ABI setting of the libtorch we link (libtorch
# 2.12's config no longer sets it: its wheels are always built with the C++11 ABI, like Debian's).
if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
  # Every other C++ dependency (yaml-cpp, GoogleTest, ...) comes from Debian with the new ABI;
  # mixing gives link errors on std::string symbols.
  message(FATAL_ERROR "omnipipe: the libtorch in ${Torch_DIR} uses the pre-C++11 ABI; use a "
                      "cxx11-ABI libtorch (PyTorch wheels >= 2.7, or the cxx11-abi archive)")
endif()
separate_arguments(_omni_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(omni_torch_dep INTERFACE ${_omni_torch_flags})
add_library(omni::torch ALIAS omni_torch_dep)
message(STATUS "omnipipe: libtorch ${Torch_VERSION} from ${Torch_DIR}")
