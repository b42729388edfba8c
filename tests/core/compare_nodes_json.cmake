# ctest helper: `omnipipe nodes --json` must equal the committed catalogue (tests/core/data/nodes.json)
# so a refactoring cannot change a node's ports, parameters, defaults or docs unnoticed. After an
# intended change: build/bin/omnipipe nodes --json > tests/core/data/nodes.json, and say why.
execute_process(COMMAND ${OMNIPIPE} nodes --json OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "omnipipe nodes --json failed (${_rc})")
endif()
file(READ ${EXPECTED} _expected)
if(NOT _out STREQUAL _expected)
  string(LENGTH "${_out}" _n)
  string(LENGTH "${_expected}" _m)
  file(WRITE ${ACTUAL} "${_out}")
  message(FATAL_ERROR "omnipipe nodes --json (${_n} chars, written to ${ACTUAL}) differs from "
                      "${EXPECTED} (${_m} chars); diff them, and regenerate the file only for an "
                      "intended change")
endif()
