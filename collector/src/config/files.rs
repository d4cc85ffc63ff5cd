//! Files a config file names for Millwatch to read — a model's baseline file, an email
//! receiver's CA file: relative paths are resolved against the config file's folder once, when
//! the file is loaded, so that `validate` and the running collector use the same paths; and each
//! file is checked to be there and readable, a problem reported at the line of its key.
//!
//! Folders Millwatch writes (`data_dir`, a remote-write queue's `dir`) are left as written:
//! relative to the working directory, as `--data-dir` and the embedded default are, so that an
//! existing store does not move.

use std::path::{Path, PathBuf};

use millwatch_exporters::notify::NotifierConfig;

use super::Config;
use super::load::Problem;
use crate::detection::config::BaselineSource;

/// Every file setting of `config` with its dotted path in the file.
fn named_files(config: &mut Config) -> Vec<(String, &mut PathBuf)> {
    let mut out = Vec::new();
    for (i, model) in config.detection.models.iter_mut().enumerate() {
        if let Some(BaselineSource::File(path)) = &mut model.baseline {
            out.push((format!("detection.models[{i}].baseline.file"), path));
        }
    }
    for (name, receiver) in &mut config.alerting.receivers {
        if let NotifierConfig::Email(email) = receiver
            && let Some(path) = &mut email.tls_ca_file
        {
            out.push((format!("alerting.receivers.{name}.tls_ca_file"), path));
        }
    }
    out
}

/// Resolves the relative file paths of `config` against `folder` (the config file's) and
/// checks every file; the problems found.
pub fn resolve_and_check(config: &mut Config, folder: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, path) in named_files(config) {
        let written = path.clone();
        if written.is_relative() {
            // `components` drops the `./` of `./reference.parquet`.
            *path = folder.join(&written).components().collect();
        }
        if let Some((message, hint)) = unreadable(path, &written, folder) {
            problems.push(Problem {
                path: key,
                message,
                hint: Some(hint),
            });
        }
    }
    problems
}

/// What is wrong with the file at `path` (written `written` in the config), if anything.
fn unreadable(path: &Path, written: &Path, folder: &Path) -> Option<(String, String)> {
    let shown = if written.is_relative() {
        format!("`{}` ({})", written.display(), path.display())
    } else {
        format!("`{}`", path.display())
    };
    let where_hint = || {
        if written.is_relative() {
            format!(
                "a relative path is taken from the config file's folder, {}",
                folder.display()
            )
        } else {
            "check the path, or write it relative to the config file's folder".to_string()
        }
    };
    let problem = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (format!("file {shown} does not exist"), where_hint())
        }
        Err(e) => (format!("cannot read {shown}: {e}"), where_hint()),
        Ok(m) if m.is_dir() => (
            format!("{shown} is a folder, not a file"),
            "name the file itself".to_string(),
        ),
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => return None,
            Err(e) => (
                format!("cannot read {shown}: {e}"),
                "make it readable by the user Millwatch runs as".to_string(),
            ),
        },
    };
    Some(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of its own for a test, emptied first.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "millwatch-config-files-{test}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    const CONFIG: &str = "\
detection:
  models:
    - name: press
      baseline:
        file: reference.csv
    - name: lathe
      baseline: { file: /nonexistent/millwatch/lathe.parquet }
alerting:
  receivers:
    mail:
      type: email
      host: smtp.example.net
      tls_ca_file: certs/ca.pem
      from: mw@example.net
      to: [ops@example.net]
  route:
    receiver: mail
";

    #[test]
    fn missing_files_are_errors_at_their_key_with_the_resolved_path() {
        let dir = scratch("missing");
        let config = dir.join("millwatch.yaml");
        std::fs::write(&config, CONFIG).expect("write config");
        let errors = Config::from_file(&config).expect_err("three files are missing");
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        let c = config.display();
        let d = dir.display();
        assert_eq!(
            lines,
            [
                format!(
                    "{c}:5:9: detection.models[0].baseline.file: file `reference.csv` ({d}/reference.csv) does not exist (hint: a relative path is taken from the config file's folder, {d})"
                ),
                // Inside a flow mapping too, at the key itself.
                format!(
                    "{c}:7:19: detection.models[1].baseline.file: file `/nonexistent/millwatch/lathe.parquet` does not exist (hint: check the path, or write it relative to the config file's folder)"
                ),
                format!(
                    "{c}:13:7: alerting.receivers.mail.tls_ca_file: file `certs/ca.pem` ({d}/certs/ca.pem) does not exist (hint: a relative path is taken from the config file's folder, {d})"
                ),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_paths_are_resolved_against_the_config_folder_once() {
        let dir = scratch("resolved");
        std::fs::create_dir_all(dir.join("certs")).expect("certs");
        std::fs::write(dir.join("reference.csv"), "a\n1\n").expect("reference");
        std::fs::write(dir.join("certs/ca.pem"), "pem").expect("ca");
        let text = CONFIG.replace(
            "{ file: /nonexistent/millwatch/lathe.parquet }",
            "{ first_events: 10 }",
        );
        let config_path = dir.join("millwatch.yaml");
        std::fs::write(&config_path, text).expect("write config");
        let config = Config::from_file(&config_path).expect("every file is there");
        assert_eq!(
            config.detection.models[0].baseline,
            Some(BaselineSource::File(dir.join("reference.csv")))
        );
        let Some(NotifierConfig::Email(mail)) = config.alerting.receivers.get("mail") else {
            panic!("the mail receiver");
        };
        assert_eq!(mail.tls_ca_file, Some(dir.join("certs/ca.pem")));
        // Folders Millwatch writes are left as written.
        assert_eq!(config.data_dir, Config::default().data_dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_problems_come_with_the_other_mistakes_and_a_folder_is_not_a_file() {
        let dir = scratch("together");
        std::fs::create_dir_all(dir.join("reference.csv")).expect("a folder by that name");
        let text = format!("store:\n  retention: 30 dys\n{CONFIG}").replace(
            "{ file: /nonexistent/millwatch/lathe.parquet }",
            "{ first_events: 10 }",
        );
        let config = dir.join("millwatch.yaml");
        std::fs::write(&config, text).expect("write config");
        let errors = Config::from_file(&config).expect_err("mistakes");
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "store.retention",
                "detection.models[0].baseline.file",
                "alerting.receivers.mail.tls_ca_file"
            ]
        );
        assert!(
            errors.0[1].message.ends_with("is a folder, not a file"),
            "{}",
            errors.0[1]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
