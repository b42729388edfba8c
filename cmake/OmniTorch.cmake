# Finds libtorch (Debian's libtorch-dev 1.13 CPU by default, or a CUDA libtorch via
# CMAKE_PREFIX_PATH / Torch_DIR) and exposes it as the interface target omni::torch.
find_package(Torch REQUIRED)
add_library(omni_torch_dep INTERFACE)
target_link_libraries(omni_torch_dep INTERFACE ${TORCH_LIBRARIES})
target_include_directories(omni_torch_dep SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
# TORCH_CXX_FLAGS carries the _GLIBCXX_USE_CXX11_ABI setting of the libtorch we link.
separate_arguments(_omni_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(omni_torch_dep INTERFACE ${_omni_torch_flags})
add_library(omni::torch ALIAS omni_torch_dep)
message(STATUS "omnipipe: libtorch ${Torch_VERSION} from ${Torch_DIR}")
