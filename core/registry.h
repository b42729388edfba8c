// Node registry: explicit name -> (contract, factory). Nothing registers itself behind the
// user's back; each module exposes a register_*_nodes(Registry&) function.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/node.h"

namespace omni {

struct NodeType {
  std::string name;
  Contract contract;
  std::function<std::unique_ptr<Node>()> factory;
};

class Registry {
 public:
  // Registers node class N, which has `static Contract contract()` and a default constructor.
  template <class N>
  void add(const std::string& name) {
    add(NodeType{name, N::contract(), [] { return std::unique_ptr<Node>(new N()); }});
  }
  // Throws ConfigError if the name is taken.
  void add(NodeType type);

  bool contains(const std::string& name) const { return types_.count(name) != 0; }
  // Throws ConfigError listing the known types when the name is unknown.
  const NodeType& get(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::map<std::string, NodeType>& types() const { return types_; }

 private:
  std::map<std::string, NodeType> types_;
};

// The generic nodes that live in core (counting source, pass-through, merge, JSON-lines sink...).
void register_core_nodes(Registry& r);

}  // namespace omni
