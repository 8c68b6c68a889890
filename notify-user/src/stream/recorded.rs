//! Items recorded in the VM lab (`xtask/tests/fixtures`), for the unit tests of the stages that
//! read a stream: the sink, the report.

use notify_model::Item;

/// The items of the JSON-lines file at `path` under xtask/tests/fixtures.
pub fn items(path: &str) -> Vec<Item> {
    let p = format!(
        "{}/../xtask/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{p}: {e}: {l}")))
        .collect()
}
