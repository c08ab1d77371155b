//! The shape of the code, held by tests: layers import only downwards, no module cycles, the
//! decoys a database holds are the code engine's, and `check-config` shows every setting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::Args as _;
use codeward::config::Config;
use entity::otp_codes;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{run_codeward, spawn_app};

/// Each top-level module of `src/` and its layer; a module may import only from its own layer
/// or the ones below.
const LAYERS: [(&str, u8); 8] = [
    ("domain", 0),
    ("config", 1),
    ("infra", 2),
    ("core", 3),
    ("app", 4),
    ("http", 5),
    ("startup", 6),
    ("cli", 6),
];

/// A module path: `["http", "signup"]` for src/http/signup.rs, `[]` for src/lib.rs.
type Module = Vec<String>;

fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    match file.trim_end_matches(".rs") {
        "mod" | "lib" => {}
        name => parts.push(name.to_owned()),
    }
    parts
}

/// Every `crate::…` path a source file names, with `{a, b::c}` groups expanded.
fn crate_paths(source: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if !preceded_by_ident {
            expand(rest, Vec::new(), &mut paths);
        }
    }
    paths
}

fn expand(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let mut path = prefix;
    path.extend(
        text[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    if text[end..].starts_with('{') {
        let mut depth = 0;
        let mut start = end + 1;
        for (i, c) in text[end..].char_indices() {
            let i = end + i;
            match c {
                '{' => depth += 1,
                '}' | ',' if depth == 1 => {
                    let item = text[start..i].trim();
                    if !item.is_empty() && item != "self" {
                        expand(item, path.clone(), out);
                    } else if item == "self" {
                        out.push(path.clone());
                    }
                    start = i + 1;
                    if c == '}' {
                        return;
                    }
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
    } else {
        out.push(path);
    }
}

/// The module a path names: its longest prefix that is a module of the crate.
fn resolve(path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// What breaks the layering or makes a cycle, one sentence each; `files` maps each module to
/// its source.
fn violations(files: &BTreeMap<Module, String>) -> Vec<String> {
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let layer = |module: &Module| {
        let top = module.first().map_or("", String::as_str);
        LAYERS
            .iter()
            .find(|(name, _)| *name == top)
            .map(|(_, l)| *l)
    };
    let mut found = Vec::new();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in files {
        if module.is_empty() {
            continue; // lib.rs declares the layers
        }
        let Some(own) = layer(module) else {
            found.push(format!(
                "{} is in no layer: add its top-level module to LAYERS",
                module.join("::")
            ));
            continue;
        };
        for path in crate_paths(source) {
            let Some(target) = resolve(&path, &modules) else {
                continue;
            };
            if let Some(theirs) = layer(&target)
                && theirs > own
            {
                found.push(format!(
                    "{} (layer {own}) imports {} (layer {theirs}), a higher layer",
                    module.join("::"),
                    path.join("::")
                ));
            }
            // A module naming its own ancestor is how Rust shares a parent's items; it is
            // not a dependency between peers.
            let ancestor = target.len() <= module.len() && module[..target.len()] == target[..];
            if !ancestor {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    found.extend(cycles(&edges));
    found
}

/// One sentence per module cycle found by a depth-first walk.
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    fn visit(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let cycle: Vec<String> = stack[at..]
                .iter()
                .chain([node])
                .map(|m| m.join("::"))
                .collect();
            found.push(format!("module cycle: {}", cycle.join(" -> ")));
            return;
        }
        if !done.insert(node.clone()) {
            return;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn crate_sources() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
                let relative = path.strip_prefix(&root).expect("under src");
                let source = std::fs::read_to_string(&path).expect("read source");
                files.insert(module_of(relative), source);
            }
        }
    }
    files
}

#[test]
fn layers_import_only_downwards_and_no_modules_form_a_cycle() {
    let files = crate_sources();
    assert!(
        files.len() > 40,
        "the scan found only {} files",
        files.len()
    );

    let found = violations(&files);

    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_layer_check_catches_an_upward_import_a_cycle_and_a_module_in_no_layer() {
    let module = |path: &str| path.split("::").map(str::to_owned).collect::<Module>();
    let files = BTreeMap::from([
        (
            module("domain::email"),
            "use crate::app::Services;".to_owned(),
        ),
        (module("app"), String::new()),
        (
            module("core::a"),
            "use crate::core::{b::Thing, c};".to_owned(),
        ),
        (
            module("core::b"),
            "fn f() { crate::core::a::g() }".to_owned(),
        ),
        (module("core::c"), String::new()),
        (module("gadgets"), String::new()),
    ]);

    let found = violations(&files);

    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("domain::email (layer 0) imports app::Services"));
    assert!(found[1].contains("gadgets is in no layer"));
    assert!(found[2].contains("core::a -> core::b -> core::a"));
}

#[tokio::test]
async fn the_decoys_in_a_migrated_database_are_the_code_engines() {
    let app = spawn_app().await;
    let db = app.connect_db().await;

    let rows = otp_codes::Entity::find()
        .filter(otp_codes::Column::KeyId.eq("decoy"))
        .all(&db)
        .await
        .unwrap();

    let in_database: BTreeSet<uuid::Uuid> = rows.iter().map(|row| row.user_id).collect();
    let in_engine: BTreeSet<uuid::Uuid> = codeward::core::codes::decoy_user_ids().collect();
    assert_eq!(in_database, in_engine);
    let purposes: BTreeSet<&str> = rows.iter().map(|row| row.purpose.as_str()).collect();
    let engine_purposes: BTreeSet<&str> = codeward::domain::Purpose::ALL
        .iter()
        .map(|purpose| purpose.name())
        .collect();
    assert_eq!(purposes, engine_purposes, "one decoy code per purpose");
    assert_eq!(rows.len(), in_engine.len() * engine_purposes.len());
}

#[test]
fn check_config_shows_every_setting_the_command_line_defines() {
    let defined: Vec<String> = Config::augment_args(clap::Command::new("codeward"))
        .get_arguments()
        .filter_map(|arg| Some(arg.get_env()?.to_string_lossy().into_owned()))
        .collect();
    assert!(defined.len() >= 48, "{defined:?}");

    let output = run_codeward(&["check-config"], &[]);

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let shown: Vec<String> = stdout
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    assert_eq!(
        shown, defined,
        "check-config must show each setting once, in order"
    );
}
