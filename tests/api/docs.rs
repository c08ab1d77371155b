//! The documentation holds for the repository it ships in: every `codeward` command it names
//! exists, every relative link resolves, and the systemd unit and settings it ships run the real
//! CLI.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{TEST_PEPPER, run_codeward};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = "docs/deploy/codeward.service";
const ENV_EXAMPLE: &str = "docs/deploy/codeward.env.example";
/// Where operations.md says to install the binary, and so where the unit starts it from.
const INSTALLED_BINARY: &str = "/usr/local/bin/codeward";

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// README.md and every page in docs/, as paths relative to the repository.
fn documents() -> Vec<String> {
    let mut found = vec!["README.md".to_owned()];
    let mut pages: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    found.extend(pages);
    found
}

/// The fenced code blocks of a Markdown text: each block's language and its lines.
fn code_blocks(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (fence, open.take()) {
            (Some(language), None) => open = Some((language.trim().to_owned(), Vec::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((language, mut lines))) => {
                lines.push(line);
                open = Some((language, lines));
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The text outside fenced code blocks, line by line (links and headings live there).
fn prose(text: &str) -> Vec<&str> {
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if !inside {
            lines.push(line);
        }
    }
    lines
}

/// The inline code spans of prose lines.
fn inline_code<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines
        .iter()
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .collect()
}

/// The commands a snippet of shell names: `target/release/codeward keys rotate --now` gives
/// `["keys", "rotate"]` (at most two words: a command and a subcommand; an argument such as a
/// subcommand-less command's value is told apart later).
fn commands_in(snippet: &str) -> Vec<Vec<String>> {
    // Quotes and separators are shell, not words: `sh -c '… codeward check-config'`.
    let words: Vec<&str> = snippet
        .split_whitespace()
        .map(|word| word.trim_matches(['\'', '"', ';', '(', ')']))
        .collect();
    let mut commands = Vec::new();
    for (at, word) in words.iter().enumerate() {
        // `codeward`, or a path to it; not a URL or a file name that contains the word.
        let is_binary = *word == "codeward" || (word.ends_with("/codeward") && !word.contains(':'));
        if !is_binary {
            continue;
        }
        let named: Vec<String> = words[at + 1..]
            .iter()
            .take(2)
            .take_while(|w| {
                w.starts_with(|c: char| c.is_ascii_lowercase())
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .map(|w| (*w).to_owned())
            .collect();
        commands.push(named);
    }
    commands
}

/// Languages whose blocks are commands someone types (or a unit file's `ExecStart`).
const RUNNABLE: [&str; 6] = ["sh", "bash", "shell", "console", "ini", "systemd"];

#[test]
fn every_codeward_command_the_docs_name_exists() {
    // Every command, with where it was named.
    let mut named: Vec<(Vec<String>, String)> = Vec::new();
    for document in documents() {
        let text = read(&document);
        for (language, lines) in code_blocks(&text) {
            if RUNNABLE.contains(&language.as_str()) {
                for line in lines {
                    // A comment is prose (`# Subject: 830199 is your codeward verification code`).
                    let command_part = match line.find('#') {
                        Some(0) => "",
                        Some(at) if line[..at].ends_with(char::is_whitespace) => &line[..at],
                        _ => line,
                    };
                    for command in commands_in(command_part) {
                        named.push((command, format!("{document}: {line}")));
                    }
                }
            }
        }
        for span in inline_code(&prose(&text)) {
            if span.starts_with("codeward") || span.contains("/codeward ") {
                for command in commands_in(span) {
                    named.push((command, format!("{document}: `{span}`")));
                }
            }
        }
    }
    let distinct: BTreeSet<&Vec<String>> = named.iter().map(|(command, _)| command).collect();
    for expected in [
        vec!["check-config"],
        vec!["migrate", "up"],
        vec!["keys", "list"],
    ] {
        assert!(
            distinct.contains(&expected.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>()),
            "the check itself finds `codeward {}` in the docs; found {distinct:?}",
            expected.join(" ")
        );
    }

    let mut help: HashMap<Vec<String>, Result<String, String>> = HashMap::new();
    let mut run_help = |words: &[String]| {
        help.entry(words.to_vec())
            .or_insert_with(|| {
                let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
                args.push("--help");
                let output = run_codeward(&args, &[]);
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                if output.status.success() {
                    Ok(stdout)
                } else {
                    Err(String::from_utf8_lossy(&output.stderr).into_owned())
                }
            })
            .clone()
    };
    let mut missing = Vec::new();
    for (words, place) in &named {
        let Some(first) = words.first() else {
            continue;
        };
        let checked = match run_help(std::slice::from_ref(first)) {
            // A second word is a subcommand only where the command has some; else an argument.
            Ok(help) if help.contains("Commands:") && words.len() > 1 => run_help(words),
            other => other,
        };
        if let Err(error) = checked {
            missing.push(format!(
                "{place}\n    codeward {} --help: {error}",
                words.join(" ")
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name commands codeward does not have:\n{}",
        missing.join("\n")
    );
}

/// GitHub's anchor for a heading: lowercase, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown page offers: its headings' slugs (a repeated one gets `-1`, `-2`…,
/// as on GitHub) and its explicit `<a id="…">` anchors.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in prose(text) {
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            let base = slug(&line[level..]);
            let count = seen.entry(base.clone()).or_default();
            found.insert(match *count {
                0 => base.clone(),
                n => format!("{base}-{n}"),
            });
            *count += 1;
        }
        for attribute in ["<a id=\"", "<a name=\""] {
            for (_, rest) in line
                .match_indices(attribute)
                .map(|(at, _)| line.split_at(at))
            {
                if let Some((id, _)) = rest[attribute.len()..].split_once('"') {
                    found.insert(id.to_owned());
                }
            }
        }
    }
    found
}

/// The targets of the inline links `[text](target)` of prose lines.
fn link_targets(lines: &[&str]) -> Vec<String> {
    let mut targets = Vec::new();
    for line in lines {
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some((target, _)) = rest.split_once(')') {
                // A title (`[x](path "title")`) is not part of the target.
                let target = target.split_whitespace().next().unwrap_or_default();
                targets.push(target.trim_matches(['<', '>']).to_owned());
            }
        }
    }
    targets
}

#[test]
fn every_relative_link_in_the_docs_resolves_to_a_file_and_heading_of_the_repository() {
    // The check itself: GitHub's slugs for headings of these pages.
    assert_eq!(slug("Tokens and sessions"), "tokens-and-sessions");
    assert_eq!(
        slug("Passwords, addresses and other fields"),
        "passwords-addresses-and-other-fields"
    );
    assert_eq!(
        slug("`RateLimit` headers: what_to do"),
        "ratelimit-headers-what_to-do"
    );
    assert_eq!(
        anchors("# A\n## A\n<a id=\"x\"></a>\n```\n# not a heading\n```\n"),
        BTreeSet::from(["a".to_owned(), "a-1".to_owned(), "x".to_owned()])
    );

    let root = Path::new(ROOT).canonicalize().expect("the repository");
    let mut checked = 0;
    let mut broken = Vec::new();
    for document in documents() {
        let text = read(&document);
        for target in link_targets(&prose(&text)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file: PathBuf = if path.is_empty() {
                root.join(&document)
            } else {
                root.join(&document).parent().expect("a folder").join(path)
            };
            let Ok(file) = file.canonicalize() else {
                broken.push(format!("{document}: {target} (no such file)"));
                continue;
            };
            if !file.starts_with(&root) {
                broken.push(format!("{document}: {target} (outside the repository)"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_some_and(|e| e == "md") {
                let page = std::fs::read_to_string(&file).unwrap_or_default();
                if !anchors(&page).contains(anchor) {
                    broken.push(format!("{document}: {target} (no heading #{anchor})"));
                }
            }
        }
    }
    assert!(checked > 20, "the check itself finds the links ({checked})");
    assert!(
        broken.is_empty(),
        "broken relative links:\n{}",
        broken.join("\n")
    );
}

/// The words of the unit's `ExecStart=`: the binary, then its arguments.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    line.split_whitespace().map(str::to_owned).collect()
}

/// The variables of an environment file as systemd reads it: `NAME=value` lines, `#`
/// comments, a value optionally in double quotes.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not NAME=value: {line}"));
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_systemd_unit_starts_a_command_the_cli_accepts_with_the_example_settings() {
    let unit = read(UNIT);
    let settings = environment_file(&read(ENV_EXAMPLE));
    let exec = exec_start(&unit);
    let variables: Vec<(&str, &str)> = settings
        .iter()
        .map(|(name, value)| {
            // The example's pepper is a placeholder to replace; this one is the tests' own.
            let value = if name == "CODEWARD_PEPPER" {
                TEST_PEPPER
            } else {
                value.as_str()
            };
            (name.as_str(), value)
        })
        .collect();

    assert_eq!(
        exec[0], INSTALLED_BINARY,
        "the unit starts the installed binary"
    );
    let mut with_help: Vec<&str> = exec[1..].iter().map(String::as_str).collect();
    with_help.push("--help");
    let parsed = run_codeward(&with_help, &[]);
    assert!(
        parsed.status.success(),
        "codeward {}: {}",
        with_help.join(" "),
        String::from_utf8_lossy(&parsed.stderr)
    );
    assert!(
        unit.contains("\nEnvironmentFile=/etc/codeward/codeward.env\n"),
        "the unit reads the settings operations.md tells to write"
    );

    let checked = run_codeward(&["check-config"], &variables);
    let effective = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "check-config refuses the example settings: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        effective.contains("CODEWARD_ENV=production\n"),
        "{effective}"
    );
    for (name, _) in &settings {
        // clap ignores a variable it does not know: a misspelt one would be silently unused.
        assert!(
            effective.contains(&format!("\n{name}=")),
            "{name} in {ENV_EXAMPLE} is not a setting codeward knows"
        );
    }
    let as_shipped: Vec<(&str, &str)> = settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let refused = run_codeward(&["check-config"], &as_shipped);
    assert!(
        !refused.status.success(),
        "the placeholder pepper must be refused until it is replaced"
    );
}

#[test]
fn operations_md_quotes_the_shipped_unit_and_settings_verbatim() {
    let operations = read("docs/operations.md");
    let blocks: Vec<String> = code_blocks(&operations)
        .into_iter()
        .map(|(_, lines)| lines.join("\n"))
        .collect();

    for shipped in [UNIT, ENV_EXAMPLE] {
        let text = read(shipped);
        assert!(
            blocks
                .iter()
                .any(|block| block.trim_end() == text.trim_end()),
            "docs/operations.md does not quote {shipped} as it is; copy the file into its block"
        );
    }
}

/// systemd-analyze, where this machine has it.
fn systemd_analyze() -> Option<PathBuf> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// What `systemd-analyze verify` says about `unit`, installed under `name` with its
/// `ExecStart` binary replaced by this build's (verify needs the binary to exist).
fn verify(systemd_analyze: &Path, unit: &str, name: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rewritten = unit.replace(
        &format!("ExecStart={INSTALLED_BINARY}"),
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_codeward")),
    );
    let path = dir.path().join(name);
    std::fs::write(&path, rewritten).expect("unit written");
    let output = Command::new(systemd_analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(systemd_analyze) = systemd_analyze() else {
        // .ci/run installs systemd: there a missing tool is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is not installed (under CI that is a failure)"
        );
        eprintln!(
            "skipped: systemd-analyze is not installed here; \
             the_systemd_unit_starts_a_command_the_cli_accepts_with_the_example_settings \
             still checks the unit's ExecStart"
        );
        return;
    };
    let unit = read(UNIT);
    // The check itself: verify exits 0 on an unknown key and only warns, naming the file.
    let (_, warned) = verify(
        &systemd_analyze,
        &unit.replace("\nType=exec", "\nTypo=exec"),
        "broken-codeward.service",
    );
    assert!(
        warned.contains("broken-codeward.service"),
        "the check itself sees a warning: {warned}"
    );

    let (passed, said) = verify(&systemd_analyze, &unit, "codeward.service");

    assert!(passed, "systemd-analyze verify failed: {said}");
    assert!(
        !said.contains("codeward.service"),
        "systemd-analyze verify warns about the unit: {said}"
    );
}
