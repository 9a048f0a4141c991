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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
