/// Loading and checking flows: a directory or a set of files -> FlowSet + all diagnostics.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/flow.hpp>

namespace civicflow::engine {

/// One source file handed to the loader: its display path and contents. The loader itself
/// never touches the disk; read_flow_dir() below is the one helper that does (CLI, server).
struct SourceFile {
    std::string path;
    std::string contents;
};

/// The outcome of a load: the FlowSet (null when there are errors), every diagnostic, and the
/// sources so diagnostics can be printed with snippets.
struct LoadResult {
    std::shared_ptr<const FlowSet> flows;
    Diagnostics diagnostics;
    SourceCache sources;
};

/// Parses, validates (shape, version, graph, cross-file, matchers, templates, translations) and
/// compiles `files`. All problems are reported in one run. Warnings do not prevent a FlowSet.
/// `directory` names the set in diagnostics about it as a whole (no flows, no entry flow); when
/// empty, the directory of the first file (or "." for no files).
LoadResult load_flows(const std::vector<SourceFile>& files, std::string_view directory = {});

/// Reads every *.yaml / *.yml file directly in `dir` (sorted by name). I/O failures are an Error.
Result<std::vector<SourceFile>> read_flow_dir(const std::string& dir);

/// Reads one file (size-capped: larger files are returned truncated past the YAML limit so the
/// loader reports E108 without holding the whole file).
Result<SourceFile> read_source_file(const std::string& path);

}  // namespace civicflow::engine
