//! An environment file: parsed, validated and, when valid, carved into its network
//! plan. Any input gives a value or diagnostics, never a panic.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let units = BTreeSet::from(["app.service".to_owned()]);
    if let Ok(env) = strata::config::load("environments/fuzz.yaml", text, &units) {
        let zones: Vec<strata::config::Zone> = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
            .into_iter()
            .filter_map(|z| strata::config::Zone::try_from(z.to_owned()).ok())
            .collect();
        let _ = strata::plan::network::desired(&env, &zones);
    }
});
