//! The site root: wasm-bindgen's output for the frontend, the stylesheet and the assets,
//! with content hashes in the names Leptos looks them up by (`hash.txt`).

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::Failure;

pub struct Inputs<'a> {
    pub wasm: &'a Path,
    pub release: bool,
    pub site_root: &'a Path,
    pub pkg_dir: &'a str,
    pub output_name: &'a str,
    pub style_file: &'a Path,
    pub assets_dir: &'a Path,
    pub hash_file: &'a Path,
}

/// Writes the site; a line saying what it holds.
pub fn write(inputs: &Inputs) -> Result<String, Failure> {
    let name = inputs.output_name;
    // Old hashed names (and a release build's compressed copies) must not outlive the build.
    if inputs.site_root.exists() {
        std::fs::remove_dir_all(inputs.site_root)?;
    }
    let pkg = inputs.site_root.join(inputs.pkg_dir);
    std::fs::create_dir_all(&pkg)?;

    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(inputs.wasm)
        .web(true)?
        .typescript(false)
        .out_name(name)
        .generate(&pkg)
        .map_err(|e| format!("wasm-bindgen: {e:#}"))?;
    let glue = pkg.join(format!("{name}.js"));
    let wasm = pkg.join(format!("{name}_bg.wasm"));
    if inputs.release {
        optimize(&wasm)?;
    }

    let wasm_hash = hash(&std::fs::read(&wasm)?);
    let wasm_name = format!("{name}.{wasm_hash}.wasm");
    std::fs::rename(&wasm, pkg.join(&wasm_name))?;
    // The glue's fallback URL for the module (Leptos passes the hashed one explicitly).
    let js = std::fs::read_to_string(&glue)?.replace(&format!("{name}_bg.wasm"), &wasm_name);
    std::fs::remove_file(&glue)?;
    let js_hash = hash(js.as_bytes());
    std::fs::write(pkg.join(format!("{name}.{js_hash}.js")), &js)?;

    let css = std::fs::read(inputs.style_file)?;
    let css_hash = hash(&css);
    std::fs::write(pkg.join(format!("{name}.{css_hash}.css")), &css)?;

    let assets = copy_tree(inputs.assets_dir, inputs.site_root)?;

    if let Some(folder) = inputs.hash_file.parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(
        inputs.hash_file,
        format!("js: {js_hash}\nwasm: {wasm_hash}\ncss: {css_hash}\n"),
    )?;
    let wasm_bytes = std::fs::metadata(pkg.join(&wasm_name))?.len();
    Ok(format!(
        "{}: {wasm_name} ({} KiB), JS {} KiB, CSS {} KiB, {assets} asset files; names in {}",
        inputs.site_root.display(),
        wasm_bytes / 1024,
        js.len() / 1024,
        css.len() / 1024,
        inputs.hash_file.display()
    ))
}

/// 16 bytes of SHA-256, URL-safe: a name that changes whenever the content does.
fn hash(content: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(content)[..16])
}

/// `wasm-opt -Oz` in place, with the features rustc's wasm target emits. Only binaryen's
/// own build: Debian's (version 108, /usr/bin) produces modules that fail to hydrate.
fn optimize(wasm: &Path) -> Result<(), Failure> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wasm-opt"))
            .find(|candidate| candidate.is_file())
    });
    let Some(wasm_opt) = found.filter(|path| path != Path::new("/usr/bin/wasm-opt")) else {
        eprintln!(
            "warning: no wasm-opt from binaryen on PATH (`cargo install wasm-opt --locked`): \
             the release wasm is not optimized"
        );
        return Ok(());
    };
    let status = Command::new(wasm_opt)
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
        ])
        .arg(wasm)
        .arg("-o")
        .arg(wasm)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("wasm-opt failed ({status})").into())
    }
}

/// Copies the files under `from` into `to`, keeping their paths; how many.
fn copy_tree(from: &Path, to: &Path) -> Result<usize, Failure> {
    let mut copied = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copied += copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            copied += 1;
        }
    }
    Ok(copied)
}
