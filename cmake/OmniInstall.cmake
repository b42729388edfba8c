# `cmake --install`: headers under include/omnipipe/<module>/, the static libraries, the `omnipipe`
# CLI, and a CMake package (omnipipeConfig.cmake + version file) with one namespaced target per
# module: omnipipe::core, ::media, ::common, ::text, ::image, ::audio, ::fusion, ::qwen_omni
# (models/qwen2_5_omni) and ::nodes (the whole catalogue). Each module has its own export file, so
# a consumer that asks for find_package(omnipipe COMPONENTS core) needs only core's dependencies
# (docs/WRITING_NODES.md).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(OMNI_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/omnipipe)
set(OMNI_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/omnipipe)

# module name -> library target, header folder (relative to the source root)
set(_omni_modules core media common text image audio fusion qwen_omni nodes)
set(_omni_dir_core core)
set(_omni_dir_media modalities/media)
set(_omni_dir_common modalities/common)
set(_omni_dir_text modalities/text)
set(_omni_dir_image modalities/image)
set(_omni_dir_audio modalities/audio)
set(_omni_dir_fusion fusion)
set(_omni_dir_qwen_omni models/qwen2_5_omni)
set(_omni_dir_nodes nodes)

set(OMNI_INSTALLED_COMPONENTS "")
foreach(m ${_omni_modules})
  if(m STREQUAL "nodes")
    set(_t omni_all_nodes)
  else()
    set(_t omni_${m})
  endif()
  if(NOT TARGET ${_t})
    continue()
  endif()
  list(APPEND OMNI_INSTALLED_COMPONENTS ${m})
  set_target_properties(${_t} PROPERTIES EXPORT_NAME ${m})
  set(_extra "")
  if(m STREQUAL "common" AND TARGET omni_torch_dep)
    set_target_properties(omni_torch_dep PROPERTIES EXPORT_NAME torch)
    set(_extra omni_torch_dep)
  endif()
  # The chat-template interpreter (headers under modalities/text/jinja) ships with its user.
  if(m STREQUAL "qwen_omni" AND TARGET omni_template)
    set(_extra omni_template)
  endif()
  install(TARGETS ${_t} ${_extra} EXPORT omnipipe-${m}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ${m}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ${m}
          INCLUDES DESTINATION ${OMNI_INSTALL_INCLUDEDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_omni_dir_${m}}/
          DESTINATION ${OMNI_INSTALL_INCLUDEDIR}/${_omni_dir_${m}} COMPONENT ${m}
          FILES_MATCHING PATTERN "*.h")
  install(EXPORT omnipipe-${m} NAMESPACE omnipipe:: DESTINATION ${OMNI_INSTALL_CMAKEDIR}
          FILE omnipipe-${m}-targets.cmake COMPONENT ${m})
endforeach()

if(TARGET omnipipe)
  install(TARGETS omnipipe RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
endif()

# Facts about this build the package config needs to find the same dependencies.
set(OMNI_CONFIG_CUDA ${OMNI_CUDA})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/omnipipeConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/omnipipeConfig.cmake
                              INSTALL_DESTINATION ${OMNI_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/omnipipeConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/omnipipeConfig.cmake
              ${PROJECT_BINARY_DIR}/omnipipeConfigVersion.cmake
        DESTINATION ${OMNI_INSTALL_CMAKEDIR} COMPONENT core)
