# Shared compile settings for omnipipe targets.
function(omni_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(OMNI_SANITIZE STREQUAL "thread")
    target_compile_options(${target} PRIVATE -fsanitize=thread -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=thread)
  elseif(OMNI_SANITIZE STREQUAL "address")
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# omni_add_test(NAME name SOURCES a.cpp ... LIBS lib ...)
# One GoogleTest executable per test file group, registered with ctest via gtest_discover_tests.
function(omni_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  omni_target_defaults(${T_NAME})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${T_NAME} PRIVATE OMNI_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                               OMNI_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  # Tests of libtorch-facing modules reuse omni_common's precompiled <torch/torch.h>.
  set(_torch_libs omni_common omni_text omni_image omni_audio omni_fusion omni_shapes
                 omni_qwen_omni)
  foreach(_lib ${T_LIBS})
    if(_lib IN_LIST _torch_libs AND TARGET omni_common)
      target_precompile_headers(${T_NAME} REUSE_FROM omni_common)
      break()
    endif()
  endforeach()
  gtest_discover_tests(${T_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${T_LABELS}"
                       TIMEOUT 300)
endfunction()
