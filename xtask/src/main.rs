//! `cargo xtask build [--release]`: the site and the server, as one command.
//!
//! What cargo-leptos does for this project, in the few steps the project needs, so that a new
//! machine compiles only this small tool (wasm-bindgen's own library) instead of installing
//! cargo-leptos and wasm-bindgen-cli first:
//!
//! 1. the `frontend` crate for `wasm32-unknown-unknown` (profile `wasm-release` with
//!    `--release`);
//! 2. wasm-bindgen's JS glue for it (`--target web`), through `wasm-bindgen-cli-support`, the
//!    library the CLI is made of; with `--release`, `wasm-opt -Oz` when binaryen's `wasm-opt`
//!    is installed (not Debian's: its output does not hydrate);
//! 3. `style/main.css` and `public/` into the site root `target/site`;
//! 4. content hashes in the names of the JS, wasm and CSS files, listed in `hash.txt` beside
//!    the server binary (Leptos reads it there), so `/pkg` can be cached for a year;
//! 5. with `--release`, gzip and brotli copies of every site file (the server sends them
//!    precompressed);
//! 6. the `server` binary.
//!
//! The names and places are the ones `[workspace.metadata.leptos]` in Cargo.toml gives, which
//! `cargo leptos build` and `cargo leptos watch` still read for those who have it.

mod compress;
mod site;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// `LEPTOS_OUTPUT_NAME` (also set in .cargo/config.toml, for the server's own build).
const OUTPUT_NAME: &str = "subscriptions";
const SITE_ROOT: &str = "target/site";
const PKG_DIR: &str = "pkg";
const STYLE_FILE: &str = "style/main.css";
const ASSETS_DIR: &str = "public";

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let release = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build"] => false,
        ["build", "--release"] => true,
        _ => {
            eprintln!("usage: cargo xtask build [--release]");
            return ExitCode::from(2);
        }
    };
    match build(release) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn build(release: bool) -> Result<(), Failure> {
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    let profile = if release { "wasm-release" } else { "dev" };
    step("frontend (wasm32-unknown-unknown)");
    cargo(&[
        "build",
        "--package=frontend",
        "--lib",
        "--target=wasm32-unknown-unknown",
        &format!("--profile={profile}"),
    ])?;
    let wasm_dir = if release { "wasm-release" } else { "debug" };
    let wasm = root.join(format!(
        "target/wasm32-unknown-unknown/{wasm_dir}/frontend.wasm"
    ));

    step("site: JS glue, styles, assets, hashed names");
    let bin_dir = root.join(if release {
        "target/release"
    } else {
        "target/debug"
    });
    let written = site::write(&site::Inputs {
        wasm: &wasm,
        release,
        site_root: &root.join(SITE_ROOT),
        pkg_dir: PKG_DIR,
        output_name: OUTPUT_NAME,
        style_file: &root.join(STYLE_FILE),
        assets_dir: &root.join(ASSETS_DIR),
        hash_file: &bin_dir.join("hash.txt"),
    })?;
    println!("{written}");
    if release {
        step("precompressed copies (gzip, brotli)");
        compress::site(&root.join(SITE_ROOT))?;
    }

    step("server");
    let mut server = vec!["build", "--package=server"];
    if release {
        server.push("--release");
    }
    cargo(&server)
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

fn workspace_root() -> PathBuf {
    // xtask/ sits in the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<(), Failure> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo).args(args).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")).into())
    }
}
