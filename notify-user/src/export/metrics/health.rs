//! `/healthz`: whether every required probe is attached.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::probe::Outcome;

/// Whether every required probe is attached, for `/healthz`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    pub status: &'static str,
    /// hook -> method, for attached hooks.
    pub attached: BTreeMap<&'static str, String>,
    pub missing_required: Vec<&'static str>,
    pub skipped_optional: Vec<&'static str>,
    pub kernel: String,
    pub version: &'static str,
}

impl Health {
    pub fn from_outcomes(outcomes: &[Outcome], kernel: &str) -> Health {
        let mut h = Health {
            kernel: kernel.to_string(),
            version: env!("CARGO_PKG_VERSION"),
            ..Health::default()
        };
        for o in outcomes {
            match (o.method, o.required) {
                (Some(m), _) => {
                    h.attached.insert(o.hook, m.to_string());
                }
                (None, true) => h.missing_required.push(o.hook),
                (None, false) => h.skipped_optional.push(o.hook),
            }
        }
        h.status = if h.missing_required.is_empty() {
            "ok"
        } else {
            "degraded"
        };
        h
    }

    pub fn ok(&self) -> bool {
        self.missing_required.is_empty()
    }
}
