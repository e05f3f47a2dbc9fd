//! SECURITY.md cites, for each row of the threat model, the tests that attack it. A test
//! renamed or removed must not leave a row pointing at nothing.

use std::path::Path;

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_test_the_threat_model_cites_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let security = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    let mut code = String::new();
    sources(&root.join("src"), &mut code);
    sources(&root.join("e2e/tests"), &mut code);
    let threats = security
        .split("## Threat model")
        .nth(1)
        .expect("a Threat model section");
    let table: Vec<&str> = threats
        .lines()
        .skip_while(|l| !l.starts_with("| "))
        .take_while(|l| l.starts_with('|'))
        .collect();
    let mut cited = 0;
    for row in &table[2..] {
        let tests = row.rsplit('|').nth(1).unwrap();
        let names: Vec<&str> = tests
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|path| path.rsplit("::").next().unwrap())
            .collect();
        assert!(!names.is_empty(), "a row without a test: {row}");
        for name in names {
            assert!(
                code.contains(&format!("fn {name}(")),
                "SECURITY.md cites `{name}`, which no test defines"
            );
            cited += 1;
        }
    }
    assert!(cited >= 30, "only {cited} tests cited");
}
