//! Downloading the real datasets from their official locations, for users who have internet access.
//!
//! Each source has its official URL, the expected size and checksum where a trustworthy one is published
//! (TFDS, disent), and a structural check after download. Files are downloaded with the system `curl` into
//! `<name>.part`, verified, then renamed: a failed or interrupted download never leaves a file that looks complete.
use crate::error::{Error, Result};
use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a dataset comes from and how to check it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Source {
    pub name: &'static str,
    pub url: String,
    pub file: &'static str,
    pub size: Option<u64>,
    pub sha256: Option<&'static str>,
    pub md5: Option<&'static str>,
    /// What to do after the download (extraction, where to point dydis).
    pub then: &'static str,
}

/// Every dataset with an official download.
pub fn sources() -> Vec<Source> {
    vec![
        Source {
            name: "shapes3d",
            url: "https://storage.googleapis.com/3d-shapes/3dshapes.h5".into(),
            file: "3dshapes.h5",
            size: Some(267_573_662),
            sha256: Some("0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"),
            md5: None,
            then: "the 3dshapes.h5 reader is not built yet; the file is kept for when it is",
        },
        Source {
            name: "dsprites",
            url: "https://github.com/deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz".into(),
            file: "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            size: None,
            sha256: None,
            md5: None,
            then: "no checksum is published for the .npz: it is verified by opening it as the 737,280-image grid",
        },
        Source {
            name: "mpi3d_toy",
            url: "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_toy.npz".into(),
            file: "mpi3d_toy.npz",
            size: None,
            sha256: None,
            md5: Some("55889cb7c7dfc655d6e0277beee88868"),
            then: "about 12.7 GB; open it by path (memory-mapped)",
        },
        Source {
            name: "cars3d",
            url: "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz".into(),
            file: "nips2015-analogy-data.tar.gz",
            size: None,
            sha256: None,
            md5: Some("4e866a7919c1beedf53964e6f7a23686"),
            then: "extract it (tar xzf nips2015-analogy-data.tar.gz) and open the folder data/cars by path; no licence is stated, do not redistribute",
        },
    ]
}

/// CelebA cannot be fetched automatically: its agreement must be accepted by a person.
pub const CELEBA_NOTE: &str = "CelebA is distributed under an agreement that forbids redistribution: download \
    img_align_celeba.zip and list_attr_celeba.txt yourself from the CelebA project page (CUHK MMLab), unzip them \
    into one folder, and open it with CelebA::open(folder, 64). Never commit or share the files.";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 and md5 of a file, read once.
pub fn digests(path: &Path) -> Result<(String, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let (mut sha, mut md5) = (sha2::Sha256::new(), md5::Md5::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5::Digest::update(&mut md5, &buf[..n]);
    }
    Ok((hex(&sha.finalize()), hex(&md5::Digest::finalize(md5))))
}

/// Check a downloaded file against its source's size and checksums.
pub fn verify(source: &Source, path: &Path) -> Result<()> {
    let bad = |m: String| Error::File { path: path.to_path_buf(), message: m };
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if let Some(size) = source.size {
        if len != size {
            return Err(bad(format!("{len} bytes, expected {size}")));
        }
    }
    let (sha, md5) = digests(path)?;
    if let Some(want) = source.sha256 {
        if sha != want {
            return Err(bad(format!("sha256 {sha}, expected {want}")));
        }
    }
    if let Some(want) = source.md5 {
        if md5 != want {
            return Err(bad(format!("md5 {md5}, expected {want}")));
        }
    }
    Ok(())
}

/// Download `source` into `dir` (skipped when a verified copy is already there). Returns the file's path.
pub fn fetch(source: &Source, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let dest = dir.join(source.file);
    if dest.exists() && verify(source, &dest).is_ok() {
        return Ok(dest);
    }
    let part = dir.join(format!("{}.part", source.file));
    let _ = std::fs::remove_file(&part);
    let manual = format!("download {} by hand and put it at {}", source.url, dest.display());
    let out = std::process::Command::new("curl")
        .args([
            "--fail",
            "--location",
            "--silent",
            "--show-error",
            "--retry",
            "2",
            "--connect-timeout",
            "20",
            "--output",
        ])
        .arg(&part)
        .arg(&source.url)
        .output()
        .map_err(|e| Error::File { path: dest.clone(), message: format!("could not run curl ({e}); {manual}") })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&part);
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::File {
            path: dest,
            message: format!("could not download {} ({why}); {manual}", source.url),
        });
    }
    if let Err(e) = verify(source, &part) {
        let _ = std::fs::remove_file(&part);
        return Err(Error::File {
            path: dest,
            message: format!("the download failed verification: {e}; nothing was kept"),
        });
    }
    std::fs::rename(&part, &dest).map_err(|e| Error::io(&dest, e))?;
    Ok(dest)
}
