//! The bad-input table: every spec in `tests/data/bad-specs.yaml` is refused, by the CRD's
//! structural schema or by its CEL rules, with the field and message the table names.
//! Here the schema is checked with a JSON Schema validator and the CEL rules with kube's
//! client-side CEL evaluator; the e2e suite checks the same table against a real API server.

use halo::api::HighlyAvailableApp;
use halo::fixtures::merge;
use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Case {
    name: String,
    patch: Value,
    field: String,
    message: String,
    /// Other refusals the same input cannot avoid (a long zone label is also in every name
    /// under the zone); with them the refusals must be exactly these, in any order.
    #[serde(default)]
    also: Vec<(String, String)>,
}

fn sample() -> Value {
    serde_saphyr::from_str(include_str!("../../config/samples/small.yaml")).expect("sample parses")
}

fn schema() -> Value {
    let crd = HighlyAvailableApp::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema json")
}

/// The API server's wording of a structural schema violation, without the value.
fn api_server_wording(kind: &jsonschema::error::ValidationErrorKind) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let quoted = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The CRD stores limits as float64; Go prints integral ones without a fraction.
    let number = |v: &Value| match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => v.to_string(),
    };
    match kind {
        K::Maximum { limit } => format!("should be less than or equal to {}", number(limit)),
        K::Minimum { limit } => format!("should be greater than or equal to {}", number(limit)),
        K::MinLength { limit } => format!("should be at least {limit} chars long"),
        K::MaxLength { limit } => format!("may not be more than {limit} bytes long"),
        K::Pattern { pattern } => format!("should match '{pattern}'"),
        K::Enum { options } => format!("supported values: {}", quoted(options)),
        K::MaxItems { limit } => format!("must have at most {limit} items"),
        K::Required { property } => format!("Required value: {property}"),
        other => format!("{other:?}"),
    }
}

/// (field, message) of every error the API server would report, schema errors first.
fn refusals(manifest: &Value) -> Vec<(String, String)> {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let schema_errors: Vec<(String, String)> = validator
        .iter_errors(manifest)
        .map(|e| {
            let path = e.instance_path.to_string();
            let field = path
                .trim_start_matches('/')
                .split('/')
                .fold(String::new(), |acc, seg| {
                    if seg.chars().all(|c| c.is_ascii_digit()) && !acc.is_empty() {
                        format!("{acc}[{seg}]")
                    } else if acc.is_empty() {
                        seg.to_string()
                    } else {
                        format!("{acc}.{seg}")
                    }
                });
            (field, api_server_wording(&e.kind))
        })
        .collect();
    if !schema_errors.is_empty() {
        return schema_errors;
    }
    // The API server applies the schema defaults before CEL; serde does the same here.
    let app: HighlyAvailableApp =
        serde_json::from_value(manifest.clone()).expect("schema-valid manifest deserializes");
    match app.validate_cel() {
        Ok(()) => vec![],
        Err(errors) => errors
            .as_slice()
            .iter()
            .map(|e| (e.field_path.clone(), e.message.clone()))
            .collect(),
    }
}

/// Each bad spec is refused with the field and message of the table.
#[test]
fn every_bad_spec_is_refused_with_its_message() {
    let cases: Vec<Case> =
        serde_saphyr::from_str(include_str!("data/bad-specs.yaml")).expect("table parses");
    assert!(cases.len() >= 10, "the table must keep at least 10 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let mut manifest = sample();
        merge(&mut manifest, &case.patch);
        let got = refusals(&manifest);
        let expected = (case.field.clone(), case.message.clone());
        let refused = if case.also.is_empty() {
            got.first() == Some(&expected)
        } else {
            let mut want: Vec<_> = case.also.iter().chain([&expected]).cloned().collect();
            let mut got = got.clone();
            want.sort();
            got.sort();
            got == want
        };
        if !refused {
            failures.push(format!("{}: expected {expected:?}, got {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The samples themselves are accepted: every file in config/samples/.
#[test]
fn samples_are_accepted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("config/samples")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "architecture.yaml",
        "data.yaml",
        "dns.yaml",
        "full.yaml",
        "small.yaml",
        "storage.yaml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).expect("sample reads");
        let manifest: Value = serde_saphyr::from_str(&text).expect("sample parses");
        if manifest["kind"] == "TenancyPolicy" {
            continue; // tenancy.yaml: checked against its own CRD in halo::tenancy's tests
        }
        assert_eq!(refusals(&manifest), vec![], "{name}");
    }
}
