//! The bad-config fixtures in `testdata/config/bad/`: one small file per mistake, each loaded
//! as `millwatch validate` loads it ([`Config::from_file`]) and answered with exactly the
//! message in its sibling `.expected` file, `FILE:LINE:COLUMN` first. In the expected text the
//! fixtures' folder is written `{dir}`, as `validate` names files there.

use std::path::{Path, PathBuf};

use millwatch::config::Config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/config/bad")
}

#[test]
fn every_bad_config_gets_its_message() {
    let dir = fixtures();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the fixtures folder")
        .map(|entry| entry.expect("a fixture").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{} fixtures", names.len());
    let shown_dir = dir.display().to_string();
    let mut wrong = Vec::new();
    for path in &names {
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let got = match Config::from_file(path) {
            Ok(_) => "(loaded without a mistake)".to_string(),
            Err(errors) => errors.to_string().replace(&shown_dir, "{dir}"),
        };
        if got.trim_end() != expected.trim_end() {
            wrong.push(format!(
                "{}:\n  expected: {}\n  got:      {}",
                path.display(),
                expected.trim_end(),
                got
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_message_starts_with_its_place_in_the_file() {
    let dir = fixtures();
    for entry in std::fs::read_dir(&dir).expect("the fixtures folder") {
        let path = entry.expect("a fixture").path();
        if path.extension().is_none_or(|e| e != "expected") {
            continue;
        }
        let yaml = path.with_extension("yaml");
        assert!(yaml.exists(), "{} has no fixture", path.display());
        let text = std::fs::read_to_string(&path).expect("expected text");
        let prefix = format!(
            "{{dir}}/{}:",
            yaml.file_name().unwrap_or_default().display()
        );
        for line in text.lines() {
            let place = line.strip_prefix(&prefix).unwrap_or_else(|| {
                panic!(
                    "{}: {line:?} does not start with {prefix:?}",
                    path.display()
                )
            });
            let mut parts = place.splitn(3, ':');
            let (line_no, column) = (parts.next(), parts.next());
            assert!(
                line_no.is_some_and(|n| n.parse::<usize>().is_ok())
                    && column.is_some_and(|n| n.parse::<usize>().is_ok()),
                "{}: {line:?} has no LINE:COLUMN",
                path.display()
            );
        }
    }
}
