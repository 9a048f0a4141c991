//! The minimum Rust is stated once (the workspace's `rust-version`) and is true: it is the
//! newest any crate in the lockfile asks for, and the README and the Dockerfile say the same.

use std::process::Command;

use serde_json::Value;

/// `major.minor` of a version, as numbers (a missing minor is 0).
fn version(v: &str) -> (u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn the_stated_minimum_rust_is_what_the_lockfile_needs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let resolved: std::collections::HashSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let packages = meta["packages"].as_array().unwrap();
    let (needed, by) = packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| resolved.contains(id)))
        .filter(|p| p["source"].is_string())
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?)))
        .max()
        .expect("some crate states its minimum Rust");
    let stated = packages
        .iter()
        .find(|p| p["name"] == "llm-judge")
        .and_then(|p| p["rust_version"].as_str())
        .expect("the service states a rust-version");
    assert_eq!(
        version(stated),
        needed,
        "Cargo.toml says Rust {stated}, but {by} needs {}.{}",
        needed.0,
        needed.1
    );
    let said = format!("Rust {stated}");
    for file in ["README.md", "Dockerfile"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        assert!(text.contains(&said), "{file} does not say {said:?}");
    }
}

/// Every module file of the workspace (crates and the service), relative to the workspace root,
/// with the `src/` directory it is listed under.
fn module_files() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut srcs = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        srcs.push(entry.unwrap().path().join("src"));
    }
    let mut modules = Vec::new();
    for src in srcs {
        let mut files = Vec::new();
        walk(&src, &mut files);
        let base = src.strip_prefix(root).unwrap().display().to_string();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap().display().to_string();
            modules.push((format!("{base}/"), rel));
        }
    }
    modules
}

#[test]
fn the_architecture_document_names_every_module() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md"))
        .expect("docs/architecture.md exists");
    let mut missing = Vec::new();
    for (base, rel) in module_files() {
        // Each crate's list starts with a heading naming its `src/` directory.
        let Some(start) = doc.find(&format!("(`{base}`)")) else {
            missing.push(format!("{base} (no section)"));
            continue;
        };
        let section = &doc[start..];
        let section = &section[..section[1..].find("\n### ").map_or(section.len(), |i| i + 1)];
        if !section.contains(&format!("\n- `{rel}`: ")) {
            missing.push(format!("{base}{rel}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name: {missing:?}"
    );
}
