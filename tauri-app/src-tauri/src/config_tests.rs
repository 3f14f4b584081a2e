//! The security settings in tauri.conf.json and capabilities/, checked as data: they are easy
//! to loosen by accident and nothing else would notice.

use std::path::Path;

use serde_json::Value;

fn read_json(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn capability_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("capabilities");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .map(|name| format!("capabilities/{name}"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_webview_gets_no_shell_permission() {
    let files = capability_files();
    assert!(!files.is_empty());
    for file in files {
        let capability = read_json(&file);
        for permission in capability["permissions"].as_array().unwrap() {
            // A permission is a string or an object with an "identifier".
            let id = permission
                .as_str()
                .or_else(|| permission["identifier"].as_str())
                .unwrap_or_default();
            assert!(
                !id.starts_with("shell:"),
                "{file} grants {id}: the sidecar is spawned from Rust only"
            );
        }
    }
}

#[test]
fn the_csp_lets_the_webview_reach_only_the_loopback_sidecar() {
    let config = read_json("tauri.conf.json");
    let csp = &config["app"]["security"]["csp"];
    let directive = |name: &str| csp[name].as_str().unwrap_or_default().to_owned();
    assert_eq!(directive("default-src"), "'self'");
    assert_eq!(directive("script-src"), "'self'");
    for source in directive("connect-src").split_whitespace() {
        assert!(
            ["ipc:", "http://ipc.localhost", "http://127.0.0.1:*"].contains(&source),
            "connect-src allows {source}"
        );
    }
    for source in directive("img-src").split_whitespace() {
        assert!(
            ["'self'", "blob:", "data:", "http://127.0.0.1:*"].contains(&source),
            "img-src allows {source}"
        );
    }
    assert_eq!(directive("object-src"), "'none'");
}

#[test]
fn the_build_settings_the_ui_relies_on() {
    let config = read_json("tauri.conf.json");
    assert_eq!(config["build"]["frontendDist"], "../dist");
    assert_eq!(config["build"]["devUrl"], "http://localhost:5173");
    // The one-folder sidecar bundle travels as resources, at the path the shell resolves.
    assert_eq!(
        config["bundle"]["resources"],
        serde_json::json!({ "binaries/kensa-sidecar/": format!("{}/", crate::SIDECAR_DIR) })
    );
    assert!(config["bundle"].get("externalBin").is_none());
    assert_eq!(config["app"]["windows"][0]["label"], "main");
}
