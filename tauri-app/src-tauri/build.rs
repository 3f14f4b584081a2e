//! Tauri's build step, plus a guard: a production build must bundle the real sidecar, not the
//! placeholder `scripts/check-tauri` leaves for plain compile checks.

use std::path::PathBuf;

/// Written into the placeholder by `scripts/check-tauri`.
const PLACEHOLDER_MARK: &[u8] = b"KENSA-PLACEHOLDER-SIDECAR";

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let ext = if target.contains("windows") {
        ".exe"
    } else {
        ""
    };
    // The one-folder bundle bundle.resources carries (scripts/build-sidecar).
    let sidecar = PathBuf::from(format!("binaries/kensa-sidecar/kensa-sidecar{ext}"));
    println!("cargo:rerun-if-changed={}", sidecar.display());
    match std::fs::read(&sidecar) {
        Err(_) => panic!(
            "{} is missing: run scripts/build-sidecar to bundle the sidecar \
             (scripts/check-tauri puts a placeholder there for compile checks)",
            sidecar.display()
        ),
        Ok(bytes)
            if bytes
                .windows(PLACEHOLDER_MARK.len())
                .any(|w| w == PLACEHOLDER_MARK) =>
        {
            // DEP_TAURI_DEV is "false" only when tauri's custom-protocol feature is on, which is
            // what `tauri build` (the bundle that ships) uses.
            if std::env::var("DEP_TAURI_DEV").as_deref() == Ok("false") {
                panic!(
                    "{} is the placeholder, not the sidecar: run scripts/build-sidecar before \
                     a production build",
                    sidecar.display()
                );
            }
            println!(
                "cargo:warning={} is a placeholder; the app will show the sidecar error screen \
                 until scripts/build-sidecar replaces it",
                sidecar.display()
            );
        }
        Ok(_) => {}
    }

    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        // Our own commands get allow-/deny- permissions, so a capability must name each one the
        // webview may call (capabilities/default.json) instead of all of them being open.
        tauri_build::AppManifest::new().commands(&[
            "sidecar_endpoint",
            "sidecar_status",
            "sidecar_restart",
            "ui_shown",
        ]),
    ))
    .expect("tauri-build failed");
}
