//! The layers import one way, down this list: model, policy, workflow,
//! journal, state, actors, engine, http, bin (with the leaves clock, faults,
//! credential and allocator below all of them, error and telemetry beside
//! model, and config, audit and cluster beside http). The pure layers (model,
//! policy, workflow) use neither actix nor tokio. Read from the source text:
//! every `crate::<module>` a file names must be of its own layer or a lower one.

use std::path::{Path, PathBuf};

/// Lowest first; a file may name modules of its own rank or lower.
const LAYERS: &[(&str, u8)] = &[
    ("clock", 0),
    ("faults", 0),
    // Keys and signatures of signed user actions: a leaf, named by the model.
    ("credential", 0),
    // The binary's allocator: names nothing of the crate.
    ("allocator", 0),
    ("model", 1),
    // The errors name model types (an approval's status); the model names no error.
    ("error", 1),
    // The hot path's metric handles: name the activity statuses.
    ("telemetry", 1),
    ("policy", 2),
    ("workflow", 3),
    ("journal", 4),
    ("state", 5),
    ("actors", 6),
    ("engine", 7),
    ("config", 8),
    ("http", 8),
    // `warden audit verify`: reads the journal with the config's keys.
    ("audit", 8),
    // Which node of a shared journal leads: drives the engine's role from the lease.
    ("cluster", 8),
    ("bin", 9),
];

const PURE: &[&str] = &["model", "policy", "workflow"];
const RUNTIMES: &[&str] = &["actix", "actix_web", "actix_rt", "tokio", "awc"];

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, rank)| *rank)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module of the crate a file belongs to (`src/state/apply.rs` is `state`).
fn layer_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::x` named in `text`, and every path root of a `use` line.
fn named_modules(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `warden_crate::`, not ours
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            // `crate::{a, b}`
            if let Some(list) = rest.strip_prefix('{') {
                let end = list.find('}').unwrap_or(list.len());
                for item in list[..end].split(',') {
                    let root: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !root.is_empty() {
                        names.push(root);
                    }
                }
            }
        } else {
            names.push(name);
        }
    }
    names
}

fn uses_runtime(text: &str) -> Option<&'static str> {
    for line in text.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        for runtime in RUNTIMES {
            for form in [format!("use {runtime}::"), format!(" {runtime}::"), format!("({runtime}::")] {
                if line.contains(&form) || line.starts_with(&format!("{runtime}::")) {
                    return Some(runtime);
                }
            }
        }
    }
    None
}

#[test]
fn layers_import_one_way_and_pure_layers_use_no_runtime() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut violations = Vec::new();
    for file in &all {
        let layer = layer_of(&src, file);
        if layer == "lib" {
            continue; // the facade re-exports every layer
        }
        let Some(own) = rank(&layer) else {
            violations.push(format!("{}: module `{layer}` is in no layer", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for named in named_modules(&text) {
            match rank(&named) {
                Some(theirs) if theirs > own => {
                    violations.push(format!("{}: layer `{layer}` imports higher layer `{named}`", file.display()))
                }
                _ => {}
            }
        }
        if PURE.contains(&layer.as_str()) {
            if let Some(runtime) = uses_runtime(&text) {
                violations.push(format!("{}: pure layer `{layer}` uses `{runtime}`", file.display()));
            }
        }
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
}

#[test]
fn the_check_sees_a_violation() {
    assert_eq!(
        named_modules("use crate::engine::Engine;\nuse crate::{model, state::State};"),
        ["engine", "model", "state"]
    );
    assert_eq!(uses_runtime("use tokio::sync::OnceCell;"), Some("tokio"));
    assert_eq!(uses_runtime("// tokio::spawn would be wrong here"), None);
}
