//! Precompressed copies of the site's files (`name.gz`, `name.br`) for a release build: the
//! server sends them as they are instead of compressing per request.

use std::io::Write as _;
use std::path::Path;

use crate::Failure;

/// Writes a gzip and a brotli copy beside every file under `root`.
pub fn site(root: &Path) -> Result<(), Failure> {
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.is_dir() {
            site(&path)?;
            continue;
        }
        let is_copy = path
            .extension()
            .is_some_and(|extension| extension == "gz" || extension == "br");
        if is_copy {
            continue;
        }
        let content = std::fs::read(&path)?;

        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&content)?;
        std::fs::write(with_suffix(&path, "gz"), gzip.finish()?)?;

        let mut brotli = Vec::new();
        let settings = brotli::enc::BrotliEncoderParams {
            quality: 11,
            lgwin: 22,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut content.as_slice(), &mut brotli, &settings)?;
        std::fs::write(with_suffix(&path, "br"), brotli)?;
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    name.into()
}
