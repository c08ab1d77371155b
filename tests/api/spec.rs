//! Generated artefacts that are committed must match what the code generates.

const REGENERATE_SPEC: &str = "cargo run -q -- openapi > openapi.yaml";

#[test]
fn committed_openapi_yaml_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_default();

    let generated = codeward::api::spec_yaml();

    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi.yaml is out of date; regenerate it with `{REGENERATE_SPEC}` and commit it"
    );
}

#[test]
fn readme_configuration_table_matches_the_cli() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = "<!-- config-table:start -->\n";
    let end = "<!-- config-table:end -->";
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .expect("README has the config-table markers");

    let generated = codeward::config::markdown_table();

    assert!(
        table == generated,
        "README.md's configuration table is out of date; print the new one with \
         `cargo run -q -- config-table` and paste it between the markers\n{generated}"
    );
}

#[test]
fn every_setting_has_a_codeward_variable_and_a_description() {
    let table = codeward::config::markdown_table();
    let rows: Vec<&str> = table.lines().skip(2).collect();

    assert!(rows.len() >= 20, "expected every setting, got {}", rows.len());
    for row in rows {
        assert!(row.starts_with("| `CODEWARD_"), "{row}");
        assert!(!row.ends_with("|  |"), "setting without a description: {row}");
    }
}
