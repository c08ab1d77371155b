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

    assert!(
        rows.len() >= 20,
        "expected every setting, got {}",
        rows.len()
    );
    for row in rows {
        assert!(row.starts_with("| `CODEWARD_"), "{row}");
        assert!(
            !row.ends_with("|  |"),
            "setting without a description: {row}"
        );
    }
}

#[test]
fn the_spec_declares_every_problem_code_of_the_contract() {
    let spec: serde_json::Value = serde_json::from_str(&codeward::api::spec_json()).unwrap();
    let declared: Vec<&str> = spec["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("ProblemCode is an enum schema")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();

    // The codes API.md lists, plus the ones codeward adds where the contract is silent.
    let contract = [
        "invalid_request",
        "invalid_code",
        "unauthorized",
        "invalid_credentials",
        "invalid_token",
        "wrong_password",
        "not_found",
        "payload_too_large",
        "unsupported_media_type",
        "validation_failed",
        "rate_limited",
        "overloaded",
        "method_not_allowed",
        "not_ready",
        "internal_error",
    ];
    for code in contract {
        assert!(declared.contains(&code), "{code} missing from {declared:?}");
    }
    assert_eq!(
        declared.len(),
        contract.len(),
        "undocumented extra codes: {declared:?}"
    );
}

#[test]
fn every_operation_has_an_operation_id_a_tag_and_a_summary() {
    let spec: serde_json::Value = serde_json::from_str(&codeward::api::spec_json()).unwrap();
    let paths = spec["paths"].as_object().expect("paths");

    assert!(!paths.is_empty());
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(operation["operationId"].is_string(), "{at}: operationId");
            assert!(operation["summary"].is_string(), "{at}: summary");
            assert!(operation["description"].is_string(), "{at}: description");
            assert!(
                operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{at}: tag"
            );
        }
    }
}
